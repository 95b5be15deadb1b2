"""One run: (algorithm, oracle, seed, budget) -> every trial recorded.

The protocol (Wang et al., Sample-Efficient Neural Architecture Search by Learning Action
Space, §4, Fig. 5): the budget counts *distinct* architectures. A repeated query is
answered from the run's cache, told to the algorithm again, recorded with ``repeat=True``
and not charged -- unless ``charge_repeats`` is set. With ``until_optimum`` the run stops at
the first architecture in the oracle's optimum set; a run that reaches the budget cap first
is censored.

How a trial flows (see :mod:`algorithms.base` for the algorithm's side): the algorithm asks
(an architecture, or an :class:`~algorithms.base.Ask` with a fidelity and the trial it
continues); the runner numbers the trial, answers it from the run's cache or the oracle,
and puts it on a **simulated clock** with ``workers_per_run`` workers: it starts when a
worker is free and finishes after its simulated training time, and results are told in
order of (finish time, trial id), as on a cluster of that many GPUs (the simulator backend
of Syne Tune is the reference behaviour). A trial's training time is the oracle's cost at
its fidelity (seconds) where the oracle has one, else its fidelity (epochs); continuing a
trial on *prefix* fidelities pays only the extra part, on *restart* fidelities the whole;
an answer from the cache takes no time. The epochs a trial pays are its fidelity's (the
extra part for a prefix continuation), unless the oracle's answer says otherwise
(``Evaluation.epochs``: a live supernet's epochs are shared by every architecture). With one worker a trial is told before the next
ask, which is the sequential ask -> query -> tell loop exactly. Records are written in tell
order and carry the trial id, fidelity, start and finish times and the epochs paid.

Budgets (``budget_kind``): ``archs`` (default) counts charged evaluations (distinct
architectures, or distinct (architecture, fidelity) pairs for multi-fidelity algorithms);
``queries`` every ask; ``time`` the simulated clock (no trial starts at or after the
budget); ``epochs`` the training epochs paid, running trials included. Trials still running
when the budget stops new asks finish and are recorded; trials running when the optimum
is found or the run is stopped are abandoned.

Direction: an oracle's metrics are maximised or minimised; algorithms are always told
scores to maximise (the runner negates minimised values), records keep the metric's own
values, and ``best_*`` columns follow the direction. They consider evaluations at the
oracle's highest fidelity only (a 12-epoch accuracy is not comparable with a 200-epoch one),
and so does ``until_optimum``.

A run ends in one of three ways, and only the last one is not a finished run:

* normally: the budget is spent, the optimum found, or the algorithm has nothing left to
  ask (it returned ``DONE``: ``exhausted_space``); the summary's ``stopped`` is None;
* **stopped** by the runner: an algorithm that re-asks known architectures ``max_repeats``
  times in a row would spin forever, so the run ends there with its records so far and
  ``stopped`` = the reason (one line, the same for every run stopped for it, so summaries can
  group runs by reason). Its ``n_distinct`` says how far it got; with ``until_optimum`` it is
  ``censored`` (samples-to-optimum unknown, larger than ``n_distinct``). It is a result about
  the algorithm, deterministic like any other, so a resumed experiment does not redo it;
* **failed**: the algorithm (or the space or oracle answering the architecture it asked)
  raised an exception -- ``StopIteration`` included: ending a run is ``DONE``'s job, so a
  stray ``StopIteration`` from a bug is never taken for an exhausted space. The summary's
  ``failed`` holds ``"Type: message (file:line in function)"`` and ``traceback`` the full
  traceback; the experiment records the failure instead of the run
  (:meth:`harness.results.ResultsStore.write_failure`) and retries it on the next execution.
  A bug in one run never takes the other runs with it.

Randomness: the run's seed makes one :class:`numpy.random.SeedSequence`, split into an
algorithm stream and an oracle stream (for oracles that draw one training run per query),
so a run's trajectory depends on nothing but its configuration and seed.

Cost: the runner's own work per query is a cache look-up, the oracle's answer, a heap push
and pop and a few list appends. On finite spaces the cache is keyed by enumeration index
(identity and string form are computed once per distinct architecture, and only once where
a space's string form is its identity), the records are gathered from the per-evaluation
answers in one vectorised step at the end, and the algorithm's time takes three reads of the
performance counter per query; its CPU time is its share of the run's wall time times the
run's CPU time (two reads of the CPU clock per run: one costs a system call, 2.7 µs here,
more than the rest of the runner's work per query). ``tests/benchmarks/bench_runner.py``.
"""

from __future__ import annotations

import heapq
import time
import traceback
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np

from algorithms import make_algorithm
from algorithms.base import DONE, WAIT, Ask, SearchAlgorithm, Trial
from oracles.errors import UserError
from oracles.oracle import Observation, Oracle, TabularOracle

#: version of the run protocol; bumped when recorded numbers would change
PROTOCOL = 1

#: the reason a run stuck on known architectures is stopped with (summary ``stopped``)
STUCK_REASON = "stuck: asked {n} already-evaluated architectures in a row (max_repeats)"


def setting(default, help: str, *, type=None, low=None, choices=None, flag: str | None = None):
    """A field of a run or an experiment, declared once: its default, its meaning (the
    command line's help) and how a TOML file or a flag's value is checked (``type``: the
    accepted Python types; ``low``: the least value; ``choices``: the allowed values).
    :mod:`harness.experiment` builds the experiment, its TOML reader and the ``run``
    command's flags from these declarations."""
    meta = {"help": help, "type": type if type is not None else builtin_type(default),
            "low": low, "choices": choices, "flag": flag}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def builtin_type(value) -> tuple[type, ...]:
    return (bool,) if isinstance(value, bool) else (type(value),)


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run apart from its seed. The fields after ``oracle`` are
    the run *settings*: an experiment has each of them (same name, default and meaning)."""

    algorithm: str                          #: registry name, e.g. ``"lanas"``
    params: dict[str, Any] = field(default_factory=dict)  #: full hyper-parameters
    oracle: str = ""                        #: oracle spec, e.g. ``"nb201/cifar10"``
    budget: int | float | None = setting(
        None, "what a run may spend, in the unit of --budget-kind (default: the space size; "
        "time and epoch budgets must be given)", type=(int, float), low=1)
    budget_kind: str = setting(
        "archs", "what the budget counts: archs (distinct architectures evaluated), queries (every "
        "ask), time (simulated training time), epochs (training epochs paid)",
        choices=("archs", "queries", "time", "epochs"))
    until_optimum: bool = setting(
        False, "stop each run when it finds a global optimum (censored at the budget)")
    charge_repeats: bool = setting(False, "count repeated queries against the budget")
    max_repeats: int = setting(10_000, "stop a run after this many repeated queries in a row", low=1)
    workers_per_run: int = setting(
        1, "simulated workers of one run: trials finish in order of their simulated training "
           "time, as on a cluster of that many GPUs (1: the sequential loop)", low=1)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def settings(cls) -> list:
        """The dataclass fields that are run settings (everything after ``oracle``)."""
        return [f for f in fields(cls) if f.metadata]

    def settings_dict(self) -> dict[str, Any]:
        """The settings as a cell configuration stores them. Settings added after the first
        release are left out at their defaults, so existing results folders and baselines keep
        their configuration fingerprints (:data:`LEGACY_SETTINGS` are always written)."""
        out = {}
        for f in self.settings():
            value = getattr(self, f.name)
            if f.name in LEGACY_SETTINGS or value != f.default:
                out[f.name] = value
        return out

    @classmethod
    def from_settings(cls, algorithm: str, params: dict[str, Any], oracle: str,
                      stored: dict[str, Any]) -> "RunConfig":
        """The run configuration a cell's stored configuration describes (absent: default)."""
        return cls(algorithm=algorithm, params=params, oracle=oracle,
                   **{f.name: stored[f.name] for f in cls.settings() if f.name in stored})


#: run settings every cell configuration holds (those of the first protocol)
LEGACY_SETTINGS = ("budget", "until_optimum", "charge_repeats", "max_repeats")


#: what a budget counts: charged evaluations (distinct architectures), every ask, simulated
#: training time (the oracle's cost unit, else epochs), training epochs
BUDGET_KINDS = RunConfig.__dataclass_fields__["budget_kind"].metadata["choices"]


def resolve_budget(config: RunConfig, oracle: Oracle) -> int | float:
    """The run's budget in its kind's unit: architecture budgets are capped at the space size
    (the default where none is given); time and epoch budgets must be given."""
    kind = config.budget_kind
    if kind not in BUDGET_KINDS:
        raise UserError(f"budget_kind must be one of {', '.join(BUDGET_KINDS)}, got {kind!r}")
    size = oracle.space.size
    if kind in ("time", "epochs"):
        if config.budget is None or not config.budget > 0:
            raise UserError(f"a {kind} budget needs a positive --budget (simulated "
                            f"{'training time' if kind == 'time' else 'training epochs'}), got {config.budget}")
        return config.budget
    if config.budget is None:
        if size is None:
            raise UserError(f"oracle {oracle.name} has an infinite space: give --budget")
        return int(size)
    if config.budget < 1:
        raise UserError(f"budget must be a positive number of architectures, got {config.budget}")
    if kind == "queries" or size is None:
        return int(config.budget)
    return min(int(config.budget), int(size))


def run_one(config: RunConfig, oracle: Oracle, seed: int,
            progress: Callable[[int], None] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Run one search; return (records as column arrays, run summary).

    Configuration errors (unknown algorithm or parameter, bad budget) raise
    :class:`UserError`; anything the algorithm raises once started ends the run as failed
    (see the module docstring), with the records up to then.

    The run uses one BLAS/OpenMP thread. Runs are the unit of parallelism (executors run
    several at once), and the algorithms' linear algebra is small (e.g. LaNAS factors a
    31 x 31 Gram matrix per node): multi-threaded OpenBLAS spends far more time waking
    threads than computing, 14x slower for LaNAS on a busy 2-core machine (issue 8,
    "Speed"). One thread everywhere also keeps floating-point results the same under
    every executor (Ray already pins its workers to one thread).
    """
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1):
        return _run_one(config, oracle, seed, progress)


def check_fidelities(name: str, algo: SearchAlgorithm, oracle: Oracle) -> None:
    """One line, unless the oracle serves the fidelities the algorithm needs (several, for
    one that chooses them)."""
    fids = oracle.fidelities
    if getattr(algo, "uses_fidelities", False) and (fids is None or len(fids.values) < 2):
        raise UserError(f"{name} chooses fidelities; oracle {oracle.name} serves "
                        f"{'none' if fids is None else 'only ' + str(fids.max)}: use one that serves several "
                        f"(e.g. nb201/cifar10:fidelities=all)")


def check_features(name: str, algo: SearchAlgorithm, oracle: Oracle) -> None:
    """One line, unless the oracle declares every feature the algorithm requires (MLPNAS's
    one-shot option needs an oracle whose networks share weights within a run: trained
    independently they would not be one-shot, so the run is refused rather than run quietly
    as something else)."""
    requirements = getattr(algo, "oracle_requirements", None)
    missing = sorted(set(requirements()) - set(oracle.features)) if requirements is not None else []
    if missing:
        raise UserError(f"{name} needs an oracle with {', '.join(missing)}; oracle {oracle.name} has "
                        f"{', '.join(sorted(oracle.features)) or 'no such feature'}")


def describe_exception(exc: BaseException) -> str:
    """One line: ``Type: first line of the message (file:line in function)``, the place being
    the innermost frame of the traceback (where the error was raised)."""
    msg = str(exc).strip().splitlines()
    text = type(exc).__name__ + (f": {msg[0]}" if msg else "")
    tb = traceback.extract_tb(exc.__traceback__)
    if tb:
        frame = tb[-1]
        path = Path(frame.filename)
        # the file and its folder; a file at the root keeps its own name ('/boom.py', not '//boom.py')
        where = str(Path(*path.parts[-2:])) if len(path.parts) > 2 else str(path)
        text += f" ({where}:{frame.lineno} in {frame.name})"
    return text


#: the reason a run whose algorithm waits with no trial running fails with
WAIT_WITH_NOTHING_RUNNING = "the algorithm answered WAIT while no trial was running (nothing would ever arrive)"


# One distinct (architecture, fidelity) evaluation of a run is a tuple (a class instance
# costs a Python-level __init__ per query): its canonical slot, the oracle's answer, the
# observation the algorithm is told (a score to maximise), the fidelity, its training time
# on the simulated clock and the epochs it paid.
EV_SLOT, EV_ANSWER, EV_TOLD, EV_FIDELITY, EV_DURATION, EV_EPOCHS = range(6)


def _run_one(config: RunConfig, oracle: Oracle, seed: int,
             progress: Callable[[int], None] | None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    algo = make_algorithm(config.algorithm, config.params)
    budget = resolve_budget(config, oracle)
    budget_kind = config.budget_kind
    workers = int(config.workers_per_run)
    if workers < 1:
        raise UserError(f"workers_per_run must be at least 1, got {workers}")
    space = oracle.space
    fids = oracle.fidelities
    top = fids.max if fids is not None else -1
    prefix = fids is not None and fids.kind == "prefix"
    uses_fidelities = getattr(algo, "uses_fidelities", False)
    check_fidelities(config.algorithm, algo, oracle)
    check_features(config.algorithm, algo, oracle)
    if config.until_optimum and oracle.optimum is None:
        raise UserError(f"oracle {oracle.name} has no known optimum: drop --until-optimum")
    algo_ss, oracle_ss = np.random.SeedSequence(int(seed)).spawn(2)
    algo_rng, oracle_rng = np.random.default_rng(algo_ss), np.random.default_rng(oracle_ss)
    optimum = oracle.optimum.identities if config.until_optimum else frozenset()
    minimise = oracle.direction == "min"
    cache = oracle.deterministic
    finite = space.is_finite
    index_of = space.index if finite else None
    # TabularOracle.query(arch) is query_index(space.index(arch)): the index is computed once
    query_index = oracle.query_index if finite and type(oracle).query is TabularOracle.query else None
    charge_repeats, max_repeats = config.charge_repeats, config.max_repeats
    # plain algorithms are called directly (no default ask_trial/tell_trial in between)
    ask = algo.ask_trial if type(algo).ask_trial is not SearchAlgorithm.ask_trial else algo.ask
    trial_aware = type(algo).tell_trial is not SearchAlgorithm.tell_trial
    tell = algo.tell_trial if trial_aware else algo.tell

    identity, to_string = space.identity, space.to_string
    # a space whose string form is its identity by definition needs only one of the two
    text_is_identity = getattr(type(space), "to_string", None) is getattr(type(space), "identity", 0)
    # One "slot" per architecture met: its enumeration index (-1 on infinite spaces), identity
    # and string form. ``canon[slot]`` is the first slot with that identity (spaces where two
    # indices are one architecture share their evaluations; every query's recorded index
    # stays its own). Evaluations are keyed by (canonical slot, fidelity).
    slot_index: list[int] = []
    ids: list[str] = []
    texts: list[str] = []
    canon: list[int] = []
    by_index: dict[int, int] = {}
    by_ident: dict[str, int] = {}
    evals: list[tuple] = []
    done_at: list[float] = []          # per evaluation: when its training ends on the clock
    # evaluations by canonical slot, or by (slot, fidelity) where the oracle serves several
    eval_of: dict = {}
    single_fidelity = fids is None or len(fids.values) == 1
    top_epochs = float(max(top, 0))
    trial_eval: list[int] = []         # per trial id: its evaluation (for continuations)
    # a trial is the tuple (finish, id, start, slot, evaluation, new, charged, found, what is
    # told): running ones on a heap, told ones appended to ``rows`` with the algorithm's
    # cumulative time after its tell in ``r_time``
    running: list[tuple] = []
    rows: list[tuple] = []
    r_time: list[float] = []
    free = workers
    clock = 0.0
    charged = 0
    asked = 0
    epochs_paid = 0.0
    in_a_row = 0
    stop_asking = False
    samples_to_optimum = time_to_optimum = epochs_to_optimum = None
    stopped = failure = None
    exhausted = False
    # The algorithm's time is read with the performance counter around every ask and tell: a
    # CPU-clock read is a system call (2.7 µs measured, more than the runner's own work per
    # query), a performance-counter read is not (0.3 µs). The run's CPU time is read once at
    # each end, and the algorithm is charged its share of it (see ``algo_cpu_s``).
    cpu = time.perf_counter
    cpu0 = time.process_time()
    wall0 = cpu()
    algo_cpu = 0.0
    diagnostics: dict[str, Any] = {}
    try:
        t_prev = cpu()
        if uses_fidelities:
            algo.start(space, algo_rng, fids)
        else:
            algo.start(space, algo_rng)
        # t_prev: the clock after the algorithm's last call; the runner's own work per query
        # lies between the clock reads after ask and before tell
        t = cpu()
        algo_cpu += t - t_prev
        t_prev = t
        while True:
            # -- start trials while workers are free -------------------------------------
            while free and not stop_asking:
                if budget_kind == "archs":
                    stop_asking = charged >= budget
                elif budget_kind == "queries":
                    stop_asking = asked >= budget
                elif budget_kind == "time":
                    stop_asking = clock >= budget
                else:
                    stop_asking = epochs_paid >= budget
                if stop_asking:
                    break
                a = ask()
                t = cpu()
                algo_cpu += t - t_prev
                t_prev = t
                if a is WAIT:
                    if not running:
                        raise RuntimeError(WAIT_WITH_NOTHING_RUNNING)
                    break
                if a is DONE:
                    exhausted = stop_asking = True
                    break
                if type(a) is Ask:
                    arch, fidelity, continues = a.arch, a.fidelity, a.continues
                    if fidelity is None:
                        fidelity = top
                    elif fids is None or fidelity not in fids.values:
                        raise ValueError(f"asked for fidelity {fidelity}; the oracle serves "
                                         f"{None if fids is None else list(fids.values)}")
                else:
                    arch, fidelity, continues = a, top, None
                tid = asked
                asked += 1
                if finite:
                    i = index_of(arch)
                    slot = by_index.get(i)
                    if slot is None:
                        ident = identity(arch)
                        slot = by_index[i] = len(slot_index)
                        slot_index.append(i)
                        c = by_ident.setdefault(ident, slot)
                        canon.append(c)
                        ids.append(ident)
                        texts.append(ident if text_is_identity else (texts[c] if c != slot else to_string(arch)))
                else:
                    ident = identity(arch)
                    slot = by_ident.get(ident)
                    if slot is None:
                        slot = by_ident[ident] = len(slot_index)
                        slot_index.append(-1)
                        canon.append(slot)
                        ids.append(ident)
                        texts.append(ident if text_is_identity else to_string(arch))
                c = canon[slot]
                key = c if single_fidelity else (c, fidelity)
                e = eval_of.get(key) if cache else None
                new = e is None
                if new:
                    in_a_row = 0
                    # the default fidelity is asked without one (oracles written before
                    # fidelities existed answer those queries unchanged)
                    if fidelity == top:
                        answer = (query_index(i, oracle_rng) if query_index is not None
                                  else oracle.query(arch, oracle_rng))
                    else:
                        answer = (query_index(i, oracle_rng, fidelity) if query_index is not None
                                  else oracle.query(arch, oracle_rng, fidelity))
                    obs = answer.observation
                    told = Observation(-obs.value, obs.cost, obs.train) if minimise else obs
                    # the price of this evaluation: its fidelity's epochs and training time,
                    # or for a continuation on prefix fidelities only the part not yet trained
                    cost = obs.cost
                    if continues is None:
                        ep = top_epochs if fidelity == top else float(max(fidelity, 0))
                        dur = cost if cost is not None and cost == cost else (ep if fids is not None else 1.0)
                    else:
                        ep, dur = _continuation_price(evals, trial_eval, tid, continues, c, fidelity, cost,
                                                      prefix)
                    if answer.epochs is not None:   # an oracle whose epochs are shared says what it paid
                        ep = float(answer.epochs)
                    e = len(evals)
                    evals.append((c, answer, told, fidelity, dur, ep))
                    done_at.append(0.0)
                    if cache:
                        eval_of[key] = e
                    charged += 1
                    pay = True
                    if progress is not None:
                        progress(1)
                else:
                    if charge_repeats:
                        in_a_row = 0
                        charged += 1
                        pay = True
                    else:
                        in_a_row += 1
                        pay = False
                        if in_a_row >= max_repeats:
                            # recorded, not told: the run stops on it
                            rows.append((clock, tid, clock, slot, e, False, False, False, None))
                            r_time.append(algo_cpu)
                            stopped = STUCK_REASON.format(n=in_a_row)
                            break
                trial_eval.append(e)
                if pay:
                    ev = evals[e]
                    epochs_paid += ev[EV_EPOCHS]
                    finish = clock + ev[EV_DURATION]
                    if new:
                        done_at[e] = finish
                else:
                    # a cached answer is free, but not known before its training has finished
                    # (with several workers the first evaluation may still be running)
                    finish = clock if clock >= done_at[e] else done_at[e]
                found = new and fidelity == top and ids[c] in optimum
                heapq.heappush(running, (finish, tid, clock, slot, e, new, pay, found,
                                         Trial(tid, arch, fidelity, continues) if trial_aware else arch))
                free -= 1
            if stopped is not None or not running:
                break
            # -- the next trial to finish is told ---------------------------------------
            row = heapq.heappop(running)
            clock = row[0]
            free += 1
            t_prev = cpu()
            tell(row[8], evals[row[4]][EV_TOLD])
            t = cpu()
            algo_cpu += t - t_prev
            t_prev = t
            rows.append(row)
            r_time.append(algo_cpu)
            if row[7]:
                # evaluations completed by then (with one worker, every one started)
                samples_to_optimum = sum(r[6] for r in rows)
                time_to_optimum = clock
                break
        diagnostics = algo.diagnostics()
    except Exception as exc:  # noqa: BLE001 -- any error of the algorithm fails this run only
        failure = exc
    wall = cpu() - wall0
    # the algorithm's share of the run's wall time, applied to the run's CPU time
    share = (time.process_time() - cpu0) / wall if wall > 0 else 1.0
    algo_cpu *= share
    records = _finish_records(rows, r_time, share, slot_index, ids, texts, evals, minimise, top)
    n = len(records["sample"])
    if samples_to_optimum is not None:
        epochs_to_optimum = float(records["epochs"].sum())
    summary = {
        "seed": int(seed),
        "budget": budget,
        "n_queries": n,
        "n_distinct": int(records["n_distinct"][-1]) if n else 0,
        "n_repeats": int(records["repeat"].sum()),
        "reached_optimum": samples_to_optimum is not None,
        "samples_to_optimum": samples_to_optimum,
        "censored": bool(config.until_optimum and samples_to_optimum is None),
        "exhausted_space": exhausted,
        "stopped": stopped,
        "best_search": _last(records["best_search"]),
        "best_report": _last(records["best_report"]),
        "incumbent_report": _last(records["incumbent_report"]),
        "total_cost": float(records["cum_cost"][-1]) if n else None,
        "algo_cpu_s": float(algo_cpu),
        "wall_s": wall,
        "diagnostics": diagnostics,
    }
    if workers > 1 or fids is not None and len(fids.values) > 1 or budget_kind != "archs":
        summary.update({"clock": float(records["finish"].max()) if n else 0.0,
                        "total_epochs": float(records["epochs"].sum()),
                        "time_to_optimum": time_to_optimum, "epochs_to_optimum": epochs_to_optimum})
    if failure is not None:
        summary["failed"] = describe_exception(failure)
        summary["traceback"] = "".join(traceback.format_exception(failure))
    return records, summary


def _continuation_price(evals: list[tuple], trial_eval: list[int], tid: int, continues: int, slot: int,
                        fidelity: int, cost: float | None, prefix: bool) -> tuple[float, float]:
    """(epochs, training time) of trial ``tid``, which continues trial ``continues`` of the
    same architecture to ``fidelity``: on prefix fidelities only the part of the curve not
    yet trained, on restart fidelities (a new training) the whole."""
    b = trial_eval[continues] if 0 <= continues < len(trial_eval) else None
    if b is None or evals[b][EV_SLOT] != slot:
        raise ValueError(f"trial {tid} continues trial {continues}, which is not an earlier trial of "
                         "the same architecture")
    base = evals[b] if prefix and evals[b][EV_FIDELITY] < fidelity else None
    ep = float(fidelity - base[EV_FIDELITY]) if base is not None else float(max(fidelity, 0))
    if cost is None or cost != cost:
        return ep, ep
    base_cost = None if base is None else base[EV_ANSWER].observation.cost
    return ep, (cost - base_cost if base_cost is not None and base_cost == base_cost else cost)


def _last(column: np.ndarray) -> float | None:
    return float(column[-1]) if len(column) else None


def _finish_records(rows: list[tuple], r_time: list[float], share: float, slot_index: list[int],
                    ids: list[str], texts: list[str], evals: list[tuple], minimise: bool,
                    top: int) -> dict[str, np.ndarray]:
    """Every told trial's record, gathered from the per-evaluation answers in one step."""
    n = len(rows)
    # a row: (finish, trial id, start, slot, evaluation, new, charged, found, told object)
    finish_, trial_, start_, slot_, eval_, new_, charged_ = list(zip(*rows))[:7] if n else ((),) * 7
    slots = np.asarray(slot_, dtype=np.int64)
    ev = np.asarray(eval_, dtype=np.int64)
    m = len(evals)
    repeat = ~np.asarray(new_, dtype=bool)
    charged = np.asarray(charged_, dtype=bool)
    obs = [x[EV_ANSWER].observation for x in evals]
    search = np.fromiter((o.value for o in obs), dtype=np.float64, count=m)[ev]
    report = np.fromiter((x[EV_ANSWER].report for x in evals), dtype=np.float64, count=m)[ev]
    cost = np.fromiter((np.nan if o.cost is None else o.cost for o in obs), dtype=np.float64, count=m)[ev]
    measured = np.fromiter((np.nan if x[EV_ANSWER].measured_s is None else x[EV_ANSWER].measured_s
                            for x in evals), dtype=np.float64, count=m)[ev]
    fidelity = np.fromiter((x[EV_FIDELITY] for x in evals), dtype=np.int64, count=m)[ev]
    epochs = np.where(charged, np.fromiter((x[EV_EPOCHS] for x in evals), dtype=np.float64, count=m)[ev], 0.0)
    # best-so-far columns follow the direction and count the highest fidelity only
    sign = -1.0 if minimise else 1.0
    at_top = fidelity == top
    # an answer of NaN (an oracle that could not say) never becomes the best so far
    score = np.where(at_top & ~np.isnan(search), sign * search, -np.inf)
    best = np.maximum.accumulate(score) if n else score
    # the incumbent: first evaluation at the top fidelity attaining the best score so far
    incumbent = np.full(n, -1, dtype=np.int64)
    if n:
        improved = np.r_[at_top[0], score[1:] > best[:-1]]
        incumbent = np.maximum.accumulate(np.where(improved, np.arange(n), -1))
    best_report = np.maximum.accumulate(np.where(at_top, sign * report, -np.inf)) if n else report
    with np.errstate(invalid="ignore"):
        best_search = np.where(best == -np.inf, np.nan, sign * best)
        best_report = np.where(best_report == -np.inf, np.nan, sign * best_report)
    incumbent_report = np.where(incumbent >= 0, report[np.maximum(incumbent, 0)], np.nan) if n else report
    # training seconds are paid by every charged query (a cached answer costs nothing): the
    # trial's duration, which for a prefix continuation is only the part not yet trained
    duration = np.fromiter((x[EV_DURATION] for x in evals), dtype=np.float64, count=m)[ev]
    paid = np.where(charged & ~np.isnan(cost), duration, 0.0)
    arch_id = np.asarray(ids, dtype=object)[slots] if len(ids) else np.zeros(0, dtype=object)
    out = {
        "sample": np.arange(1, n + 1, dtype=np.int64),
        "n_distinct": np.cumsum(charged).astype(np.int64),
        "arch_index": np.asarray(slot_index, dtype=np.int64)[slots],
        "arch_id": arch_id,
        "arch": np.asarray(texts, dtype=object)[slots] if len(ids) else np.zeros(0, dtype=object),
        "search": search,
        "report": report,
        "best_search": best_search,
        "best_report": best_report,
        "incumbent_report": incumbent_report,
        "cost": cost,
        "cum_cost": np.cumsum(paid),
        "repeat": repeat,
        "algo_cpu_s": np.asarray(r_time, dtype=np.float64) * share,
        "trial": np.asarray(trial_, dtype=np.int64),
        "fidelity": fidelity,
        "start": np.asarray(start_, dtype=np.float64),
        "finish": np.asarray(finish_, dtype=np.float64),
        "epochs": epochs,
        # what a live oracle measured, paid once per evaluation like ``cum_cost`` (a repeat
        # costs nothing); NaN where nothing was measured (tables)
        "measured_s": np.where(charged | np.isnan(measured), measured, 0.0),
    }
    # Where the string form is the identity (NB201, ConvNet) the column is kept once here;
    # the run file stores both (one schema for every file, see harness.results.run_table).
    if texts == ids:
        del out["arch"]
    return out
