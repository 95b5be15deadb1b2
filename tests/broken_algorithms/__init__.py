"""Algorithms that break the contract of :mod:`algorithms.base`, each in one realistic way,
for ``tests/test_check.py``: ``nas-harness check`` must fail each of them for its reason.

* :class:`~broken_algorithms.reads_report.ReadsReport` climbs by the report metric (test
  accuracy), which it reads from the runner's frame;
* :class:`~broken_algorithms.global_rng.GlobalRandom` draws from numpy's global generator
  instead of the one ``start`` gives it;
* :class:`~broken_algorithms.stop_iteration.StopsByRaising` ends its run by letting
  ``StopIteration`` escape instead of returning ``DONE``;
* :class:`~broken_algorithms.elite_cache.EliteCache` keeps module-level state that only a
  finished run clears, so a run after a killed one differs from the same run resumed;
* :class:`~broken_algorithms.contrarian.Contrarian` climbs towards the worst score: it keeps
  every rule and needs far more samples than random search.
* :class:`~broken_algorithms.prefers_failures.PrefersFailures` takes a failed result for 0.0
  and settles among failing architectures; :class:`~broken_algorithms.prefers_failures.CrashesOnFailures`
  crashes on the first one, :class:`~broken_algorithms.prefers_failures.EndsOnFailure` ends its run there.

Everything else about them is correct (each keeps its other duties), so the check must name
the one thing that is wrong.
"""
