"""The Oracle interface: "how good is this architecture?".

``query(arch)`` returns an :class:`Evaluation` with two parts kept apart on purpose:

* ``observation`` -- what a search algorithm may see: the search metric (e.g. validation
  accuracy), the simulated training cost where the table has it, and the training
  accuracy where the table has it (NASES's reward uses it);
* ``report`` -- what only the harness may see: the report metric (e.g. test accuracy).

The runner hands algorithms the observation alone, so test accuracy cannot leak into a
search. Every oracle also knows its global optimum under the search metric (the set of
architectures attaining the maximum; ties are possible) and counts the queries it answered.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .errors import UserError
from .space import Arch, FiniteSpace, SearchSpace
from .table import Table


@dataclass(frozen=True, slots=True)
class Observation:
    """What a search algorithm is told about an architecture."""

    value: float                  #: search metric; accuracies are fractions in [0, 1]
    cost: float | None = None     #: simulated training time in seconds, if known
    train: float | None = None    #: training accuracy, if the table has it


@dataclass(frozen=True, slots=True)
class Evaluation:
    observation: Observation
    report: float                 #: report metric (e.g. test accuracy): harness only


@dataclass(frozen=True)
class Optimum:
    value: float                  #: best search metric over the space
    indices: tuple[int, ...]      #: enumeration indices of the architectures attaining it
    identities: frozenset[str]    #: their identities
    report: float                 #: best report metric among them


class Oracle(ABC):
    """Answers queries about architectures of ``space``."""

    name: str
    space: SearchSpace
    search_metric: str
    report_metric: str

    def __init__(self) -> None:
        self.n_queries = 0

    @abstractmethod
    def query(self, arch: Arch, rng: np.random.Generator | None = None) -> Evaluation:
        """Evaluate ``arch``; ``rng`` drives oracles that draw one training run at random."""

    @property
    @abstractmethod
    def optimum(self) -> Optimum:
        """The global optimum under the search metric."""

    @property
    def checksum(self) -> str:
        """Identifies the data behind the answers (recorded with every run): equal for two
        oracles exactly when they serve the same answers, whatever files they were built from."""
        return ""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "space": self.space.describe(),
                "search_metric": self.search_metric, "report_metric": self.report_metric}


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
                 runs: str = "mean"):
        super().__init__()
        if space.size != table.n_archs:
            raise UserError(f"oracle {name}: space has {space.size} architectures, table {table.n_archs}")
        if runs not in ("mean", "random"):
            raise UserError(f"oracle {name}: runs must be 'mean' or 'random', got {runs!r}")
        self.name, self.table, self.space = name, table, space
        self.search_metric, self.report_metric = search, report
        self.fidelity = table.fidelities[-1] if fidelity is None else int(fidelity)
        self.runs = runs
        f = table.fidelity_index(self.fidelity)
        self._search = table.column(search, self.fidelity)
        if np.all(np.isnan(self._search)):
            raise UserError(f"oracle {name}: the table {table.name!r} has no {search} values at fidelity "
                            f"{self.fidelity}; import a source that has them")
        self._report = table.column(report, self.fidelity)
        self._cost = table.column(cost, self.fidelity) if cost else None
        self._train = table.column(train, self.fidelity) if train else None
        self.cost_metric, self.train_metric = cost, train
        if runs == "random":
            # per-seed blocks, (archs, seeds); NaN marks seeds a row does not have
            self._per_seed = {k: np.asarray(table.values[:, :, f, table.metric_index(m)], dtype=np.float64)
                              for k, m in (("search", search), ("report", report), ("cost", cost),
                                           ("train", train)) if m}
        for arr in (self._search, self._report, self._cost, self._train):
            if arr is not None:
                arr.setflags(write=False)
        self._optimum: Optimum | None = None
        self._checksum: str | None = None

    # -- single queries -------------------------------------------------------------
    def query(self, arch, rng=None) -> Evaluation:
        return self.query_index(self.space.index(arch), rng)

    def query_index(self, i: int, rng: np.random.Generator | None = None) -> Evaluation:
        self.n_queries += 1
        if self.runs == "random":
            return self._query_random_run(i, rng)
        cost = None if self._cost is None else float(self._cost[i])
        train = None if self._train is None else float(self._train[i])
        return Evaluation(Observation(float(self._search[i]), cost, train), float(self._report[i]))

    def _query_random_run(self, i, rng):
        if rng is None:
            raise ValueError("runs='random' needs the query's rng")
        row = self._per_seed["search"][i]
        seeds = np.flatnonzero(~np.isnan(row))
        s = int(seeds[rng.integers(len(seeds))])
        get = lambda k: None if k not in self._per_seed else float(self._per_seed[k][i, s])  # noqa: E731
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
            best = float(np.nanmax(self._search))
            # Means of identical per-seed scores can differ in the last bit depending on the
            # order they were summed in; real differences between architectures are orders of
            # magnitude larger (one test image of a thousand is 1e-3), so closer than
            # TIE_TOLERANCE counts as a tie.
            idx = np.flatnonzero(self._search >= best - TIE_TOLERANCE)
            self._optimum = Optimum(
                value=best, indices=tuple(int(i) for i in idx),
                identities=frozenset(self.space.identity(self.space.arch(int(i))) for i in idx),
                report=float(np.nanmax(self._report[idx])))
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
                "best_report": float(np.nanmax(self._report)),
                "search_quantiles": {q: float(np.nanquantile(self._search, float(q)))
                                     for q in ("0", "0.25", "0.5", "0.75", "1")},
            })
        return d


#: version of the canonical form :func:`served_checksum` hashes; change it if the form changes
SERVED_FORMAT = "nas-harness-oracle-data/1"
_SERVED_CACHE: dict[tuple, str] = {}


def served_checksum(oracle: TabularOracle) -> str:
    """The identity of a tabular oracle: a SHA-256 of the data it serves, nothing else.

    Two oracles with the same checksum answer every query alike; how their tables were
    assembled (one CSV or a folder of them, extra fidelities, metrics or columns the oracle
    does not serve, the row order of the file) does not enter. The hashed canonical form:

    * a JSON header: :data:`SERVED_FORMAT`, the fidelity (epochs), the served metric of
      each role (``search``, ``report``, ``cost``, ``train``; ``null`` when absent), ``runs``
      and, for ``runs="random"``, the seed labels in the table's order (a query draws a seed
      position, so the order is part of what is served); and the space's
      ``representation`` where it has one that an import can choose (a generic table's
      numeric columns: the same rows encoded another way are shown to algorithms another
      way, so runs on them are not comparable);
    * the architectures' identities (:meth:`~oracles.space.SearchSpace.identity`), sorted by
      code point, UTF-8, each followed by a NUL byte;
    * per role, in the header's order, the values in that same row order as little-endian
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
    f = table.fidelity_index(oracle.fidelity)
    for role, metric in roles.items():
        if metric is None:
            continue
        if oracle.runs == "random":
            block = np.asarray(table.values[:, :, f, table.metric_index(metric)], dtype=np.float64)
        else:
            block = np.asarray(table.column(metric, oracle.fidelity), dtype=np.float64)
        block = block[order] + 0.0  # -0.0 + 0.0 == +0.0
        block[np.isnan(block)] = np.nan
        h.update(np.ascontiguousarray(block, dtype="<f8").tobytes())
    digest = h.hexdigest()
    if key[0]:
        _SERVED_CACHE[key] = digest
    return digest
