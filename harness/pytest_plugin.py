"""pytest fixtures for a repository that keeps its own search algorithm: the contract check of
``nas-harness check`` and the regression guard (``run`` + ``compare`` against a committed
baseline) as tests of the user's own suite (docs/ci-guard.md).

Enable it in the repository's ``conftest.py``::

    pytest_plugins = ["harness.pytest_plugin"]

(or ``pytest -p harness.pytest_plugin``). It is not registered as a ``pytest11`` entry point
on purpose: such a plugin loads into every pytest session of every environment where
nas-harness is installed, including ours and suites that have nothing to do with it, and
adds fixtures and options nobody asked for; the opt-in is one line. Then::

    def test_my_algorithm_keeps_the_contract(nas_check):
        nas_check("mypkg.search.MyAlgorithm")          # fails with every failing check's reason

    def test_no_regression(nas_guard):
        nas_guard("baselines/convnet-digits.json", "mypkg.search.MyAlgorithm", oracle="convnet-digits")

or one test per check, so the report names the one that failed::

    @pytest.mark.parametrize("name", harness.check.CHECKS)
    def test_contract(nas_check, name):
        nas_check("mypkg.search.MyAlgorithm", only=[name])

``--nas-check-full`` runs the full check (more evaluations per run, 20 seeds, four workers in
the stopping check, NAS-Bench-201 as a second table where it is installed) instead of the
quick one, for a nightly job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser) -> None:
    parser.getgroup("nas-harness").addoption(
        "--nas-check-full", action="store_true", default=False,
        help="nas_check runs the full contract check instead of the quick one (harness.check.Settings)")


@pytest.fixture
def nas_check(request):
    """``nas_check(algorithm, params=None, oracle=None, only=None, statistics=True)``: run
    :func:`harness.check.check` (quick settings unless ``--nas-check-full``) and fail the test
    with the reason of every failing check; returns the outcomes.

    ``algorithm``: a name, plugin name, ``package.module.Class`` or the class itself;
    ``oracle``: a table name (default: the check's, convnet-digits or NB201 for
    multi-fidelity algorithms); ``only``: check names (:data:`harness.check.CHECKS`);
    ``statistics``: run the samples-to-optimum comparison."""
    from harness import check
    full = request.config.getoption("--nas-check-full")

    def run(algorithm, params: dict[str, Any] | None = None, oracle: str | None = None, only=None,
            statistics: bool = True) -> list:
        kw = {"oracle": oracle, "statistics": statistics}
        settings = check.Settings(**kw) if full else check.Settings.quick(**kw)
        outcomes = check.check(algorithm, params, settings, only=only)
        bad = [o for o in outcomes if o.failed]
        if bad:
            pytest.fail("nas-harness check failed:\n" + "\n".join(check.format_outcome(o) for o in bad),
                        pytrace=False)
        return outcomes

    return run


@pytest.fixture
def nas_guard(tmp_path):
    """``nas_guard(baseline, algorithm, oracle, seeds=None, budget=None)``: run ``algorithm``
    on ``oracle`` as the baseline's cell (the one labelled ``algorithm``, or the only one on
    ``oracle``) was run (its stopping rule; its number of seeds and budget unless given) into a temporary folder, compare it with ``baseline`` (a
    file from ``nas-harness baseline`` or a results folder; :func:`harness.compare.compare`,
    default thresholds) and fail the test, with the comparison's text, on a significant
    regression. Returns the :class:`~harness.compare.Comparison`."""
    from harness.cli import main
    from harness.compare import compare, format_comparison
    from harness.metrics import load

    def guard(baseline: str | Path, algorithm: str, oracle: str, seeds: int | None = None,
              budget: int | None = None) -> Any:
        base = load(baseline)
        cells = [c for c in base.cells if c.oracle == oracle]
        cell = next((c for c in cells if c.label == algorithm), cells[0] if len(cells) == 1 else None)
        if cell is None:
            pytest.fail(f"{baseline} has no cell for {algorithm} on {oracle}", pytrace=False)
        n = seeds if seeds is not None else cell.n_runs
        cap = budget if budget is not None else cell.budget
        out = tmp_path / "candidate"
        argv = ["run", "--oracle", oracle, "--algorithm", algorithm, "--seeds", str(n), "--budget", str(cap),
                "--out", str(out), "--quiet"]
        if cell.config.get("until_optimum"):
            argv.append("--until-optimum")
        code = main(argv)
        if code != 0:
            pytest.fail(f"nas-harness run exited with {code}", pytrace=False)
        result = compare(base, load(out))
        if result.regression:
            pytest.fail(format_comparison(result), pytrace=False)
        return result

    return guard
