"""The contract every search algorithm must keep, as checks anyone can run on their own
algorithm (``nas-harness check ALGORITHM``; ``tests/test_contract.py`` runs the same code on
ours).

Each check runs the algorithm through the real run loop (:func:`harness.runner.run_one`) on
small real tables and returns an :class:`Outcome`: ``pass``, ``fail`` or ``n/a`` with a
one-line reason. What is checked, and why each matters for a benchmark:

``determinism``
    The same seed gives the same trajectory, another seed another one. Results are a
    function of (configuration, seed), or nothing can be reproduced or resumed.
``global-rng``
    The same seed gives the same trajectory when Python's, numpy's and torch's *global*
    generators are seeded differently before the run. An algorithm must draw only from the
    ``rng`` given to ``start`` (:mod:`algorithms.base`); one that calls ``np.random.rand``
    passes ``determinism`` in a fresh process and still changes with whatever ran before it.
``no-test-metric``
    The table's report metric (test accuracy) is replaced by distinct sentinel values in a
    shuffled order: the run must not change (an algorithm that reads the report metric, from
    the runner's frame or by loading the table itself, ranks architectures differently), and
    no sentinel may be anywhere in the algorithm's state afterwards.
``directions``
    The run on the table maximised completes; on its minimised view (search and report
    values negated, direction ``min``) it asks exactly the same architectures, since
    algorithms are only ever told scores to maximise. The full check does this on
    NAS-Bench-201 CIFAR-10 too, where it is installed.
``fidelities``
    For an algorithm that chooses fidelities (``uses_fidelities``): it asks only fidelities the
    oracle serves, continues only earlier trials of the same architecture to a higher
    fidelity, and does use the lower ones. Not applicable to others.
``async``
    With four simulated workers (``workers_per_run = 4``; results come back out of ask order,
    as on a cluster) the run completes, spends its budget and replays for its seed.
``stopping``
    On a small finite table with 40 queries per architecture, the run ends with ``DONE``
    after evaluating every architecture: not by raising ``StopIteration`` (the runner fails
    such a run, see :mod:`algorithms.base`), not stuck re-asking known architectures. The
    small table is a random subset of the checked one (24 rows), so most token sequences
    are not in it: an algorithm that proposes tokens and falls back to sampling after
    invalid ones (CADAM) may reach DONE here through its fallback, while on a full grid
    with a few holes (``tests/test_contract.py``'s tiny table) it spins on repeats.
``failed-results``
    The table made a minimised loss in [1, 101] (the search metric rescaled, best = 1, so
    scores told are negative, as negated losses are) where a structured third of the cells
    (those with one of two token values, chosen by :func:`failure_pattern` so that they are
    as good as the rest: the same median rank, the same share of the best tenth) answer
    ``+inf`` at every fidelity and seed, a failed training such as NAS-Bench-NLP's diverged
    cells. On each of :data:`FAILED_SEEDS` seeds the run reaches its budget without an
    exception (or, where the algorithm answers ``DONE`` earlier, ends no earlier than on the
    table without failures), and over all seeds it asks failed cells no more often than
    random search does (one-sided binomial test at 0.1 %). An algorithm that takes a failure
    for ``0.0`` (better than every negated loss), crashes on ``-inf`` or ends its search at a
    failure fails. The rule:
    :class:`algorithms.base.FailedResults`; ``tests/test_contract.py`` checks the built-ins
    with a fixed pattern on NAS-Bench-201.
``resume``
    A run computed in a fresh process (how an experiment resumes after a kill: every run
    without a complete file is re-run by a new worker) equals the same run computed in a
    process that first ran another seed and then had this one interrupted half-way (as by
    Ctrl-C). Catches state that outlives a run: module or class attributes, caches, clean-up
    that only a finished run does (the global generators are seeded alike on both sides:
    they are ``global-rng``'s business).

Then :func:`samples_to_optimum` runs the algorithm, random search and regularized evolution
until the table's optimum for a few seeds and compares them with the project's statistics
(:func:`harness.statistics.sample_ratios`: ratios of means and Kaplan-Meier medians with
bootstrap intervals; :func:`harness.statistics.censored_rank_test`): the check fails when
the algorithm is significantly and substantially worse than random search, with the
thresholds of :class:`harness.compare.Thresholds`.

The tables: ``convnet-digits`` (shipped with the package: 1,364 ConvNets, maximised) for
algorithms on one fidelity, ``nb201/cifar10:fidelities=all`` (12 and 200 epochs; needs
``nas-harness oracles import nb201 DIR``) for algorithms that choose fidelities, or the oracle
given. Checks that need a transformed table (poisoned, minimised, subset) need a table
oracle and are ``n/a`` on others.
"""

from __future__ import annotations

import random
import sys
import time
import types
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from algorithms import REGISTRY, algorithm_class, parse_spec
from algorithms.base import DONE, WAIT, Ask, SearchAlgorithm
from oracles.errors import UserError
from oracles.oracle import Oracle, TabularOracle
from oracles.table import Table

from .runner import RunConfig, describe_exception, run_one

PASS, FAIL, NA = "pass", "fail", "n/a"

#: every check, in the order they run (``samples-to-optimum`` last: it is the longest)
CHECKS = ("determinism", "global-rng", "no-test-metric", "directions", "fidelities", "async", "stopping",
          "failed-results", "resume", "samples-to-optimum")

#: what each check asks, in one line (``nas-harness check --help``; the module docstring says why)
SUMMARIES = {
    "determinism": "the same seed replays its run; another seed gives another",
    "global-rng": "Python's, numpy's and torch's global generators seeded otherwise change nothing",
    "no-test-metric": "the report metric shuffled into sentinels changes nothing and none is in its state",
    "directions": "the table minimised (values negated) gives the same run",
    "fidelities": "only served fidelities, continuations of earlier trials upwards (if it chooses them)",
    "async": "with 4 simulated workers (results out of order) the run completes and replays",
    "stopping": "an exhausted small table ends with DONE, not StopIteration or endless repeats",
    "failed-results": "told +inf loss for a structured third of the cells, it runs to its budget and "
                      "asks them no more often than random search",
    "resume": "a run in a fresh process equals it after another run and a killed one",
    "samples-to-optimum": "runs to the optimum against random search and regularized evolution; "
                          "fails if significantly worse than random",
}

#: the table for algorithms on one fidelity: shipped with the package, so every machine has it
DEFAULT_ORACLE = "convnet-digits"
#: the table for algorithms that choose fidelities (NAS-Bench-201's 12- and 200-epoch results)
DEFAULT_MF_ORACLE = "nb201/cifar10:fidelities=all"
#: what report values become on the poisoned table: SENTINEL + a permutation of 0..n-1, exact
#: in float32 and far from any accuracy, loss or perplexity a table holds
SENTINEL = 1_000_000.0
#: the algorithms every algorithm is compared with
BASELINES = ("random", "evolution")


@dataclass
class Outcome:
    """What one check found: ``status`` is ``pass``, ``fail`` or ``n/a``; ``reason`` one line;
    ``details`` JSON-able numbers behind it; ``seconds`` the wall time it took."""

    check: str
    status: str
    reason: str
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Settings:
    """How much a check runs. :meth:`quick` is what CI and ``--quick`` use.

    Parameters
    ----------
    oracle:
        oracle spec the checks run on (None: :data:`DEFAULT_ORACLE`, or
        :data:`DEFAULT_MF_ORACLE` for an algorithm that chooses fidelities).
    budget:
        distinct evaluations per run of the behavioural checks (100; quick 30: past the
        random start of most methods, e.g. TPE's 20 startup samples and LaNAS's first
        tree, and enough for four simulated workers to return results out of order). An
        algorithm whose model starts later (regularized evolution's population of 500, NAO's
        600 initial samples) is checked past its warm-up only with a larger budget or a
        smaller warm-up (``evolution:population=10,sample_size=3``).
    seeds:
        runs per algorithm in the samples-to-optimum comparison (20; quick 10: with 10 runs a
        side the one-sided rank test reaches p < 0.01 for an algorithm that needs twice the
        samples of random search, as tests/test_check.py's Contrarian does with 6).
    stopping_size:
        architectures of the small table of the stopping check (24; 40 queries each).
    statistics:
        run the samples-to-optimum comparison at all (it is the longest part).
    stopping_workers:
        simulated workers of the stopping check's runs ((1, 4); quick (1,)).
    tables:
        more table oracles the ``directions`` check runs on besides the checked one
        (NAS-Bench-201 CIFAR-10 where it is installed; quick: none).
    """

    oracle: str | None = None
    budget: int = 100
    seeds: int = 20
    stopping_size: int = 24
    statistics: bool = True
    stopping_workers: tuple[int, ...] = (1, 4)
    tables: tuple[str, ...] = ("convnet-digits", "nb201/cifar10")

    @classmethod
    def quick(cls, **kw) -> "Settings":
        return cls(**{"budget": 30, "seeds": 10, "stopping_workers": (1,), "tables": (), **kw})


# --- the algorithm under check ----------------------------------------------------------------
@dataclass
class Subject:
    """An algorithm to check: ``name`` is what a run configuration names (a built-in's or a
    plugin's name, or a class's dotted import path: :func:`algorithms.algorithm_class`
    resolves it in every process), ``params`` its hyper-parameters, ``cls`` its class,
    ``label`` what reports call it."""

    name: str
    params: dict[str, Any]
    cls: type
    label: str

    @classmethod
    def of(cls, algorithm: str | type, params: dict[str, Any] | None = None) -> "Subject":
        """``algorithm``: a spec as ``run --algorithm`` takes it (``lanas:c=0.2``, a plugin's
        name, ``package.module.Class``), or a :class:`~algorithms.base.SearchAlgorithm`
        subclass defined at the top level of an importable module (a fresh process imports it
        by that path). ``params``: hyper-parameters on top of the spec's."""
        if isinstance(algorithm, str):
            name, spec_params = parse_spec(algorithm)
            klass = algorithm_class(name)
            return cls(name, {**spec_params, **(params or {})}, klass, algorithm.strip())
        if not (isinstance(algorithm, type) and issubclass(algorithm, SearchAlgorithm)):
            raise UserError(f"not a search algorithm: {algorithm!r} (a name, or a SearchAlgorithm subclass)")
        for name in REGISTRY:
            try:
                if algorithm_class(name) is algorithm:
                    return cls(name, dict(params or {}), algorithm, name)
            except Exception:  # noqa: BLE001 -- another algorithm's missing extra is not ours to report
                continue
        module, qual = algorithm.__module__, algorithm.__qualname__
        if module == "__main__" or "." in qual or getattr(sys.modules.get(module), qual, None) is not algorithm:
            raise UserError(f"{module}.{qual}: a class to check must be defined at the top level of an "
                            "importable module (a fresh process imports it by its path)")
        dotted = f"{module}.{qual}"
        if algorithm_class(dotted) is not algorithm:      # a broken plugin is one line from here
            raise UserError(f"{dotted} names another class than the one given (imported twice?)")
        return cls(dotted, dict(params or {}), algorithm, algorithm.name or qual)

    @property
    def uses_fidelities(self) -> bool:
        return bool(getattr(self.cls, "uses_fidelities", False))


# --- tables ------------------------------------------------------------------------------------
def copy_oracle(oracle: TabularOracle, table: Table | None = None, space=None, *, name: str | None = None,
                direction: str | None = None) -> TabularOracle:
    """``oracle`` over another table or space (same metrics, fidelities and runs), or with
    another direction."""
    return TabularOracle(name or oracle.name, table if table is not None else oracle.table,
                         space if space is not None else oracle.space, search=oracle.search_metric,
                         report=oracle.report_metric, fidelity=oracle.fidelity, cost=oracle.cost_metric,
                         train=oracle.train_metric, runs=oracle.runs, fidelities=oracle.fidelities.values,
                         fidelity_kind=oracle.fidelities.kind, direction=direction or oracle.direction)


def _with_values(table: Table, values: np.ndarray) -> Table:
    return Table(table.name, table.archs, table.seeds, table.fidelities, table.metrics, values, table.columns,
                 table.meta)


def minimised(oracle: TabularOracle) -> TabularOracle:
    """``oracle``'s table with every search and report value negated, and minimised: the same
    problem under the other direction (a maximised one becomes minimised, and back)."""
    t = oracle.table
    values = np.array(t.values, dtype=np.float64)
    for m in {oracle.search_metric, oracle.report_metric}:
        values[..., t.metric_index(m)] *= -1
    return copy_oracle(oracle, _with_values(t, values), direction="min" if oracle.direction == "max" else "max")


def poisoned(oracle: TabularOracle, seed: int = 0) -> tuple[TabularOracle, np.ndarray]:
    """``oracle`` with its report metric replaced, at every fidelity and seed, by
    ``SENTINEL + p[i]`` for a random permutation ``p`` of the architectures (so the report's
    order is unrelated to the real one); also the sentinel values. The search metric, cost and
    training accuracy are unchanged, so an algorithm that reads only what it is told runs
    exactly as on ``oracle``."""
    t = oracle.table
    values = np.array(t.values, dtype=np.float64)
    perm = np.random.default_rng(seed).permutation(t.n_archs).astype(np.float64)
    values[..., t.metric_index(oracle.report_metric)] = (SENTINEL + perm)[:, None, None]
    return copy_oracle(oracle, _with_values(t, values)), SENTINEL + perm


def subset_oracle(oracle: TabularOracle, n: int, seed: int = 1) -> TabularOracle:
    """``n`` random architectures of ``oracle``'s table as a table of their own, over a
    :class:`~oracles.subset_space.SubsetSpace` of its space (as a collected subset of a
    space is served): a small real table an algorithm can exhaust."""
    from oracles.subset_space import SubsetSpace
    t = oracle.table
    idx = np.sort(np.random.default_rng(seed).choice(t.n_archs, min(n, t.n_archs), replace=False))
    sub = Table(f"{t.name}-subset", np.asarray(t.archs)[idx], t.seeds, t.fidelities, t.metrics,
                np.asarray(t.values)[idx], {k: np.asarray(v)[idx] for k, v in t.columns.items()}, t.meta)
    return copy_oracle(oracle, sub, SubsetSpace(oracle.space, idx), name=f"{oracle.name.split(':')[0]}-subset")


def load(spec: str) -> Oracle:
    from oracles.registry import load_oracle
    return load_oracle(spec)


# --- watching an algorithm -------------------------------------------------------------------
def reachable(root, limit: int = 200_000) -> Iterator[Any]:
    """Every object reachable from ``root`` through attributes, containers and slots (numpy
    arrays and torch tensors are leaves; modules, classes and functions are not followed)."""
    seen: set[int] = set()
    stack = [root]
    while stack and len(seen) < limit:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        yield obj
        if isinstance(obj, (str, bytes, int, float, bool, type(None), np.ndarray, np.generic, type,
                            types.ModuleType, types.FunctionType, types.BuiltinFunctionType)):
            continue
        if type(obj).__module__.startswith("torch") and hasattr(obj, "detach"):
            continue
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)) or type(obj).__name__ == "deque":
            stack.extend(obj)
        else:
            if hasattr(obj, "__dict__"):
                stack.extend(vars(obj).values())
            for slot in getattr(type(obj), "__slots__", ()):
                if hasattr(obj, slot):
                    stack.append(getattr(obj, slot))


def sentinel_in(algo, sentinels: np.ndarray) -> str | None:
    """Where a value of ``sentinels`` is found in the algorithm's state (a float, a float
    array or tensor), or None."""
    for obj in reachable(algo):
        if isinstance(obj, float):
            if obj in sentinels:
                return f"the number {obj!r}"
        elif isinstance(obj, np.ndarray) and obj.dtype.kind == "f":
            if np.isin(obj, sentinels).any():
                return f"an array of shape {obj.shape}"
        elif type(obj).__module__.startswith("torch") and hasattr(obj, "is_floating_point") \
                and obj.is_floating_point():
            if np.isin(obj.detach().cpu().double().numpy(), sentinels).any():
                return f"a tensor of shape {tuple(obj.shape)}"
    return None


class Watch:
    """Records what one algorithm class is asked and told: the instances started (with the
    space and fidelities each got), every answer of its ask that is not a signal (index =
    trial id), every tell. The methods the runner calls are wrapped on the class itself (so
    runs by any name that resolves to it are watched) until :meth:`remove`; behaviour is
    unchanged. ``setattr``: how to patch (a test passes ``monkeypatch.setattr``, which
    restores by itself)."""

    def __init__(self, cls: type):
        self.cls = cls
        self.algos: list = []
        self.spaces: list = []
        self.fidelities: list = []
        self.asks: list[list] = []
        self.tells: list[list] = []
        self.ask_name = "ask_trial" if cls.ask_trial is not SearchAlgorithm.ask_trial else "ask"
        self.tell_name = "tell_trial" if cls.tell_trial is not SearchAlgorithm.tell_trial else "tell"
        self.trial_aware = self.tell_name == "tell_trial"
        self._saved: list[tuple[str, bool, Any]] = []

    def install(self, setattr: Callable | None = None) -> "Watch":
        cls, watch = self.cls, self
        start, ask, tell = cls.start, getattr(cls, self.ask_name), getattr(cls, self.tell_name)

        def start_(algo, space, rng, *rest):
            watch.algos.append(algo)
            watch.spaces.append(space)
            watch.fidelities.append(rest[0] if rest else None)
            watch.asks.append([])
            watch.tells.append([])
            return start(algo, space, rng, *rest)

        def ask_(algo):
            a = ask(algo)
            if a is not WAIT and a is not DONE:
                watch.asks[-1].append(a)
            return a

        def tell_(algo, what, observation):
            watch.tells[-1].append((what, observation))
            return tell(algo, what, observation)

        for attr, fn in (("start", start_), (self.ask_name, ask_), (self.tell_name, tell_)):
            if setattr is None:
                self._saved.append((attr, attr in vars(cls), vars(cls).get(attr)))
                type.__setattr__(cls, attr, fn)
            else:
                setattr(cls, attr, fn)
        return self

    def remove(self) -> None:
        for attr, own, fn in reversed(self._saved):
            if own:
                type.__setattr__(self.cls, attr, fn)
            else:
                type.__delattr__(self.cls, attr)
        self._saved.clear()

    def __enter__(self) -> "Watch":
        return self.install()

    def __exit__(self, *exc) -> None:
        self.remove()


def asked(a) -> tuple[Any, int | None, int | None]:
    """(architecture, fidelity, continues) of an answer of ask."""
    return (a.arch, a.fidelity, a.continues) if type(a) is Ask else (a, None, None)


# --- runs -----------------------------------------------------------------------------------
class RunFailed(Exception):
    """A run the check needed failed or was stopped; ``reason`` says how in one line."""

    def __init__(self, reason: str, summary: dict[str, Any]):
        # the message keeps the traceback (a test shows it); ``reason`` is the one line
        super().__init__(reason + (f"\n{summary['traceback']}" if summary.get("traceback") else ""))
        self.reason, self.summary = reason, summary


def run(subject: Subject, oracle: Oracle, seed: int = 0, progress=None, globals_seed: int = 0, **settings):
    """One run of ``subject`` through the real run loop: (records, summary); a failed run
    or one the runner stopped as stuck raises :class:`RunFailed`.

    The global generators are seeded with ``globals_seed`` first, so that every check but
    ``global-rng`` (which seeds them differently on purpose) sees an algorithm that draws from
    them behave as one that does not, and names the right fault."""
    seed_globals(globals_seed)
    records, summary = run_one(RunConfig(subject.name, dict(subject.params), oracle=oracle.name, **settings),
                               oracle, seed, progress)
    if "failed" in summary:
        raise RunFailed(f"seed {seed} failed: {summary['failed']}", summary)
    if summary["stopped"] is not None:
        raise RunFailed(f"seed {seed} was stopped: {summary['stopped']}", summary)
    return records, summary


#: the record columns that make a run's trajectory (what was asked, when, at which fidelity)
TRAJECTORY = ("arch_id", "trial", "fidelity", "repeat", "start", "finish")


def trajectory(records) -> dict[str, list]:
    return {k: np.asarray(records[k]).tolist() for k in TRAJECTORY}


def first_difference(a, b) -> str | None:
    """Where two runs' trajectories first differ (one phrase), or None when they are equal."""
    ta, tb = trajectory(a), trajectory(b)
    if ta == tb:
        return None
    n = min(len(ta["arch_id"]), len(tb["arch_id"]))
    for i in range(n):
        for k in TRAJECTORY:
            if ta[k][i] != tb[k][i]:
                return f"record {i + 1}: {k} {ta[k][i]!r} vs {tb[k][i]!r}"
    return f"{len(ta['arch_id'])} vs {len(tb['arch_id'])} records"


# --- global generators -------------------------------------------------------------------------
def _generators() -> list[tuple[str, Callable[[int], None], Callable[[], Any], Callable[[Any], None]]]:
    """(name, seed, get state, set state) of every global generator loaded in this process."""
    out = [("Python's random", random.seed, random.getstate, random.setstate),
           ("numpy's global np.random", np.random.seed, np.random.get_state, np.random.set_state)]
    torch = sys.modules.get("torch")
    if torch is not None:
        out.append(("torch's global generator", torch.manual_seed, torch.get_rng_state, torch.set_rng_state))
    return out


@contextmanager
def global_generators_kept() -> Iterator[None]:
    """Whatever a check does to the global generators is undone on the way out (a test
    suite calling it keeps its own random state)."""
    saved = [(set_state, get()) for _, _, get, set_state in _generators()]
    try:
        yield
    finally:
        for set_state, state in saved:
            set_state(state)


def seed_globals(seed: int | None, only: str | None = None) -> None:
    """Seed every global generator (or only the one named ``only``) with ``seed`` (None:
    leave them as they are)."""
    if seed is None:
        return
    for name, seed_fn, _, _ in _generators():
        if only is None or name == only:
            seed_fn(seed)


# --- the checks ----------------------------------------------------------------------------------
class Context:
    """What the checks of one subject share: the subject, the settings and the oracle (loaded
    once from ``settings.oracle``, or given as an object, as the contract tests give their
    hand-made tables; a fresh process cannot rebuild such an oracle, so ``resume`` is then
    not applicable)."""

    def __init__(self, subject: Subject, settings: Settings, oracle: Oracle | None = None):
        self.subject, self.settings = subject, settings
        if oracle is not None:
            self.spec, self.loadable = oracle.name, False
        else:
            self.spec = settings.oracle or (DEFAULT_MF_ORACLE if subject.uses_fidelities else DEFAULT_ORACLE)
            self.loadable = True
        self._oracle: Oracle | None = oracle

    @property
    def oracle(self) -> Oracle:
        if self._oracle is None:
            self._oracle = load(self.spec)
        return self._oracle

    def table_oracle(self) -> TabularOracle | None:
        o = self.oracle
        return o if isinstance(o, TabularOracle) else None


def _not_a_table(ctx: Context) -> Outcome | None:
    return None if ctx.table_oracle() is not None else \
        Outcome("", NA, f"{ctx.spec} is not a table oracle (the check transforms a table)")


def check_determinism(ctx: Context) -> Outcome:
    budget = ctx.settings.budget
    a, _ = run(ctx.subject, ctx.oracle, seed=3, budget=budget)
    b, _ = run(ctx.subject, ctx.oracle, seed=3, budget=budget)
    c, _ = run(ctx.subject, ctx.oracle, seed=4, budget=budget)
    diff = first_difference(a, b)
    if diff is None and not np.array_equal(a["search"], b["search"], equal_nan=True):
        diff = "the same architectures, other search values"
    if diff is not None:
        return Outcome("", FAIL, f"seed 3 run twice gave two trajectories ({diff}): something besides the "
                                 "seed decides (an unseeded generator, the clock, set or dict order of objects)")
    if a["arch_id"].tolist() == c["arch_id"].tolist():
        return Outcome("", FAIL, f"seeds 3 and 4 asked the same {len(a['arch_id'])} architectures: the "
                                 "generator given to start is not used")
    return Outcome("", PASS, f"seed 3 twice: the same {len(a['arch_id'])} trials; seed 4 differs "
                             f"({first_difference(a, c)})")


def check_global_rng(ctx: Context) -> Outcome:
    budget = ctx.settings.budget

    def once(seed: int, only: str | None = None):
        # every generator seeded 1, then the one named (or all) seeded ``seed``
        seed_globals(1)
        seed_globals(seed, only)
        return run(ctx.subject, ctx.oracle, seed=3, budget=budget, globals_seed=None)[0]

    ref = once(1)
    other = once(2)
    if first_difference(ref, other) is None:
        names = ", ".join(n for n, *_ in _generators())
        return Outcome("", PASS, f"the same run with the global generators ({names}) seeded 1 and 2")
    # name the generator: reseed one at a time
    used = [n for n, *_ in _generators() if first_difference(ref, once(2, only=n)) is not None]
    which = ", ".join(used) if used else "a global generator"
    return Outcome("", FAIL, f"draws from {which}: seed 3 gave other runs when it was seeded otherwise "
                             f"({first_difference(ref, other)}); draw only from the rng given to start",
                   {"generators": used})


def check_no_test_metric(ctx: Context) -> Outcome:
    if (na := _not_a_table(ctx)) is not None:
        return na
    oracle = ctx.table_oracle()
    bad, sentinels = poisoned(oracle, seed=7)
    budget = ctx.settings.budget
    a, _ = run(ctx.subject, oracle, seed=5, budget=budget)
    with Watch(ctx.subject.cls) as watch:
        b, _ = run(ctx.subject, bad, seed=5, budget=budget)
    diff = first_difference(a, b)
    if diff is not None:
        return Outcome("", FAIL, f"reads the report metric ({oracle.report_metric}): with it replaced by "
                                 f"shuffled sentinels the same seed asked otherwise ({diff})")
    where = sentinel_in(watch.algos[-1], sentinels) if watch.algos else None
    if where is not None:
        return Outcome("", FAIL, f"holds a report value ({oracle.report_metric}) in its state: {where}")
    return Outcome("", PASS, f"{oracle.report_metric} replaced by shuffled sentinels: the same "
                             f"{len(a['arch_id'])} trials, no sentinel in its state")


def _mirror(ctx: Context, up: TabularOracle) -> tuple[Outcome | None, int]:
    """A failing outcome if ``subject`` runs otherwise on ``up``'s minimised mirror, else
    (None, trials)."""
    down = minimised(up)
    budget = ctx.settings.budget
    a, _ = run(ctx.subject, up, seed=1, budget=budget)
    b, _ = run(ctx.subject, down, seed=1, budget=budget)
    diff = first_difference(a, b)
    if diff is not None:
        return Outcome("", FAIL, f"asks otherwise on the {down.direction}imised mirror of {up.name} ({diff}): "
                                 "it must act only on the scores it is told, which are the same"), 0
    if not np.array_equal(b["search"], -a["search"], equal_nan=True):
        return Outcome("", FAIL, f"the records of {up.name}'s mirror are not its negated values"), 0
    return None, len(a["arch_id"])


def check_directions(ctx: Context) -> Outcome:
    if (na := _not_a_table(ctx)) is not None:
        return na
    from oracles.errors import MissingData
    tables, notes = [ctx.table_oracle()], []
    for spec in ctx.settings.tables:
        if spec == ctx.spec:
            continue
        try:
            other = load(spec)
        except MissingData:
            notes.append(f"{spec} not installed")
            continue
        if isinstance(other, TabularOracle) and (not ctx.subject.uses_fidelities or len(other.fidelities.values) > 1):
            tables.append(other)
    for up in tables:
        bad, n = _mirror(ctx, up)
        if bad is not None:
            return bad
    names = ", ".join(f"{t.name} ({t.direction})" for t in tables)
    mirror = "the minimised mirror of each" if len(tables) > 1 else "its minimised mirror"
    return Outcome("", PASS, f"{names} and {mirror}: the same {n} trials"
                             + (f" ({'; '.join(notes)})" if notes else ""))


def fidelity_problem(oracle: Oracle, watch: Watch, uses_fidelities: bool, run_index: int = -1) -> str | None:
    """What is wrong with the fidelities of the asks ``watch`` saw in one run on ``oracle``
    (None: nothing). An algorithm that does not choose fidelities asks none and continues
    nothing; one that does gets the oracle's fidelities in ``start``, asks only served ones,
    continues only earlier trials of the same architecture to a higher fidelity, and asks
    below the top at least once."""
    served = oracle.fidelities.values
    asks = watch.asks[run_index]
    if not asks:
        return "asked nothing"
    if not uses_fidelities and watch.fidelities[run_index] is not None:
        return "was given fidelities without choosing them"
    if uses_fidelities and watch.fidelities[run_index] != oracle.fidelities:
        return "start was not given the oracle's fidelities"
    space, seen = oracle.space, []
    for k, a in enumerate(asks):
        arch, fid, cont = asked(a)
        if not uses_fidelities and (fid is not None or cont is not None):
            return f"does not use fidelities but trial {k} asked {a}"
        if fid is not None and fid not in served:
            return f"trial {k} asks fidelity {fid}; {oracle.name} serves {list(served)}"
        fid = served[-1] if fid is None else fid
        if cont is not None:
            if not 0 <= cont < k or seen[cont][0] != space.identity(arch):
                return f"trial {k} continues trial {cont}, not an earlier trial of its architecture"
            if seen[cont][1] >= fid:
                return f"trial {k} continues trial {cont} at fidelity {fid}, not a higher one"
        seen.append((space.identity(arch), fid))
    if uses_fidelities and not any(f < served[-1] for _, f in seen):
        return f"uses fidelities but asked only the highest ({served[-1]}) in {len(seen)} trials"
    return None


def check_fidelities(ctx: Context) -> Outcome:
    if not ctx.subject.uses_fidelities:
        return Outcome("", NA, "does not choose fidelities (uses_fidelities is False): asked at the oracle's own")
    oracle = ctx.oracle
    served = oracle.fidelities.values
    if len(served) < 2:
        return Outcome("", NA, f"{oracle.name} serves one fidelity: give --oracle one that serves several")
    budget = max(ctx.settings.budget, 20)
    with Watch(ctx.subject.cls) as watch:
        run(ctx.subject, oracle, seed=0, budget=budget, workers_per_run=4)
    problem = fidelity_problem(oracle, watch, True)
    if problem is not None:
        return Outcome("", FAIL, problem)
    asks = [asked(a) for a in watch.asks[-1]]
    low = sum(f is not None and f < served[-1] for _, f, _ in asks)
    conts = sum(c is not None for _, _, c in asks)
    return Outcome("", PASS, f"{len(asks)} trials on {oracle.name} with 4 workers: {low} below the top "
                             f"fidelity, {conts} continuations, all served", {"below_top": low, "continuations": conts})


def check_async(ctx: Context) -> Outcome:
    budget = ctx.settings.budget
    a, sa = run(ctx.subject, ctx.oracle, seed=2, budget=budget, workers_per_run=4)
    b, _ = run(ctx.subject, ctx.oracle, seed=2, budget=budget, workers_per_run=4)
    diff = first_difference(a, b)
    if diff is not None:
        return Outcome("", FAIL, f"with 4 simulated workers seed 2 gave two trajectories ({diff})")
    if sa["n_distinct"] < budget and not sa["exhausted_space"]:
        return Outcome("", FAIL, f"with 4 workers the run ended after {sa['n_distinct']} of {budget} evaluations")
    trials = a["trial"].tolist()
    late = sum(x < y for x, y in zip(trials[1:], trials[:-1]))
    return Outcome("", PASS, f"4 simulated workers: {sa['n_distinct']} evaluations, {late} results told "
                             "after a later trial's, replays for its seed", {"out_of_order": late})


def check_stopping(ctx: Context) -> Outcome:
    if (na := _not_a_table(ctx)) is not None:
        return na
    if not ctx.table_oracle().space.is_finite:
        return Outcome("", NA, f"{ctx.spec} has an infinite space: nothing to exhaust")
    small = ctx.table_oracle()
    if small.space.size > ctx.settings.stopping_size:
        small = subset_oracle(small, ctx.settings.stopping_size)
    n = small.space.size
    everything = set(small.space.identities_all().tolist())
    for workers in ctx.settings.stopping_workers:
        records, summary = run_one(RunConfig(ctx.subject.name, dict(ctx.subject.params), oracle=small.name,
                                             budget=40 * n, budget_kind="queries", workers_per_run=workers),
                                   small, 0)
        where = f"{n} architectures, {workers} worker{'s' * (workers > 1)}"
        seed_globals(0)
        if "failed" in summary:
            if summary["failed"].startswith("StopIteration"):
                return Outcome("", FAIL, f"ended its run by raising StopIteration ({where}): "
                                         f"{summary['failed']}; return DONE instead")
            return Outcome("", FAIL, f"failed on an exhausted space ({where}): {summary['failed']}")
        if summary["stopped"] is not None:
            return Outcome("", FAIL, f"never answered DONE ({where}): after {summary['n_distinct']} evaluations "
                                     f"it was {summary['stopped']}")
        if not summary["exhausted_space"]:
            return Outcome("", FAIL, f"no DONE after {summary['n_queries']} queries ({where}): "
                                     f"{summary['n_distinct']} evaluations, {summary['n_repeats']} repeats")
        missing = everything - set(records["arch_id"].tolist())
        if missing:
            return Outcome("", FAIL, f"answered DONE with {len(missing)} of {n} architectures never asked ({where})")
    workers = ctx.settings.stopping_workers
    return Outcome("", PASS, f"DONE after every architecture of a {n}-architecture table "
                             f"({' and '.join(map(str, workers))} worker{'s' * (workers != (1,))})")


#: seeds of the failed-results check, as in tests/test_contract.py: with 30 architectures a run,
#: 120 asks, enough for the binomial test to find an algorithm drawn to failures
FAILED_SEEDS = 4
#: the share of the table's cells that fail, at least and at most (NAS-Bench-NLP: about a third
#: of the cells that were trained diverged)
FAILED_SHARE = (0.25, 0.45)
#: significance of the one-sided binomial test (a correct algorithm fails one check in a thousand)
FAILED_ALPHA = 1e-3


def failure_pattern(oracle: TabularOracle) -> tuple[np.ndarray, str] | None:
    """The cells of ``oracle``'s table that the failed-results check fails: those whose token
    at position ``i`` is ``a`` or whose token at ``j`` is ``b`` (structured, as diverged cells
    share their structure, and learnable from the tokens), for the ``(i, a, j, b)`` whose
    share of the table's cells is within :data:`FAILED_SHARE` and whose cells are most like
    the rest by quality: the least ``|median quantile - 0.5| + |share among the best tenth -
    share|`` by the search values the oracle answers (at its fidelity, the mean over seeds).
    A pattern of bad cells would reward avoiding bad regions, one of good cells would draw a
    good algorithm to them before it is told a single failure. Ties: the first in token order. Returns the
    mask by architecture index (= table row) and the pattern in words, or None for a space
    whose architectures have no fixed-length tokens or where no pattern has that share."""
    import itertools
    t, space = oracle.table, oracle.space
    if not space.is_finite:
        return None
    try:
        tokens = np.asarray(space.tokens_all())
    except (NotImplementedError, ValueError, TypeError):
        return None
    if tokens.ndim != 2 or tokens.shape[1] == 0:
        return None
    if tokens.shape[0] != t.n_archs:
        return None
    # the table's rows are the space's enumeration order (TabularOracle); its search values
    # are the mean over seeds at the oracle's fidelity
    quality = np.asarray(oracle.search_values, dtype=np.float64) * (1 if oracle.direction == "max" else -1)
    rows = np.flatnonzero(np.isfinite(quality))
    quality = quality[rows]
    if len(rows) < 10:
        return None
    quantile = np.argsort(np.argsort(quality, kind="stable"), kind="stable") / (len(rows) - 1)
    best = quantile >= 0.9
    tk = tokens[rows]
    conditions = [(i, int(a)) for i in range(tk.shape[1]) for a in np.unique(tk[:, i])]
    lo, hi = FAILED_SHARE
    choice, choice_score = None, np.inf
    for (i, a), (j, b) in itertools.combinations_with_replacement(conditions, 2):
        mask = (tk[:, i] == a) | (tk[:, j] == b)
        share = mask.mean()
        if not lo <= share <= hi:
            continue
        score = abs(np.median(quantile[mask]) - 0.5) + abs(mask[best].mean() - share)
        if score < choice_score - 1e-12:
            choice, choice_score = (i, a, j, b), score
    if choice is None:
        return None
    i, a, j, b = choice
    words = f"token {i} = {a}" + ("" if (i, a) == (j, b) else f" or token {j} = {b}")
    return (tokens[:, i] == a) | (tokens[:, j] == b), words


def failing(oracle: TabularOracle) -> tuple[TabularOracle, np.ndarray, str] | None:
    """``oracle``'s table as a minimised loss in [1, 101] (the search metric rescaled, best =
    1, worst = 101; report and other metrics unchanged) where the cells of
    :func:`failure_pattern` answer ``+inf`` at every fidelity and seed; also the failed mask
    by architecture index and the pattern in words (None where there is no pattern)."""
    pattern = failure_pattern(oracle)
    if pattern is None:
        return None
    failed, words = pattern
    t = oracle.table
    values = np.array(t.values, dtype=np.float64)
    m = t.metric_index(oracle.search_metric)
    v = values[..., m]
    lo, hi = np.nanmin(v), np.nanmax(v)
    worse = (hi - v) if oracle.direction == "max" else (v - lo)
    values[..., m] = 1.0 + 100.0 * worse / max(hi - lo, 1e-12)
    values[failed, :, :, m] = np.inf
    return copy_oracle(oracle, _with_values(t, values), direction="min"), failed, words


def check_failed_results(ctx: Context) -> Outcome:
    if (na := _not_a_table(ctx)) is not None:
        return na
    from scipy.stats import binom
    made = failing(ctx.table_oracle())
    if made is None:
        return Outcome("", NA, f"{ctx.spec}: no structured subset of {FAILED_SHARE[0]:.0%}-{FAILED_SHARE[1]:.0%} "
                               "of the cells by their tokens to fail")
    oracle, failed, words = made
    budget = min(ctx.settings.budget, oracle.space.size // 2)
    hit = total = 0
    ends = []
    for seed in range(FAILED_SEEDS):
        records, summary = run(ctx.subject, oracle, seed, budget=budget)     # an exception: RunFailed
        if summary["n_distinct"] < budget:
            # an algorithm with an end of its own (MLPNAS's controller epochs) ends there on the
            # table without failures too
            _, plain = run(ctx.subject, ctx.table_oracle(), seed, budget=budget) \
                if summary["exhausted_space"] else (None, {"n_distinct": budget})
            if plain["n_distinct"] > summary["n_distinct"]:
                return Outcome("", FAIL, f"seed {seed} ended after {summary['n_distinct']} of {budget} evaluations "
                                         f"with failed results among them (without them: {plain['n_distinct']})")
        ends.append(summary["n_distinct"])
        first = ~np.asarray(records["repeat"], dtype=bool)
        idx = np.unique(np.asarray(records["arch_index"])[first])
        hit, total = hit + int(failed[idx].sum()), total + len(idx)
    share = float(failed.mean())
    tail = float(binom.sf(hit - 1, total, share))
    details = {"pattern": words, "failed_share": share, "asked_failed": hit, "asked": total, "p_value": tail}
    line = f"asked {hit} failed cells of {total} ({hit / total:.0%}; random search {share:.0%}, cells with {words})"
    if tail < FAILED_ALPHA:
        return Outcome("", FAIL, f"drawn to failed results: {line}, P = {tail:.1e}; a failed result must count as "
                                 "the worst one told (algorithms.base.FailedResults)", details)
    runs = f"{FAILED_SEEDS} seeds of {budget}" if min(ends) == budget else \
        f"{FAILED_SEEDS} seeds to their own end ({min(ends)}-{max(ends)} of {budget}, as without failures)"
    return Outcome("", PASS, f"{runs} with +inf for failed cells: {line}", details)


class _Interrupt(BaseException):
    """A Ctrl-C in the middle of a run (BaseException, as KeyboardInterrupt: the runner lets it
    through instead of recording a failed run)."""


def _fresh_run(name: str, params: dict, oracle_spec: str, seed: int, budget: int):
    """The run as a new worker process computes it (called in ``python -m harness.check``)."""
    subject = Subject(name, params, algorithm_class(name), name)
    records, _ = run(subject, load(oracle_spec), seed=seed, budget=budget)
    return trajectory(records)


def fresh_process_run(subject: Subject, oracle_spec: str, seed: int, budget: int) -> dict[str, list]:
    """:func:`_fresh_run` in a new Python process with this one's import path (a subprocess,
    not multiprocessing: a caller's script needs no ``if __name__ == "__main__"`` guard)."""
    import json
    import os
    import subprocess
    job = json.dumps({"name": subject.name, "params": subject.params,
                      "oracle": oracle_spec, "seed": seed, "budget": budget}, default=str)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p or os.getcwd() for p in sys.path))
    done = subprocess.run([sys.executable, "-m", "harness.check"], input=job, capture_output=True, text=True,
                          env=env)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RunFailed(f"seed {seed} in a fresh process failed: {last}", {})
    return json.loads(done.stdout)


def check_resume(ctx: Context) -> Outcome:
    if not ctx.loadable:
        return Outcome("", NA, f"{ctx.spec} was given as an object: a fresh process cannot build it")
    budget = ctx.settings.budget
    s = ctx.subject
    run(s, ctx.oracle, seed=8, budget=budget)
    count = [0]

    def kill_half_way(n: int) -> None:
        count[0] += n
        if count[0] >= max(1, budget // 2):
            raise _Interrupt

    try:
        run(s, ctx.oracle, seed=9, progress=kill_half_way, budget=budget)
    except _Interrupt:
        pass
    here, _ = run(s, ctx.oracle, seed=9, budget=budget)
    fresh = fresh_process_run(s, ctx.spec, 9, budget)
    if trajectory(here) != fresh:
        ta = trajectory(here)
        k = next((i for i in range(min(len(ta["arch_id"]), len(fresh["arch_id"])))
                  if any(ta[c][i] != fresh[c][i] for c in TRAJECTORY)), None)
        where = f"record {k + 1}" if k is not None else f"{len(ta['arch_id'])} vs {len(fresh['arch_id'])} records"
        return Outcome("", FAIL, f"seed 9 in a fresh process differs from seed 9 after other runs and a killed "
                                 f"one ({where}): state outlives a run, so a resumed experiment would differ")
    return Outcome("", PASS, f"seed 9 in a fresh process equals seed 9 after seed 8 and a run killed after "
                             f"{max(1, budget // 2)} evaluations")


@dataclass
class Comparison:
    """Samples to the optimum of the checked algorithm and each baseline (``runs``: per
    label, the samples and whether each run found the optimum), the ratios of the
    algorithm's to each baseline's (``ratios``: label -> {"mean"/"median": Ratio}) and the
    one-sided rank test that the algorithm needs more samples (``tests``: label -> RankTest)."""

    oracle: str
    budget: int
    runs: dict[str, tuple[list[float], list[bool]]]
    ratios: dict[str, dict[str, Any]]
    tests: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"oracle": self.oracle, "budget": self.budget,
                "runs": {k: {"samples": v[0], "found": v[1]} for k, v in self.runs.items()},
                "ratios": {k: {s: r.as_dict() for s, r in v.items()} for k, v in self.ratios.items()},
                "tests": {k: (None if t is None else asdict(t)) for k, t in self.tests.items()}}


def samples_to_optimum(subject: Subject, oracle: Oracle, seeds: int,
                       baselines: tuple[str, ...] = BASELINES) -> Comparison:
    """Runs of ``subject`` and of each baseline until ``oracle``'s optimum (capped at the
    space size), seeds 0..seeds-1, compared with :func:`harness.statistics.sample_ratios`
    and :func:`harness.statistics.censored_rank_test` (alternative: the algorithm needs more)."""
    from .statistics import censored_rank_test, sample_ratios
    budget = oracle.space.size
    runs: dict[str, tuple[list[float], list[bool]]] = {}
    for label, s in [(subject.label, subject)] + [(b, Subject.of(b)) for b in baselines if b != subject.name]:
        times, found = [], []
        for seed in range(seeds):
            _, summary = run(s, oracle, seed=seed, until_optimum=True)
            found.append(bool(summary["reached_optimum"]))
            times.append(float(summary["samples_to_optimum"] if found[-1] else summary["n_distinct"]))
        runs[label] = (times, found)
    mine = runs[subject.label]
    ratios, tests = {}, {}
    for label, (t, e) in runs.items():
        if label == subject.label:
            continue
        ratios[label] = sample_ratios(np.array(mine[0]), np.array(mine[1]), np.array(t), np.array(e))
        tests[label] = censored_rank_test(np.array(mine[0]), np.array(mine[1]), np.array(t), np.array(e),
                                          alternative="greater")
    return Comparison(oracle.name, int(budget), runs, ratios, tests)


def _fmt_ratio(r) -> str:
    if r is None or r.value is None:
        return "n/a"
    ci = f" [{r.lo:.2f}, {r.hi:.2f}]" if r.lo is not None and r.hi is not None else ""
    bound = {"lower": " (at least)", "upper": " (at most)", "unknown": " (censored)"}.get(r.bound, "")
    return f"{r.value:.2f}{ci}{bound}"


def check_samples_to_optimum(ctx: Context) -> Outcome:
    from .compare import Thresholds
    if not ctx.settings.statistics:
        return Outcome("", NA, "skipped (statistics off)")
    oracle = ctx.oracle
    if oracle.optimum is None or not oracle.space.is_finite:
        return Outcome("", NA, f"{oracle.name} has no known optimum over a finite space")
    cmp = samples_to_optimum(ctx.subject, oracle, ctx.settings.seeds)
    t = Thresholds()
    parts, worse = [], None
    for label, ratio in cmp.ratios.items():
        test = cmp.tests[label]
        p = "n/a" if test is None else f"{test.p_value:.2g}"
        parts.append(f"vs {label}: median x{_fmt_ratio(ratio.get('median'))}, p(more)={p}")
        mean = ratio.get("mean")
        if label == "random" and test is not None and test.p_value < t.alpha and test.a12 >= t.min_a12 \
                and mean is not None and mean.value is not None and mean.value >= t.min_ratio:
            worse = (f"needs significantly more samples than random search (p = {test.p_value:.2g}, "
                     f"A12 = {test.a12:.2f}, mean ratio {_fmt_ratio(mean)})")
    text = f"{ctx.settings.seeds} seeds on {oracle.name}: " + "; ".join(parts)
    if worse:
        return Outcome("", FAIL, worse + "; " + text, cmp.as_dict())
    return Outcome("", PASS, text, cmp.as_dict())


CHECK_FUNCTIONS: dict[str, Callable[[Context], Outcome]] = {
    "determinism": check_determinism,
    "global-rng": check_global_rng,
    "no-test-metric": check_no_test_metric,
    "directions": check_directions,
    "fidelities": check_fidelities,
    "async": check_async,
    "stopping": check_stopping,
    "failed-results": check_failed_results,
    "resume": check_resume,
    "samples-to-optimum": check_samples_to_optimum,
}


def run_check(ctx: Context, name: str) -> Outcome:
    """One check by name; any failure of the algorithm's runs becomes a ``fail`` with its
    reason, a table that is not installed an ``n/a`` saying how to get it."""
    from oracles.errors import MissingData
    t0 = time.perf_counter()
    with global_generators_kept():
        try:
            out = CHECK_FUNCTIONS[name](ctx)
        except RunFailed as exc:
            reason = exc.reason
            if "StopIteration" in reason:
                reason += " (end a run by returning DONE)"
            out = Outcome("", FAIL, reason)
        except MissingData as exc:
            out = Outcome("", NA, str(exc).splitlines()[0])
        except UserError as exc:
            out = Outcome("", FAIL if ctx.subject.name in str(exc) else NA, str(exc).splitlines()[0])
        except Exception as exc:  # noqa: BLE001 -- a check that cannot finish says why, in one line
            out = Outcome("", FAIL, f"check could not run: {describe_exception(exc)}")
    out.check = name
    out.seconds = time.perf_counter() - t0
    return out


def check(algorithm: str | type, params: dict[str, Any] | None = None, settings: Settings | None = None,
          only: tuple[str, ...] | list[str] | None = None,
          on_outcome: Callable[[Outcome], None] | None = None, oracle: Oracle | None = None) -> list[Outcome]:
    """Run the checks (``only``: their names, default :data:`CHECKS`) on ``algorithm`` (a spec
    or a class, see :meth:`Subject.of`) with ``params``; ``settings``: :class:`Settings`
    (default: the full ones). ``on_outcome`` is called after each check (to print as they
    finish). ``oracle``: an oracle object to check on instead of ``settings.oracle``."""
    settings = settings or Settings()
    names = list(only) if only else list(CHECKS)
    unknown = set(names) - set(CHECKS)
    if unknown:
        raise UserError(f"unknown check(s) {', '.join(sorted(unknown))}; the checks: {', '.join(CHECKS)}")
    ctx = Context(Subject.of(algorithm, params), settings, oracle)
    out = []
    for name in names:
        o = run_check(ctx, name)
        out.append(o)
        if on_outcome is not None:
            on_outcome(o)
    return out


def format_outcome(o: Outcome) -> str:
    mark = {PASS: "pass", FAIL: "FAIL", NA: "n/a "}[o.status]
    return f"  {mark}  {o.check:<19} {o.reason}  ({o.seconds:.1f} s)"


def summary_line(outcomes: list[Outcome]) -> str:
    n = {s: sum(o.status == s for o in outcomes) for s in (PASS, FAIL, NA)}
    return f"{n[PASS]} passed, {n[FAIL]} failed, {n[NA]} not applicable"


def format_comparison_table(details: dict[str, Any]) -> list[str]:
    """The samples-to-optimum comparison as lines: per algorithm the median and mean samples
    with their bootstrap intervals and how many runs found the optimum."""
    from .statistics import samples_to_optimum_cis
    lines = [f"  samples to the optimum of {details['oracle']} (cap {details['budget']:,}):"]
    for label, r in details["runs"].items():
        t, e = np.array(r["samples"]), np.array(r["found"])
        cis = samples_to_optimum_cis(t, ~e, details["budget"])
        med, mean = cis["median"], cis["mean"]

        def f(x):
            return "?" if x is None else f"{x:,.0f}"
        lines.append(f"    {label:<24} median {f(med.value)} [{f(med.lo)}, {f(med.hi)}]  "
                     f"mean {f(mean.value)} [{f(mean.lo)}, {f(mean.hi)}]  found {int(e.sum())}/{len(e)}")
    return lines


def passed(outcomes: list[Outcome]) -> bool:
    return not any(o.failed for o in outcomes)



if __name__ == "__main__":     # the fresh process of the resume check: a job as JSON on stdin
    import json
    _job = json.load(sys.stdin)
    json.dump(_fresh_run(_job["name"], _job["params"], _job["oracle"], _job["seed"], _job["budget"]), sys.stdout)
