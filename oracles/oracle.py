"""The Oracle interface: "how good is this architecture?".

``query(arch)`` returns an :class:`Evaluation` with two parts kept apart on purpose:

* ``observation`` -- what a search algorithm may see: the search metric (e.g. validation
  accuracy), the simulated training cost where the table has it, and the training
  accuracy where the table has it (NASES's reward uses it);
* ``report`` -- what only the harness may see: the report metric (e.g. test accuracy).

The runner hands algorithms the observation alone, so test accuracy cannot leak into a
search. An oracle says whether its metrics are maximised or minimised (``direction``), which
fidelities it answers at and of which kind (:class:`Fidelities`), whether its answers are
deterministic (a table) or not (a network trained live), and, where it is known, its global
optimum under the search metric (the set of architectures attaining the best value; ties
are possible). It counts the queries it answered.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .errors import UserError
from .space import Arch, FiniteSpace, SearchSpace
from .table import Table


@dataclass(frozen=True, slots=True)
class Observation:
    """What a search algorithm is told about an architecture.

    ``value`` is the search metric as a score to maximise: the runner negates the values of
    an oracle whose direction is ``"min"`` before an algorithm sees them."""

    value: float                  #: search score; accuracies are fractions in [0, 1]
    cost: float | None = None     #: simulated training time in seconds, if known
    train: float | None = None    #: training accuracy, if the table has it


@dataclass(frozen=True)
class Fidelities:
    """The training budgets an oracle answers at, in increasing order, and their kind.

    ``kind="restart"``: each fidelity is its own training with its own schedule (NB201's 12-
    and 200-epoch results, NB101's 4/12/36/108): a 12-epoch result is not the start of the
    200-epoch run, so moving a trial up costs the full higher fidelity.
    ``kind="prefix"``: the fidelities are epochs of one learning curve (NAS-Bench-NLP's 50
    epochs, a live oracle's training steps): continuing a trial from ``f0`` to ``f1`` costs
    only ``f1 - f0`` more epochs.
    ``unit`` names what a fidelity counts (``"epochs"``).
    """

    values: tuple[int, ...]
    kind: str = "restart"
    unit: str = "epochs"

    def __post_init__(self):
        if self.kind not in ("restart", "prefix"):
            raise ValueError(f"fidelity kind must be 'restart' or 'prefix', got {self.kind!r}")
        if not self.values or list(self.values) != sorted(set(self.values)):
            raise ValueError(f"fidelities must be distinct and increasing, got {self.values!r}")

    @property
    def max(self) -> int:
        return self.values[-1]

    @property
    def min(self) -> int:
        return self.values[0]


@dataclass(frozen=True, slots=True)
class Evaluation:
    observation: Observation
    report: float                 #: report metric (e.g. test accuracy): harness only
    #: seconds this answer took to compute here, measured (CPU seconds on a CPU, wall seconds
    #: on a GPU), 0 when it came from a store: harness only, recorded beside the deterministic
    #: ``observation.cost`` the clock schedules on. None for tables, which measure nothing.
    #: Not part of equality: two answers are the same answer however long each took.
    measured_s: float | None = field(default=None, compare=False)
    #: training epochs this query made the oracle pay, where that is not its fidelity: a live
    #: supernet's epochs are shared by every architecture, so a query pays only the epochs it
    #: makes the supernet train plus its evaluation (supernets.oracle). None (every other
    #: oracle): the runner prices a query by its fidelity. Harness only; like ``measured_s``
    #: a price for the run, not part of the answer's equality.
    epochs: float | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Optimum:
    value: float                  #: best search metric over the space (under the direction)
    indices: tuple[int, ...]      #: enumeration indices of the architectures attaining it
    identities: frozenset[str]    #: their identities
    report: float                 #: best report metric among them


class Oracle(ABC):
    """Answers queries about architectures of ``space``."""

    name: str
    space: SearchSpace
    search_metric: str
    report_metric: str
    #: ``"max"`` (accuracy) or ``"min"`` (perplexity, loss): how the search and report
    #: metrics are ranked. The runner turns values into scores to maximise for algorithms.
    direction: str = "max"
    #: True when the same query always gets the same answer (a table); a stochastic oracle
    #: (a network trained live) is asked again for every query, never answered from a cache
    deterministic: bool = True
    #: what the oracle offers beyond answering queries, e.g. ``"bigram-weight-sharing"`` (a
    #: live oracle whose networks of one run share weights); an algorithm that needs a feature
    #: names it in ``oracle_requirements()`` and the runner refuses an oracle without it
    features: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.n_queries = 0

    @abstractmethod
    def query(self, arch: Arch, rng: np.random.Generator | None = None,
              fidelity: int | None = None) -> Evaluation:
        """Evaluate ``arch`` at ``fidelity`` (None: the highest, :attr:`fidelities`); ``rng``
        drives oracles that draw one training run at random."""

    @property
    def fidelities(self) -> Fidelities | None:
        """The fidelities :meth:`query` answers at; None for an oracle with no notion of one."""
        return None

    @property
    @abstractmethod
    def optimum(self) -> Optimum | None:
        """The global optimum under the search metric; None where it is not known (a
        supernet, an infinite space)."""

    @property
    def checksum(self) -> str:
        """Identifies the data behind the answers (recorded with every run): equal for two
        oracles exactly when they serve the same answers, whatever files they were built from."""
        return ""

    def shared(self) -> tuple[str, Any] | None:
        """What another process (a Ray worker on another machine) needs to build this oracle
        without this machine's files: ``(key, data)``, the key naming the data so that
        oracles over the same data share one copy, the data picklable and passed back to
        :func:`oracles.registry.load_oracle` as ``shared``. None: the oracle is built from
        its name alone (an oracle that trains networks needs nothing shipped)."""
        return None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "space": self.space.describe(),
                "search_metric": self.search_metric, "report_metric": self.report_metric}

    def references(self) -> list[dict[str, Any]]:
        """Reference results a results folder of runs on this oracle should carry: results
        that are not search algorithms, set beside the runs on the same data (e.g. a
        library's default model trained on the same split), each a dict in
        :func:`harness.summary.reference_entry`'s form. Default: none. It may train, so
        ``nas-harness run`` asks once per oracle and results folder
        (:func:`harness.summary.write_oracle_references`)."""
        return []


#: search-metric values this close to the maximum are tied with it (see ``optimum``)
TIE_TOLERANCE = 1e-10


class TabularOracle(Oracle):
    """An oracle answering from a dense table: one numpy lookup per query.

    Parameters
    ----------
    name: the oracle's registry name, e.g. ``nb201/cifar10``.
    table: the loaded :class:`Table`.
    space: a finite space whose enumeration order is the table's row order.
    search, report: metric names used as search metric and report metric.
    fidelity: training budget (epochs) to answer at; default the largest.
    cost, train: optional metric names for training time (seconds) and train accuracy.
    runs: ``"mean"`` answers the mean over the table's seeds (default); ``"random"`` draws
        one seed per query with the query's ``rng``, as NAS-Bench-101's official API does.
    """

    def __init__(self, name: str, table: Table, space: FiniteSpace, search: str, report: str,
                 fidelity: int | None = None, cost: str | None = None, train: str | None = None,
                 runs: str = "mean", fidelities: Sequence[int] | None = None,
                 fidelity_kind: str = "restart", direction: str = "max"):
        super().__init__()
        if space.size != table.n_archs:
            raise UserError(f"oracle {name}: space has {space.size} architectures, table {table.n_archs}")
        if runs not in ("mean", "random"):
            raise UserError(f"oracle {name}: runs must be 'mean' or 'random', got {runs!r}")
        if direction not in ("max", "min"):
            raise UserError(f"oracle {name}: direction must be 'max' or 'min', got {direction!r}")
        self.name, self.table, self.space = name, table, space
        self.search_metric, self.report_metric = search, report
        # a table collected on a supernet data split (the NB201-on-digits ground truth) says so, so
        # that one-shot runs on that split look their derived cells up in it
        dataset = table.meta.get("dataset") if isinstance(table.meta, dict) else None
        self.data_record = dataset.get("supernet_record") if isinstance(dataset, dict) else None
        self.direction = direction
        served = sorted({int(f) for f in fidelities}) if fidelities else None
        if fidelity is None:
            fidelity = served[-1] if served else table.fidelities[-1]
        self.fidelity = int(fidelity)
        served = served or [self.fidelity]
        if self.fidelity not in served:
            raise UserError(f"oracle {name}: fidelity {self.fidelity} is not among the served {served}")
        for f in served:
            table.fidelity_index(f)  # a fidelity the table lacks is a one-line error
        self._fidelities = Fidelities(tuple(served), kind=fidelity_kind)
        self.runs = runs
        self.cost_metric, self.train_metric = cost, train
        roles = {"search": search, "report": report, "cost": cost, "train": train}
        # per served fidelity: role -> column over architectures (None where the role is absent)
        self._by_fidelity: dict[int, dict[str, np.ndarray | None]] = {}
        self._per_seed: dict[int, dict[str, np.ndarray]] = {}
        for f in served:
            cols = {k: (table.column(m, f) if m else None) for k, m in roles.items()}
            if np.all(np.isnan(cols["search"])):
                raise UserError(f"oracle {name}: the table {table.name!r} has no {search} values at fidelity "
                                f"{f}; import a source that has them")
            for arr in cols.values():
                if arr is not None:
                    arr.setflags(write=False)
            self._by_fidelity[f] = cols
            if runs == "random":
                # per-seed blocks, (archs, seeds); NaN marks seeds a row does not have
                fi = table.fidelity_index(f)
                self._per_seed[f] = {k: np.asarray(table.values[:, :, fi, table.metric_index(m)], dtype=np.float64)
                                     for k, m in roles.items() if m}
        top = self._by_fidelity[self.fidelity]
        self._search, self._report, self._cost, self._train = top["search"], top["report"], top["cost"], top["train"]
        self._optimum: Optimum | None = None
        self._checksum: str | None = None

    @property
    def fidelities(self) -> Fidelities:
        return self._fidelities

    def shared(self) -> tuple[str, Table]:
        """The table, with plain in-memory arrays (a memory map cannot be shipped as is), keyed
        by its file checksum: two oracles over one table (``nb201/cifar10`` and
        ``nb201/cifar100``) share one copy."""
        t = self.table
        plain = Table(name=t.name, archs=np.asarray(t.archs), seeds=t.seeds, fidelities=t.fidelities,
                      metrics=t.metrics, values=np.asarray(t.values),
                      columns={k: np.asarray(v) for k, v in t.columns.items()}, meta=dict(t.meta))
        return str(t.meta.get("checksum") or self.checksum), plain

    # -- single queries -------------------------------------------------------------
    def query(self, arch, rng=None, fidelity=None) -> Evaluation:
        return self.query_index(self.space.index(arch), rng, fidelity)

    def query_index(self, i: int, rng: np.random.Generator | None = None,
                    fidelity: int | None = None) -> Evaluation:
        self.n_queries += 1
        f = self.fidelity if fidelity is None else fidelity
        if self.runs == "random":
            return self._query_random_run(i, rng, f)
        if f == self.fidelity:
            search, report, cost, train = self._search, self._report, self._cost, self._train
        else:
            cols = self._columns_at(f)
            search, report, cost, train = cols["search"], cols["report"], cols["cost"], cols["train"]
        return Evaluation(Observation(float(search[i]), None if cost is None else float(cost[i]),
                                      None if train is None else float(train[i])), float(report[i]))

    def _columns_at(self, f: int) -> dict[str, np.ndarray | None]:
        try:
            return self._by_fidelity[f]
        except KeyError:
            raise UserError(f"oracle {self.name}: no fidelity {f}; it serves {list(self._fidelities.values)}") from None

    def _query_random_run(self, i, rng, f):
        if rng is None:
            raise ValueError("runs='random' needs the query's rng")
        self._columns_at(f)
        per_seed = self._per_seed[f]
        row = per_seed["search"][i]
        seeds = np.flatnonzero(~np.isnan(row))
        s = int(seeds[rng.integers(len(seeds))])
        get = lambda k: None if k not in per_seed else float(per_seed[k][i, s])  # noqa: E731
        return Evaluation(Observation(get("search"), get("cost"), get("train")), get("report"))

    # -- batched queries ------------------------------------------------------------
    def query_batch(self, archs: Sequence[Arch]) -> dict[str, np.ndarray]:
        """Search/report (and cost/train where present) for many architectures at once."""
        idx = (self.space.indices(archs) if hasattr(self.space, "indices")
               else np.fromiter((self.space.index(a) for a in archs), dtype=np.int64))
        return self.query_indices(idx)

    def query_indices(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        idx = np.asarray(idx, dtype=np.int64)
        self.n_queries += len(idx)
        out = {"search": self._search[idx], "report": self._report[idx]}
        if self._cost is not None:
            out["cost"] = self._cost[idx]
        if self._train is not None:
            out["train"] = self._train[idx]
        return out

    # -- the optimum ----------------------------------------------------------------
    @property
    def optimum(self) -> Optimum:
        if self._optimum is None:
            # scores: higher is better whatever the direction
            sign = 1.0 if self.direction == "max" else -1.0
            best = float(np.nanmax(sign * self._search))
            # Means of identical per-seed scores can differ in the last bit depending on the
            # order they were summed in; real differences between architectures are orders of
            # magnitude larger (one test image of a thousand is 1e-3), so closer than
            # TIE_TOLERANCE counts as a tie.
            idx = np.flatnonzero(sign * self._search >= best - TIE_TOLERANCE)
            self._optimum = Optimum(
                value=sign * best, indices=tuple(int(i) for i in idx),
                identities=frozenset(self.space.identity(self.space.arch(int(i))) for i in idx),
                report=float(sign * np.nanmax(sign * self._report[idx])))
        return self._optimum

    @property
    def search_values(self) -> np.ndarray:
        """Search metric of every architecture in enumeration order (harness use only)."""
        return self._search

    @property
    def report_values(self) -> np.ndarray:
        """Report metric of every architecture in enumeration order (harness use only)."""
        return self._report

    @property
    def checksum(self) -> str:
        """SHA-256 of exactly what this oracle serves (see :func:`served_checksum`)."""
        if self._checksum is None:
            self._checksum = served_checksum(self)
        return self._checksum

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        opt = self.optimum
        with np.errstate(invalid="ignore"):
            d.update({
                "table": self.table.name, "fidelity": self.fidelity, "runs": self.runs,
                "seeds": list(self.table.seeds), "cost_metric": self.cost_metric,
                "train_metric": self.train_metric, "checksum": self.checksum,
                "source": self.table.meta.get("source"),
                "optimum": {"search": opt.value, "report_of_optimum": opt.report,
                            "n_tied": len(opt.indices),
                            "architectures": sorted(opt.identities)[:5]},
                "direction": self.direction,
                "fidelities": list(self._fidelities.values), "fidelity_kind": self._fidelities.kind,
                "best_report": float(np.nanmax(self._report) if self.direction == "max"
                                     else np.nanmin(self._report)),
                "search_quantiles": {q: _quantile(self._search, float(q)) for q in ("0", "0.25", "0.5", "0.75", "1")},
            })
        return d


def _quantile(values: np.ndarray, q: float) -> float:
    """The q-quantile ignoring NaN; where linear interpolation meets two infinite values (the
    failed trainings of a minimised table are +inf) it would give inf - inf = NaN, so the
    nearest value is taken there."""
    with np.errstate(invalid="ignore"):
        v = float(np.nanquantile(values, q))
    return float(np.nanquantile(values, q, method="nearest")) if np.isnan(v) else v


#: version of the canonical form :func:`served_checksum` hashes; change it if the form changes
SERVED_FORMAT = "nas-harness-oracle-data/1"
_SERVED_CACHE: dict[tuple, str] = {}


def served_checksum(oracle: TabularOracle) -> str:
    """The identity of a tabular oracle: a SHA-256 of the data it serves, nothing else.

    Two oracles with the same checksum answer every query alike; how their tables were
    assembled (one CSV or a folder of them, extra fidelities, metrics or columns the oracle
    does not serve, the row order of the file) does not enter. The hashed canonical form:

    * a JSON header: :data:`SERVED_FORMAT`, the fidelity (epochs; with the other served
      fidelities and their kind under ``fidelities`` when the oracle serves more than one),
      the direction when it is ``"min"`` (both keys are absent from the header of a
      maximised, single-fidelity oracle, whose checksum is what it was before they existed),
      the served metric of
      each role (``search``, ``report``, ``cost``, ``train``; ``null`` when absent), ``runs``
      and, for ``runs="random"``, the seed labels in the table's order (a query draws a seed
      position, so the order is part of what is served); and the space's
      ``representation`` where it has one that an import can choose (a generic table's
      numeric columns: the same rows encoded another way are shown to algorithms another
      way, so runs on them are not comparable);
    * the architectures' identities (:meth:`~oracles.space.SearchSpace.identity`), sorted by
      code point, UTF-8, each followed by a NUL byte;
    * per served fidelity (the default one first, then the others in increasing order), per
      role, in the header's order, the values in that same row order as little-endian
      float64 bytes: the seed means the oracle answers (``runs="mean"``) or the
      ``(architecture, seed)`` block it draws from (``runs="random"``). NaN is written as one
      canonical NaN and -0.0 as 0.0, so equal values always give equal bytes.

    A fidelity slice is its own oracle: ``nb201/cifar10`` (200 epochs) and
    ``nb201-12ep/cifar10`` have different checksums. Computed once per table file, fidelity,
    metrics and run mode in a process (the table's file checksum keys the cache).
    """
    roles = {"search": oracle.search_metric, "report": oracle.report_metric,
             "cost": oracle.cost_metric, "train": oracle.train_metric}
    table = oracle.table
    seeds = list(table.seeds) if oracle.runs == "random" else None
    header = {"format": SERVED_FORMAT, "fidelity": int(oracle.fidelity), "metrics": roles,
              "runs": oracle.runs, "seeds": seeds}
    served = [int(oracle.fidelity)] + [f for f in oracle.fidelities.values if f != oracle.fidelity]
    if len(served) > 1:
        header["fidelities"] = {"values": list(oracle.fidelities.values), "kind": oracle.fidelities.kind}
    if oracle.direction != "max":
        header["direction"] = oracle.direction
    representation = getattr(oracle.space, "representation", None)
    if representation is not None:
        header["representation"] = representation
    key = (table.meta.get("checksum"), json.dumps(header, sort_keys=True))
    if key[0] and key in _SERVED_CACHE:
        return _SERVED_CACHE[key]
    h = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    ids = oracle.space.identities_all()
    order = np.argsort(ids, kind="stable")
    h.update(b"\0".join(str(i).encode() for i in ids[order]) + b"\0")
    for fidelity in served:
        f = table.fidelity_index(fidelity)
        for role, metric in roles.items():
            if metric is None:
                continue
            if oracle.runs == "random":
                block = np.asarray(table.values[:, :, f, table.metric_index(metric)], dtype=np.float64)
            else:
                block = np.asarray(table.column(metric, fidelity), dtype=np.float64)
            block = block[order] + 0.0  # -0.0 + 0.0 == +0.0
            block[np.isnan(block)] = np.nan
            h.update(np.ascontiguousarray(block, dtype="<f8").tobytes())
    digest = h.hexdigest()
    if key[0]:
        _SERVED_CACHE[key] = digest
    return digest
