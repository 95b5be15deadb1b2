"""The ask/tell surface every search algorithm implements (after Optuna's samplers).

The runner owns the loop; an algorithm owns only its own state. Most algorithms propose
architectures and learn from their values::

    algo = RandomSearch()                # constructor stores configuration only
    algo.start(space, rng)               # fresh state for one run
    arch = algo.ask()                    # an architecture, WAIT or DONE
    algo.tell(arch, observation)         # an Observation: search score, cost, train acc.

Algorithms that choose fidelities, continue trials or keep a book of outstanding asks
(multi-fidelity methods, anything that must match results to asks under asynchronous
workers) work with trials instead, by overriding :meth:`SearchAlgorithm.ask_trial` and
:meth:`SearchAlgorithm.tell_trial`::

    algo.start(space, rng, fidelities)   # uses_fidelities = True: the oracle's Fidelities
    ask = algo.ask_trial()               # Ask(arch, fidelity, continues), an arch, WAIT or DONE
    algo.tell_trial(trial, observation)  # Trial(id, arch, fidelity, continues)

The runner numbers trials 0, 1, 2, ... in the order it receives the asks (every answer of
``ask_trial`` that is not WAIT or DONE is the next trial), so an algorithm that needs a
trial's id before its result counts its own asks. Results may arrive in any order once a run has several workers
(``workers_per_run``): trials finish in the order of their simulated training time. The
default ``ask_trial``/``tell_trial`` call ``ask``/``tell``, so a plain algorithm runs
unchanged with any number of workers.

An algorithm ends its run by returning :data:`DONE` (e.g. every architecture of a finite
space evaluated) and says "nothing to ask until a result arrives" with :data:`WAIT` (a
synchronous rung of successive halving, a batch still being evaluated). Raising
``StopIteration`` is *not* a way to end a run: it fails the run like any other exception,
so a stray ``StopIteration`` from a bug never passes for an exhausted space.

The observation's ``value`` is always a score to maximise: for an oracle whose metric is
minimised (perplexity, loss) the runner negates it before telling the algorithm, so every
algorithm maximises and none needs to know the direction.

Algorithms see the search space and :class:`~oracles.oracle.Observation` objects, never the
oracle, so they cannot read test metrics. Every source of randomness must come from the
``rng`` given to :meth:`start` (torch-based algorithms seed their generators from it), so
that a (configuration, seed) pair gives the same trajectory on any executor.

Hyper-parameters are keyword arguments of ``__init__`` whose defaults are the published
values (or, where a printed value does not reproduce the paper's own results, the value
that does, with the printed one kept as a named preset); :meth:`get_params` reads them back
for the run's metadata (as scikit-learn does).

Each algorithm also describes itself for ``nas-harness algorithms list|info``: ``summary``
(one line), ``paper`` (authors, title and the sections implemented; full references in
docs/bibliography.md), ``presets`` (named sets of parameter values, chosen with the
constructor's ``preset`` parameter) and ``extra`` (the optional dependency group it needs).
Parameter meanings come from the numpy-style "Parameters" section of the class docstring
(:func:`param_docs`), so the documentation users read and the one ``info`` prints are one.
"""

from __future__ import annotations

import inspect
import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from oracles.oracle import Fidelities, Observation
from oracles.space import Arch, SearchSpace


class _Signal:
    """A named answer of ``ask`` that is not an architecture (:data:`WAIT`, :data:`DONE`)."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name

    def __reduce__(self):  # unpickles to the same object, so ``is`` comparisons hold
        return self.name


#: ``ask`` has nothing to propose until one of the running trials reports back
WAIT = _Signal("WAIT")
#: ``ask`` has nothing more to propose: the run is over (e.g. a finite space exhausted)
DONE = _Signal("DONE")


@dataclass(frozen=True, slots=True)
class Ask:
    """What an algorithm asks to have evaluated.

    ``fidelity``: the training budget (e.g. epochs, one of the oracle's
    :class:`~oracles.oracle.Fidelities`); ``None`` means the oracle's highest.
    ``continues``: the id of an earlier trial of the same architecture to continue to this
    higher fidelity. On *prefix* fidelities (epochs of one learning curve) it pays only the
    extra epochs; on *restart* fidelities (separate trainings, e.g. NB201's 12 and 200 epochs)
    continuing is a new training and costs the full fidelity.
    """

    arch: Arch
    fidelity: int | None = None
    continues: int | None = None


@dataclass(frozen=True, slots=True)
class Trial:
    """One evaluation the runner scheduled: ``id`` is its position among the run's asks
    (0, 1, 2, ...), ``fidelity`` the resolved training budget (never ``None``)."""

    id: int
    arch: Arch
    fidelity: int
    continues: int | None = None


class Configured:
    """Configuration as constructor keyword arguments, scikit-learn style: every ``__init__``
    parameter is a hyper-parameter with a default, stored under its own name. Shared by the
    query-based algorithms (:class:`SearchAlgorithm`) and the weight-sharing ones
    (:class:`algorithms.one_shot.OneShotMethod`)."""

    @classmethod
    def param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        sig = inspect.signature(cls.__init__)
        return {n: sig.parameters[n].default for n in cls.param_names()}

    def get_params(self) -> dict[str, Any]:
        return {n: getattr(self, n) for n in self.param_names()}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


class SearchAlgorithm(Configured, ABC):
    #: name used on the command line and in results
    name: ClassVar[str] = ""
    #: True if the algorithm needs an enumerable space
    needs_finite_space: ClassVar[bool] = False
    #: one line for ``nas-harness algorithms list`` (default: the class docstring's first line)
    summary: ClassVar[str] = ""
    #: the paper behind the algorithm and its defaults: authors, title, sections
    paper: ClassVar[str] = ""
    #: named presets, preset name -> {parameter: value}; the constructor's ``preset``
    #: parameter picks one, and parameters given explicitly override it
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    #: optional dependency group (``pip install 'nas-harness[EXTRA]'``) the algorithm needs
    extra: ClassVar[str | None] = None
    #: True if the algorithm chooses fidelities: ``start`` then takes the oracle's
    #: :class:`~oracles.oracle.Fidelities` as a third argument, and the runner refuses
    #: oracles with a single fidelity
    uses_fidelities: ClassVar[bool] = False

    # -- configuration ------------------------------------------------------------------
    @classmethod
    def param_docs(cls) -> dict[str, str]:
        """Parameter name -> meaning, from the class docstring's "Parameters" section."""
        return param_docs(cls.__doc__ or "")

    @classmethod
    def one_line(cls) -> str:
        """:attr:`summary`, or the first line of the class docstring."""
        if cls.summary:
            return cls.summary
        doc = inspect.cleandoc(cls.__doc__ or "")
        return doc.split("\n\n")[0].replace("\n", " ").strip()

    # -- the search -----------------------------------------------------------------
    @abstractmethod
    def start(self, space: SearchSpace, rng: np.random.Generator) -> None:
        """Reset all state for a new run on ``space``; ``rng`` is the run's only randomness.

        Algorithms with ``uses_fidelities = True`` take a third argument, the oracle's
        :class:`~oracles.oracle.Fidelities`."""

    @abstractmethod
    def ask(self) -> Any:
        """The next architecture to evaluate, or :data:`WAIT` / :data:`DONE`."""

    @abstractmethod
    def tell(self, arch: Arch, observation: Observation) -> None:
        """The result of evaluating ``arch`` (also called for repeats answered from cache)."""

    def ask_trial(self) -> Any:
        """The next trial: an :class:`Ask`, a bare architecture (an ask at the highest
        fidelity), :data:`WAIT` or :data:`DONE`. By default, :meth:`ask`."""
        return self.ask()

    def tell_trial(self, trial: Trial, observation: Observation) -> None:
        """The result of ``trial`` (results may come in any order with several workers).
        By default, :meth:`tell` with the trial's architecture."""
        self.tell(trial.arch, observation)

    def diagnostics(self) -> dict[str, Any]:
        """Optional JSON-able facts about the finished run (stored in its metadata)."""
        return {}


_SECTION_RULE = re.compile(r"^-{3,}\s*$")
_ENTRY = re.compile(r"^(\w+(?:\s*,\s*\w+)*)\s*:(?!:)\s*(.*)$")


def param_docs(doc: str) -> dict[str, str]:
    """Parse a numpy-style "Parameters" section into {name: meaning}.

    Accepts ``name:`` (meaning on the indented lines below), ``name: meaning`` on one line,
    ``name : type`` (numpydoc; the type is kept as the first words of the meaning) and
    several names sharing one meaning (``a, b: ...``). The section ends at the next section
    heading or at a line back at the left margin that is not an entry.
    """
    lines = inspect.cleandoc(doc).splitlines()
    try:
        start = next(i for i in range(len(lines) - 1)
                     if lines[i].strip() == "Parameters" and _SECTION_RULE.match(lines[i + 1].strip()))
    except StopIteration:
        return {}
    base = len(lines[start]) - len(lines[start].lstrip())
    out: dict[str, list[str]] = {}
    current: list[str] = []
    for i in range(start + 2, len(lines)):
        line = lines[i]
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent <= base:
            if i + 1 < len(lines) and _SECTION_RULE.match(lines[i + 1].strip()):
                break           # the next section's heading
            m = _ENTRY.match(line.strip())
            if not m:
                break
            current = [m.group(2).strip()] if m.group(2).strip() else []
            for name in m.group(1).split(","):
                out[name.strip()] = current    # names sharing one meaning share the list
        elif current is not None:
            current.append(line.strip())
    return {k: " ".join(v).strip() for k, v in out.items()}


class FailedResults:
    """The one rule for a failed result: it is the worst result the algorithm has been told.

    A failed result is a non-finite score: a training that diverged (NAS-Bench-NLP's cells
    whose loss became NaN answer ``+inf`` loss, which the runner negates into a score of
    ``-inf``). It is an evaluated architecture the budget paid for, and the result is
    information, the worst kind: the cell cannot be trained with this recipe. It is never a
    crash (an infinite reward or regression target turns a controller's probabilities or a
    predictor's weights into NaN at its first update) and never a free retry or a neutral
    value (a substitute such as ``0.0`` is *better* than every negated loss, and draws a
    tree search to the failing region).

    Rule: wherever an algorithm turns observations into numbers for its model (rewards,
    regression targets, node statistics), a failed result counts as **the worst finite score
    the algorithm has been told so far**. It ranks with the worst real result and keeps the
    model on the scale of real results: no infinite target, and no invented floor whose
    meaning would depend on the metric's units. The number is fixed when it is given; a
    later, worse result does not lower it (tree totals and policy updates already spent it).

    Before any finite score there is no scale, and any fixed floor would be a guess (``0.0``
    is the best possible score of a negated loss and the worst of an accuracy), so failures
    are **held back**: :meth:`tell` returns them, in the order they were told and valued at
    the first finite score, together with that score. Until then the algorithm keeps its
    bookkeeping (the architecture is evaluated: never asked again by algorithms that do not
    repeat) but learns nothing from them; every result so far was a failure, so there was
    nothing to tell them apart by.

    Algorithms that only *rank* results (TPE's and BOHB's good/bad split, successive
    halving, regularized evolution's tournaments) may keep a failure as ``-inf``: below every
    finite result, the same order with ties broken against the failure.

    Usage, in ``tell``::

        score, released = self._failures.tell(observation.value, item)
        for held, value in released:         # failures told before any finite score
            self._learn(held, value)
        if score is not None:
            self._learn(item, score)

    ``item`` is whatever the algorithm needs to learn from the result later (its tokens,
    its encoding); it is returned unchanged.

    An algorithm that keeps running sums (MCTS's per-node rewards) may instead count the
    failures apart and value them *when it uses the sums*, at the current :attr:`worst`
    (:meth:`observe`): the same rule, read at the time of use, so that failures told early,
    when the worst result was still a good one, do not keep that good value. (Measured on
    MCTS, whose UCB constant is small against a loss's scale: valued when told, early
    failures made their subtrees look good and it asked failed cells more often than random
    search on a table where 62 % of the cells fail.)
    """

    __slots__ = ("worst", "n_failed", "_held")

    def __init__(self):
        #: the lowest finite score told so far (None before the first)
        self.worst: float | None = None
        #: failed results told so far (held ones included)
        self.n_failed = 0
        self._held: list = []

    @staticmethod
    def failed(value) -> bool:
        """True if ``value`` is a failed result (not a finite number)."""
        return not math.isfinite(float(value))

    def tell(self, value, item=None) -> tuple[float | None, list[tuple[Any, float]]]:
        """Score ``value`` by the rule: ``(score, released)``.

        ``score`` is the finite number to learn ``item`` with, or None while the failure is
        held back; ``released`` lists ``(held item, score)`` of failures held back until now
        (non-empty only at the first finite score), to be learnt before ``item``."""
        v = float(value)
        if math.isfinite(v):
            released = [(held, v) for held in self._held] if self._held else []
            self._held = []
            if self.worst is None or v < self.worst:
                self.worst = v
            return v, released
        self.n_failed += 1
        if self.worst is None:
            self._held.append(item)
            return None, []
        return self.worst, []

    def observe(self, value) -> bool:
        """Record ``value`` (the worst finite score, the count of failures) without holding
        anything back; True if it is a failed result, to be valued at :attr:`worst` when used."""
        v = float(value)
        if math.isfinite(v):
            if self.worst is None or v < self.worst:
                self.worst = v
            return False
        self.n_failed += 1
        return True

    @property
    def n_held(self) -> int:
        """Failures told before any finite score, not yet released."""
        return len(self._held)


def torch_seed(rng: np.random.Generator) -> int:
    """A torch seed derived from the run's generator (keeps torch draws reproducible)."""
    return int(rng.integers(2**62))
