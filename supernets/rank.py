"""How far can a supernet be trusted? Its ranking of NB201 cells against a ground truth.

``nas-harness supernet rank`` (issue 15) scores the representative of every NB201 class
(:mod:`oracles.nb201_canonical`, NB201's rule: 6,466 classes of the 15,625 cells) with
supernets (the oracle ``supernet/NAME``, which is what a search through a supernet sees) and
compares the scores with the same cells trained stand-alone (the ground truth:
``nas-harness collect nb201``, a finished or partial table, or the collection folder itself).

What is measured, per supernet, against one seed of the truth (the *reference seed*), over
the classes the truth has (a partial collection is a uniform sample of the classes: the
collector trains them in a fixed random order):

* Kendall's tau and Spearman's rho of validation accuracy, and of validation loss. Digits
  saturates: many cells share an accuracy (one validation image is 0.28 points), so tau is
  Kendall's **tau-b**, which corrects for ties in both rankings, and rho uses average ranks
  (:func:`kendall_tau_b`, :func:`spearman_rho`).
* tau-b within the true top 10 % (:func:`top_fraction_tau`): does the supernet order the
  cells a search is after?
* top-k overlap, k = 10, 50, 100 (:func:`top_k_overlap`): the expected share of the true
  top k among the supernet's top k, ties in either ranking broken uniformly at random (the
  expectation is computed exactly, not sampled).
* the true rank of the supernet's best cell (:func:`best_pick`): 1 + the number of classes
  truly better; when the supernet ties several cells for best, the mean over them.
* the share of the supernet's top 100 that lie in the true top 10 % (the statistic behind
  "none of its top 100 cells reach 93 %" of NB201-on-CIFAR-10 discussions).

Each of these is computed with accuracy as the score (higher is better) and with loss
(lower is better; the ``loss`` view), so a statistic named ``acc.tau`` compares supernet
accuracy with true accuracy, ``loss.tau`` supernet loss with true loss.

Intervals: every supernet statistic is summarised over supernet seeds (at least 3 asked)
by the mean and a two-sided 95 % **t-interval over seeds** (:func:`t_interval`:
mean +- t(0.975, n-1) s / sqrt(n); with 3 seeds the t quantile is 4.30, so the interval is
honest about how little three seeds pin down). The **ceiling** is the same statistic with
another seed of the truth as the "predictor" (truth seed 1 ranking against truth seed 0, on
the classes both have): no ranking can be expected to agree with one training of a cell
better than another training of the same cell does. Its interval is a percentile bootstrap
over classes (:func:`bootstrap_interval`; one pair of seeds gives nothing else to resample).
The supernets are scored on the same classes for that comparison (``common``), and each
statistic is also given as a fraction of the ceiling.

Training length: ``supernet train --snapshots`` keeps the weights of earlier epochs, which
the oracle scores with ``epoch=E``; the curve of tau against epochs is computed on a uniform
sample of the classes (``cells``), because scoring costs about 60 CPU-ms a cell (batch-norm
recalibration on 512 images, then validation and test passes) and the curve multiplies it by
supernets and epochs. Scores are cached per oracle checksum (the weights themselves, the
evaluation settings and the data split) in ``cache_dir``, so a second run, or a run on a
grown truth, scores only cells it has not scored.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from oracles import nb201_canonical as canon
from oracles.errors import CorruptData, UserError
from oracles.nb201_space import N_EDGES

#: the truth's metrics the study reads (the collector's names)
TRUTH_METRICS = ("valid_acc", "valid_loss", "test_acc", "test_loss")
#: views: the score a ranking is read from, and its sign (both rankings higher = better)
VIEWS = {"acc": ("valid_acc", 1.0), "loss": ("valid_loss", -1.0)}
#: default k of the top-k overlap (issue 15)
TOP_KS = (10, 50, 100)
#: default fraction of "the true top" for tau within the top (issue 15: 10 %)
TOP_FRACTION = 0.1


# --- the ground truth ---------------------------------------------------------------------------
@dataclass
class Truth:
    """Stand-alone results per class of NB201 cells.

    Parameters
    ----------
    classes: class ids (of ``rule``) present, int64 ``[n]``, increasing.
    archs: each class's representative (six operation indices), int64 ``[n, 6]``: the cell
        that was trained, and the cell the supernet is scored on.
    seeds: seed labels, one per column of ``values``.
    values: metric name (:data:`TRUTH_METRICS`) -> float64 ``[n, len(seeds)]``; NaN where a
        (class, seed) has not been trained (a partial collection).
    rule: the canonicalisation rule of the class ids (:data:`oracles.nb201_canonical.RULES`).
    source: where the numbers came from, for the report.
    data: the data record of the training split (``fingerprint`` at least), or None when the
        source does not say; a supernet of another split is refused.
    """

    classes: np.ndarray
    archs: np.ndarray
    seeds: tuple[str, ...]
    values: dict[str, np.ndarray]
    rule: str = "nb201"
    source: str = ""
    data: dict[str, Any] | None = None

    def __post_init__(self):
        self.classes = np.asarray(self.classes, dtype=np.int64)
        self.archs = np.asarray(self.archs, dtype=np.int64).reshape(-1, N_EDGES)
        self.seeds = tuple(str(s) for s in self.seeds)
        n = len(self.classes)
        if len(self.archs) != n:
            raise ValueError(f"{len(self.archs)} architectures for {n} classes")
        for m, v in self.values.items():
            if v.shape != (n, len(self.seeds)):
                raise ValueError(f"truth metric {m} has shape {v.shape}, expected {(n, len(self.seeds))}")

    def __len__(self) -> int:
        return len(self.classes)

    def has(self, seed: str) -> np.ndarray:
        """Which classes have results of ``seed`` (every metric finite)."""
        k = self.seed_index(seed)
        return np.all([np.isfinite(self.values[m][:, k]) for m in VIEWS_METRICS], axis=0)

    def seed_index(self, seed: str) -> int:
        try:
            return self.seeds.index(str(seed))
        except ValueError:
            raise UserError(f"the ground truth has no seed {seed} (it has {', '.join(self.seeds) or 'none'})") from None

    def column(self, metric: str, seed: str) -> np.ndarray:
        return self.values[metric][:, self.seed_index(seed)]

    def counts(self) -> dict[str, int]:
        """Classes per seed."""
        return {s: int(self.has(s).sum()) for s in self.seeds}


VIEWS_METRICS = tuple(m for m, _ in VIEWS.values())


def truth_from_ground_truth(gt) -> Truth:
    """A :class:`Truth` from an :class:`oracles.collectors.nb201.GroundTruth` (the table by class
    that :func:`oracles.collectors.nb201.load_ground_truth` reads: finished or partial)."""
    missing = [m for m in TRUTH_METRICS if m not in gt.metrics]
    if missing:
        raise UserError(f"ground truth {gt.name} lacks the metric(s) {', '.join(missing)}")
    values = {m: np.asarray(gt.per_seed(m), dtype=np.float64) for m in TRUTH_METRICS}
    what = gt.meta.get("description", "") if isinstance(gt.meta, dict) else ""
    return Truth(gt.classes, gt.cells, gt.seeds, values, rule=gt.rule,
                 source=f"table {gt.name} ({len(gt):,} of {gt.total_classes:,} classes; {what})", data=gt.data_record)


def truth_from_table(source) -> Truth:
    """The classes of an NB201 ground-truth table, finished or partial: a table folder, a
    loaded :class:`oracles.table.Table` or the name of an installed table oracle
    (``nb201-digits``), read with :func:`oracles.collectors.nb201.load_ground_truth`."""
    from oracles.collectors.nb201 import load_ground_truth
    return truth_from_ground_truth(load_ground_truth(source))


def truth_from_rows(rows: Mapping[tuple[int, int], Mapping[str, Any]], rule: str = "nb201",
                    source: str = "", data: dict[str, Any] | None = None) -> Truth:
    """A truth from collector rows ``{(class, seed): row}`` (:func:`oracles.collectors.nb201.read_rows`);
    a class trained with only some seeds has NaN for the others. Every row must have trained
    its class's representative."""
    reps = canon.representative_archs(rule)
    classes = np.array(sorted({int(c) for c, _ in rows}), dtype=np.int64)
    seeds = sorted({int(s) for _, s in rows})
    where = {int(c): i for i, c in enumerate(classes)}
    values = {m: np.full((len(classes), len(seeds)), np.nan) for m in TRUTH_METRICS}
    from oracles.nb201_space import arch_to_string
    for (c, s), row in rows.items():
        if "arch" in row and row["arch"] != arch_to_string(reps[int(c)]):
            raise CorruptData(f"class {c} seed {s} trained {row['arch']}, not its representative "
                              f"{arch_to_string(reps[int(c)])} under rule {rule}")
        for m in TRUTH_METRICS:
            values[m][where[int(c)], seeds.index(int(s))] = float(row[m])
    return Truth(classes, reps[classes], tuple(map(str, seeds)), values, rule=rule, source=source, data=data)


def truth_from_collection(folder) -> Truth:
    """The trainings a ground-truth collection folder (``nas-harness collect nb201 --out``)
    holds so far, finished or not (read-only: the collection may be running)."""
    from oracles.collectors.nb201 import read_rows
    folder = Path(folder)
    try:
        config = json.loads((folder / "collection.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{folder} is not a readable NB201 collection ({exc})") from None
    rows, _ = read_rows(folder)
    if not rows:
        raise UserError(f"the collection {folder} has no finished training yet")
    return truth_from_rows(rows, rule=config.get("rule", "nb201"), data=config.get("data"),
                           source=f"collection {folder} ({config.get('name')}, {len(rows)} trainings read "
                                  f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")


def merge_truths(truths: Sequence[Truth], tolerance: float = 1e-9) -> Truth:
    """One truth from several sources of the same collection recipe (e.g. the main collection
    and a second-seed collection of a sample of its classes): the union of their (class, seed)
    results. A (class, seed) in two sources must agree within ``tolerance`` (the collector is
    deterministic on one machine), else :class:`~oracles.errors.CorruptData`; sources of
    another rule or data split are refused."""
    if len(truths) == 1:
        return truths[0]
    rules = {t.rule for t in truths}
    prints = {(t.data or {}).get("fingerprint") for t in truths} - {None}
    if len(rules) > 1 or len(prints) > 1:
        raise UserError("the ground-truth sources differ in canonicalisation rule or data split")
    classes = np.unique(np.concatenate([t.classes for t in truths]))
    seeds = tuple(sorted({s for t in truths for s in t.seeds}, key=lambda s: (len(s), s)))
    values = {m: np.full((len(classes), len(seeds)), np.nan) for m in TRUTH_METRICS}
    for t in truths:
        rows = np.searchsorted(classes, t.classes)
        for k, s in enumerate(t.seeds):
            col = seeds.index(s)
            for m in TRUTH_METRICS:
                new, old = t.values[m][:, k], values[m][rows, col]
                clash = np.isfinite(new) & np.isfinite(old) & ~(np.abs(new - old) <= tolerance)
                if clash.any():
                    raise CorruptData(f"ground-truth sources disagree on {m} of seed {s} for {int(clash.sum())} "
                                      f"class(es), e.g. class {int(t.classes[np.flatnonzero(clash)[0]])}")
                values[m][rows, col] = np.where(np.isfinite(new), new, old)
    reps = canon.representative_archs(truths[0].rule)
    return Truth(classes, reps[classes], seeds, values, rule=truths[0].rule,
                 source=" + ".join(t.source for t in truths), data=next((t.data for t in truths if t.data), None))


def load_truth(where: str) -> Truth:
    """A truth from a collection folder (``collection.json``: read as far as it has got), or a
    table (a folder with ``manifest.json`` or the name of an installed table oracle such as
    ``nb201-digits``; :func:`truth_from_table`)."""
    path = Path(where).expanduser()
    if (path / "collection.json").is_file():
        return truth_from_collection(path)
    if path.is_dir() and not (path / "manifest.json").is_file():
        raise UserError(f"--truth {where!r} is neither a collection folder (collection.json) nor a table folder "
                        "(manifest.json)")
    return truth_from_table(str(path) if path.is_dir() else where)


# --- rank statistics (pure) ---------------------------------------------------------------------------
def _pair(pred, truth) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if pred.shape != truth.shape or pred.ndim != 1:
        raise ValueError(f"pred and truth must be 1-d of one length, got {pred.shape} and {truth.shape}")
    if not (np.all(np.isfinite(pred)) and np.all(np.isfinite(truth))):
        raise ValueError("rank statistics need finite values (drop missing classes first)")
    return pred, truth


def kendall_tau_b(pred, truth) -> float | None:
    """Kendall's tau-b (ties in either ranking corrected for; scipy's default variant).
    ``None`` when undefined (fewer than 2 items, or a ranking with all values tied)."""
    from scipy.stats import kendalltau
    pred, truth = _pair(pred, truth)
    if len(pred) < 2 or np.ptp(pred) == 0 or np.ptp(truth) == 0:
        return None
    return float(kendalltau(pred, truth, variant="b").statistic)


def spearman_rho(pred, truth) -> float | None:
    """Spearman's rho on average ranks (ties share their mean rank); ``None`` when undefined."""
    from scipy.stats import spearmanr
    pred, truth = _pair(pred, truth)
    if len(pred) < 2 or np.ptp(pred) == 0 or np.ptp(truth) == 0:
        return None
    return float(spearmanr(pred, truth).statistic)


def top_k_membership(scores, k: int) -> np.ndarray:
    """Probability that each item is among the ``k`` highest ``scores`` when ties are broken
    uniformly at random: 1 above the k-th highest value, 0 below, and for the items tied at
    that value the share of the remaining places. Sums to ``min(k, n)``."""
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    k = min(int(k), n)
    if k <= 0:
        return np.zeros(n)
    threshold = np.sort(scores)[::-1][k - 1]
    above = scores > threshold
    tied = scores == threshold
    p = above.astype(np.float64)
    p[tied] = (k - int(above.sum())) / int(tied.sum())
    return p


def top_k_overlap(pred, truth, k: int) -> float:
    """Expected share of the true top ``k`` among the predicted top ``k`` (higher = better in
    both), each ranking's ties broken uniformly at random and independently:
    ``sum_i P(i in pred top k) P(i in true top k) / k`` (exact). ``k`` larger than the number
    of items is cut to it."""
    pred, truth = _pair(pred, truth)
    k = min(int(k), len(pred))
    if k < 1:
        raise ValueError("top-k overlap needs k >= 1 and at least one item")
    return float(np.sum(top_k_membership(pred, k) * top_k_membership(truth, k)) / k)


def top_fraction_members(truth, fraction: float = TOP_FRACTION) -> np.ndarray:
    """The true top ``fraction`` (higher = better): every item at least as good as the
    ``ceil(fraction n)``-th best, so items tied at the boundary are all in."""
    truth = np.asarray(truth, dtype=np.float64)
    if not 0 < fraction <= 1:
        raise ValueError("fraction must lie in (0, 1]")
    k = max(1, math.ceil(fraction * len(truth)))
    return truth >= np.sort(truth)[::-1][k - 1]


def top_fraction_tau(pred, truth, fraction: float = TOP_FRACTION) -> float | None:
    """Kendall's tau-b over the true top ``fraction`` (:func:`top_fraction_members`)."""
    pred, truth = _pair(pred, truth)
    keep = top_fraction_members(truth, fraction)
    return kendall_tau_b(pred[keep], truth[keep])


def best_pick(pred, truth, report=None) -> dict[str, float]:
    """Where the predicted best lands in the truth (higher = better in both).

    ``true_rank``: 1 + the number of items truly better than the pick, averaged over the
    items tied for the best prediction (each equally likely to be picked); ``percentile``:
    that rank's share of the items (small is good); ``true_value``: the pick's true value;
    ``regret``: the best true value minus it; ``report``: optional values of another true
    metric (e.g. test accuracy) of the pick, averaged likewise (``report_value``).
    """
    pred, truth = _pair(pred, truth)
    picks = np.flatnonzero(pred == pred.max())
    sorted_truth = np.sort(truth)
    better = len(truth) - np.searchsorted(sorted_truth, truth[picks], side="right")
    out = {"true_rank": float(np.mean(1 + better)), "percentile": float(np.mean(1 + better) / len(truth)),
           "true_value": float(np.mean(truth[picks])), "regret": float(truth.max() - np.mean(truth[picks])),
           "tied_picks": int(len(picks))}
    if report is not None:
        out["report_value"] = float(np.mean(np.asarray(report, dtype=np.float64)[picks]))
    return out


def rank_statistics(pred, truth, report=None, ks: Sequence[int] = TOP_KS,
                    fraction: float = TOP_FRACTION) -> dict[str, float | None]:
    """Every statistic of the module doc for one ranking ``pred`` against ``truth`` (both
    higher = better, finite, one entry per class), as a flat dict: ``tau``, ``rho``,
    ``tau_top`` (within the true top ``fraction``), ``overlap@K`` for each ``k`` in ``ks``
    (``None`` unless ``k`` is below the number of items; a random ranking expects ``k / n``),
    ``best_true_rank``, ``best_percentile``, ``best_true_value``, ``best_regret``
    (``best_report`` with ``report``), and ``top100_in_true_top`` (share of the predicted top
    100 in the true top ``fraction``, ties as in :func:`top_k_overlap`)."""
    pred, truth = _pair(pred, truth)
    out: dict[str, float | None] = {"n": float(len(pred)), "tau": kendall_tau_b(pred, truth),
                                    "rho": spearman_rho(pred, truth),
                                    "tau_top": top_fraction_tau(pred, truth, fraction)}
    for k in ks:   # k >= n would compare the whole set with itself
        out[f"overlap@{k}"] = top_k_overlap(pred, truth, k) if k < len(pred) else None
    best = best_pick(pred, truth, report)
    out.update({"best_true_rank": best["true_rank"], "best_percentile": best["percentile"],
                "best_true_value": best["true_value"], "best_regret": best["regret"]})
    if "report_value" in best:
        out["best_report"] = best["report_value"]
    k100 = min(100, len(pred))
    out["top100_in_true_top"] = float(np.sum(top_k_membership(pred, k100) *
                                             top_fraction_members(truth, fraction)) / k100)
    return out


def view_statistics(pred: Mapping[str, np.ndarray], truth: Mapping[str, np.ndarray],
                    ks: Sequence[int] = TOP_KS, fraction: float = TOP_FRACTION) -> dict[str, float | None]:
    """:func:`rank_statistics` for both views of :data:`VIEWS`, keys prefixed ``acc.`` and
    ``loss.``. ``pred`` and ``truth`` map ``valid_acc`` and ``valid_loss`` to per-class
    arrays (``truth`` may carry ``test_acc``: the pick's test accuracy, ``acc.best_report``)."""
    out: dict[str, float | None] = {}
    for view, (metric, sign) in VIEWS.items():
        report = truth.get("test_acc") if view == "acc" else None
        stats = rank_statistics(sign * np.asarray(pred[metric]), sign * np.asarray(truth[metric]),
                                report=report, ks=ks, fraction=fraction)
        if sign < 0:   # report losses as losses
            stats["best_true_value"] = -stats["best_true_value"]
        out.update({f"{view}.{k}": v for k, v in stats.items() if k != "n"})
    out["n"] = float(len(np.asarray(pred["valid_acc"])))
    return out


# --- intervals ------------------------------------------------------------------------------------
def t_interval(values: Sequence[float | None], confidence: float = 0.95) -> dict[str, Any]:
    """Mean of ``values`` (over supernet seeds; ``None`` entries dropped) with a two-sided
    t-interval ``mean +- t((1+confidence)/2, n-1) s / sqrt(n)``; ``lo``/``hi`` are ``None``
    with fewer than 2 values. Also ``min``, ``max``, ``n`` and the ``values``."""
    from scipy.stats import t
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    out: dict[str, Any] = {"n": int(len(v)), "values": [float(x) for x in v],
                           "mean": float(v.mean()) if len(v) else None, "lo": None, "hi": None,
                           "min": float(v.min()) if len(v) else None, "max": float(v.max()) if len(v) else None}
    if len(v) >= 2:
        half = float(t.ppf(0.5 + confidence / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
        out.update(lo=float(v.mean()) - half, hi=float(v.mean()) + half)
    return out


def interval_text(s: Mapping[str, Any], scale: float = 100.0, digits: int = 2) -> str:
    """``mean [lo, hi]`` of a :func:`t_interval` result, each times ``scale`` (default: a
    fraction as a percentage) with ``digits`` decimals; ``mean`` alone without an interval
    (fewer than 2 values), ``-`` without values. The reports' one way of printing it."""
    if s["mean"] is None:
        return "-"
    text = f"{s['mean'] * scale:.{digits}f}"
    if s["lo"] is not None:
        text += f" [{s['lo'] * scale:.{digits}f}, {s['hi'] * scale:.{digits}f}]"
    return text


def bootstrap_interval(statistic: Callable[[np.ndarray], Mapping[str, float | None]], n: int,
                       resamples: int = 200, confidence: float = 0.95, seed: int = 0) -> dict[str, tuple]:
    """Percentile bootstrap over items: ``statistic(indices)`` returns a dict of numbers for
    a resample of ``range(n)`` (drawn with replacement, ``numpy`` ``default_rng(seed)``);
    returns ``{key: (lo, hi)}`` (``(None, None)`` when a key was undefined in most resamples)."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(resamples):
        for key, value in statistic(rng.integers(0, n, n)).items():
            if value is not None and np.isfinite(value):
                draws.setdefault(key, []).append(float(value))
    alpha = (1 - confidence) / 2
    out = {}
    for key, values in draws.items():
        out[key] = (float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))) \
            if len(values) >= resamples / 2 else (None, None)
    return out


# --- scoring supernets ------------------------------------------------------------------------------
def supernet_meta(name: str) -> dict[str, Any]:
    """The ``config.json`` of supernet ``name`` in the data directory (configuration, data
    record, epoch reached, per-epoch history with CPU seconds)."""
    from supernets.checkpoints import CONFIG, supernet_dir
    path = supernet_dir(name) / CONFIG
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"no supernet {name!r} (no {path}); train it with 'nas-harness supernet train'") from None
    except ValueError:
        raise CorruptData(f"{path} is not valid JSON") from None


def _write_cache(path: Path, known: Mapping[int, np.ndarray]) -> None:
    from harness.files import atomic_write_bytes
    path.parent.mkdir(parents=True, exist_ok=True)
    ks = np.array(sorted(known), dtype=np.int64)
    scores = np.stack([known[int(k)] for k in ks])
    atomic_write_bytes(path, lambda fh: np.savez(fh, keys=ks, scores=scores))


def arch_codes(archs) -> np.ndarray:
    """Product codes of NB201 cells (six operation indices read as a base-5 number, edge
    1<-0 most significant): the cells' identities in the score cache."""
    archs = np.asarray(archs, dtype=np.int64).reshape(-1, N_EDGES)
    return archs @ (5 ** np.arange(N_EDGES - 1, -1, -1, dtype=np.int64))


def score_cells(name: str, archs: np.ndarray, epoch: int | None = None, cache_dir: Path | None = None,
                options: str = "", chunk: int = 200) -> dict[str, Any]:
    """Score NB201 cells with the oracle ``supernet/NAME[:epoch=E,options]``.

    ``archs``: ``[n, 6]`` operation tuples. ``cache_dir``: scores already computed by an
    oracle of the same checksum (the weights, the configuration, the data split and the
    evaluation settings) are read from ``cache_dir/<checksum>.npz`` (keyed by
    :func:`arch_codes`) and only the other cells scored; the file is rewritten atomically
    after every ``chunk`` cells, so an interrupted scoring loses at most one chunk. (A change
    to the scoring code does not change the checksum: empty the cache after one.)
    ``options``: further oracle options (``calib=256,batch=128``...). Returns the four per-row
    arrays of the oracle's ``query_batch`` under the truth's names (``valid_acc``,
    ``valid_loss``, ``test_acc``, ``test_loss``), ``cpu_seconds`` (process time of the scoring
    done now, excluding loading the oracle), ``scored`` (cells scored now), ``checksum`` and
    ``oracle`` (the spec).
    """
    from oracles.registry import load_oracle
    spec_opts = [o for o in ([f"epoch={epoch}"] if epoch is not None else []) + ([options] if options else []) if o]
    spec = f"supernet/{name}" + (":" + ",".join(spec_opts) if spec_opts else "")
    oracle = load_oracle(spec)
    checksum = oracle.checksum
    archs = np.asarray(archs, dtype=np.int64).reshape(-1, N_EDGES)
    keys = arch_codes(archs)
    known: dict[int, np.ndarray] = {}
    path = Path(cache_dir) / f"{checksum}.npz" if cache_dir is not None else None
    if path is not None and path.is_file():
        with np.load(path) as z:
            known = {int(k): row for k, row in zip(z["keys"], z["scores"])}
    todo = [i for i, k in enumerate(keys) if int(k) not in known]
    cpu = 0.0
    for start in range(0, len(todo), chunk):
        part = todo[start:start + chunk]
        t0 = time.process_time()
        out = oracle.query_batch([tuple(int(o) for o in archs[i]) for i in part])
        cpu += time.process_time() - t0
        for j, i in enumerate(part):
            known[int(keys[i])] = np.array([out["search"][j], out["search_loss"][j], out["report"][j],
                                            out["report_loss"][j]], dtype=np.float64)
        if path is not None:
            _write_cache(path, known)
    rows = np.stack([known[int(k)] for k in keys]) if len(keys) else np.zeros((0, 4))
    return {"valid_acc": rows[:, 0], "valid_loss": rows[:, 1], "test_acc": rows[:, 2], "test_loss": rows[:, 3],
            "cpu_seconds": cpu, "scored": len(todo), "checksum": checksum, "oracle": spec}


# --- the study --------------------------------------------------------------------------------------
def sample_classes(truth: Truth, n: int | None, seed: int = 0, prefer: np.ndarray | None = None) -> np.ndarray:
    """Row indices of ``truth`` to score, increasing: all when ``n`` is None or at least
    ``len(truth)``; else the first ``n`` of the truth's classes in a fixed random order of every
    class of the rule (``numpy`` ``default_rng(seed).permutation``), rows where ``prefer`` is
    true first (the study prefers classes with every truth seed).

    With ``seed`` 0 the order is the one :func:`oracles.collectors.nb201.class_order` trains
    classes in, so a partial collection's classes (and its classes with a second seed) are
    prefixes of it: the sample is a uniform sample of the classes, it stays the same as a
    collection grows (scores cached for it stay useful), and a smaller sample is a subset of
    a larger one."""
    total = len(truth)
    if n is None or n >= total:
        return np.arange(total)
    position = np.empty(canon.num_classes(truth.rule), dtype=np.int64)
    position[np.random.default_rng(seed).permutation(len(position))] = np.arange(len(position))
    prefer = np.zeros(total, bool) if prefer is None else np.asarray(prefer, bool)
    order = np.lexsort((position[truth.classes], ~prefer))
    return np.sort(order[:n]).astype(np.int64)


def group_label(config: Mapping[str, Any]) -> str:
    """A name for supernets that differ only in seed: their batch-norm setting (``nb201``,
    ``full`` or ``affine=..,track=..``) and the skeleton."""
    from supernets.config import NAMED_BN, BNOptions
    bn = BNOptions(bool(config["bn_affine"]), bool(config["bn_track"]))
    name = next((k for k, v in NAMED_BN.items() if v == bn), bn.label())
    return f"bn={name} C{config['C']} N{config['N']} {config['mode']} e{config['epochs']}"


def _truth_views(truth: Truth, rows: np.ndarray, seed: str) -> dict[str, np.ndarray]:
    return {m: truth.column(m, seed)[rows] for m in TRUTH_METRICS}


def _fraction(x, ceiling):
    if x is None or ceiling is None or not ceiling:
        return None
    return float(x / ceiling)


def run_study(truth: Truth, supernets: Sequence[str], epochs: Sequence[int] | None = None,
              cells: int | None = None, final_cells: int | None = None, cells_seed: int = 0,
              reference_seed: str | None = None, ceiling_seed: str | None = None, cache_dir=None,
              ks: Sequence[int] = TOP_KS, fraction: float = TOP_FRACTION, resamples: int = 200,
              options: str = "", log: Callable[[str], None] = print) -> dict[str, Any]:
    """Score ``supernets`` (names in the data directory) on ``truth``'s classes and compute
    every statistic of the module doc. Returns a JSON-ready dict (:func:`write_report` reads it).

    Parameters
    ----------
    truth: the ground truth (:func:`load_truth`); only the classes it has are used.
    supernets: supernet names; those that differ only in seed form a group (:func:`group_label`),
        summarised over their seeds.
    epochs: the training lengths of the curve (snapshots every supernet of a group has, plus
        its last epoch); default every epoch all supernets of the group keep.
    cells: classes scored for the curve (a uniform sample, :func:`sample_classes`); default all.
    final_cells: classes scored at the last epoch (the main table); default all. The curve's
        sample is a subset of it when both sample (same seed, more cells drawn).
    cells_seed: the sampling seed (default 0).
    reference_seed, ceiling_seed: the truth seed the supernets are compared with (default the
        first), and the one whose agreement with it is the ceiling (default the second, if any).
    cache_dir: where scores are cached per oracle checksum (:func:`score_cells`).
    ks, fraction: top-k overlaps and the top fraction (defaults :data:`TOP_KS`, 10 %).
    resamples: bootstrap resamples of the ceiling's interval over classes.
    options: further oracle options for every supernet (default none: the oracle's defaults).
    """
    if not supernets:
        raise UserError("name at least one supernet")
    reference_seed = str(reference_seed) if reference_seed is not None else truth.seeds[0]
    ref_ok = truth.has(reference_seed)
    if ceiling_seed is None:
        others = [s for s in truth.seeds if s != reference_seed]
        ceiling_seed = others[0] if others else None
    ceiling_seed = None if ceiling_seed is None else str(ceiling_seed)
    common_ok = ref_ok & truth.has(ceiling_seed) if ceiling_seed is not None else np.zeros(len(truth), bool)
    ref_rows = np.flatnonzero(ref_ok)
    if len(ref_rows) < 3:
        raise UserError(f"the ground truth has {len(ref_rows)} classes with seed {reference_seed}; need at least 3")
    sub = Truth(truth.classes[ref_rows], truth.archs[ref_rows], truth.seeds,
                {m: v[ref_rows] for m, v in truth.values.items()}, truth.rule, truth.source, truth.data)
    prefer = common_ok[ref_rows]
    final_idx = sample_classes(sub, final_cells, cells_seed, prefer)
    curve_idx = sample_classes(sub, cells, cells_seed, prefer)
    score_idx = np.union1d(final_idx, curve_idx)

    # supernets and their groups
    metas = {n: supernet_meta(n) for n in supernets}
    groups: dict[str, list[str]] = {}
    for n, meta in metas.items():
        if truth.data is not None and meta.get("data", {}).get("fingerprint") != truth.data.get("fingerprint"):
            raise UserError(f"supernet {n} was trained on another data split (fingerprint "
                            f"{str(meta.get('data', {}).get('fingerprint'))[:12]}) than the ground truth "
                            f"({str(truth.data.get('fingerprint'))[:12]})")
        if meta["config"]["space"] != "nb201":
            raise UserError(f"supernet {n} is a {meta['config']['space']} supernet; the ground truth is NB201")
        cfg = {k: v for k, v in meta["config"].items() if k != "seed"}
        groups.setdefault(json.dumps(cfg, sort_keys=True), []).append(n)

    from supernets.checkpoints import list_snapshots, supernet_dir
    truth_ref = _truth_views(sub, np.arange(len(sub)), reference_seed)
    result: dict[str, Any] = {
        "format": "nas-harness-supernet-rank/1",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "truth": {"source": truth.source, "rule": truth.rule, "classes_in_rule": canon.num_classes(truth.rule),
                  "classes_present": int(len(truth)), "per_seed": truth.counts(),
                  "reference_seed": reference_seed, "ceiling_seed": ceiling_seed,
                  "classes_used": int(len(final_idx)), "classes_common": int(common_ok[ref_rows][final_idx].sum()),
                  "curve_classes": int(len(curve_idx)),
                  "curve_classes_common": int(common_ok[ref_rows][curve_idx].sum())},
        "settings": {"ks": list(ks), "top_fraction": fraction, "cells": cells, "final_cells": final_cells,
                     "cells_seed": cells_seed, "resamples": resamples, "oracle_options": options,
                     "interval": "supernets: two-sided 95% t-interval over supernet seeds; ceiling: 95% "
                                 "percentile bootstrap over classes",
                     "tau": "Kendall tau-b (tie-corrected)", "rho": "Spearman on average ranks"},
        "groups": [],
    }

    # the ceiling: the ceiling seed ranking against the reference seed, on the common classes
    def ceiling_on(idx):
        rows = idx[common_ok[ref_rows][idx]]
        if ceiling_seed is None or len(rows) < 3:
            return None
        pred = _truth_views(sub, rows, ceiling_seed)
        ref = {m: v[rows] for m, v in truth_ref.items()}
        point = view_statistics(pred, ref, ks, fraction)
        boot = bootstrap_interval(lambda b: view_statistics({m: v[b] for m, v in pred.items()},
                                                            {m: v[b] for m, v in ref.items()}, ks, fraction),
                                  len(rows), resamples=resamples) if resamples else {}
        return {"classes": int(len(rows)), "stats": point, "interval": boot}

    t0 = time.process_time()
    result["ceiling"] = ceiling_on(final_idx)
    result["ceiling_curve"] = ceiling_on(curve_idx) if len(curve_idx) != len(final_idx) else result["ceiling"]
    result["timings"] = {"ceiling_cpu_seconds": time.process_time() - t0}
    scale = canon.num_classes(truth.rule) / max(1, len(score_idx))

    for key, names in groups.items():
        names = sorted(names, key=lambda n: metas[n]["config"]["seed"])
        cfg = metas[names[0]]["config"]
        last = int(cfg["epochs"])
        reached = {n: int(metas[n]["epoch"]) for n in names}
        unfinished = [n for n in names if reached[n] < last]
        if unfinished:
            raise UserError(f"supernet(s) {', '.join(unfinished)} have not finished training ({last} epochs)")
        kept = set.intersection(*[set(list_snapshots(supernet_dir(n))) | {last} for n in names])
        curve_epochs = sorted(kept if epochs is None else set(int(e) for e in epochs) & kept)
        if epochs is not None and set(int(e) for e in epochs) - kept:
            log(f"{group_label(cfg)}: no weights of epoch(s) "
                f"{sorted(set(int(e) for e in epochs) - kept)} in every supernet; curve at {curve_epochs}")
        if last not in curve_epochs:
            curve_epochs.append(last)
        group: dict[str, Any] = {"label": group_label(cfg), "config": cfg, "supernets": names,
                                 "seeds": [metas[n]["config"]["seed"] for n in names], "epochs": curve_epochs,
                                 "train_cpu_seconds": [_train_cpu(metas[n]) for n in names],
                                 "per_seed": {}, "scoring": []}
        finals: dict[str, dict[str, np.ndarray]] = {}   # each supernet's final scores, for their agreement
        for n in names:
            per_epoch = {}
            for e in curve_epochs:
                idx = score_idx if e == last else curve_idx
                log(f"scoring {len(idx)} classes with supernet/{n}:epoch={e}")
                s = score_cells(n, sub.archs[idx], epoch=e, cache_dir=cache_dir, options=options)
                group["scoring"].append({"supernet": n, "epoch": e, "cells": int(len(idx)), "scored": s["scored"],
                                         "cpu_seconds": s["cpu_seconds"], "checksum": s["checksum"]})
                pos = {int(c): i for i, c in enumerate(sub.classes[idx])}
                scores = {m: s[m] for m in TRUTH_METRICS}

                def stats_on(rows, seed):
                    take = np.array([pos[int(c)] for c in sub.classes[rows]], dtype=np.int64)
                    return view_statistics({m: v[take] for m, v in scores.items()},
                                           _truth_views(sub, rows, seed), ks, fraction)
                entry = {"curve": stats_on(curve_idx, reference_seed)}
                if e == last:
                    entry["final"] = stats_on(final_idx, reference_seed)
                    common = final_idx[common_ok[ref_rows][final_idx]]
                    if ceiling_seed is not None and len(common) >= 3:
                        entry["common_ref"] = stats_on(common, reference_seed)
                        entry["common_other"] = stats_on(common, ceiling_seed)
                    take = np.array([pos[int(c)] for c in sub.classes[final_idx]], dtype=np.int64)
                    entry["scores_summary"] = {m: _quantiles(scores[m][take]) for m in ("valid_acc", "valid_loss")}
                    finals[n] = {m: scores[m][take] for m in ("valid_acc", "valid_loss")}
                    entry["tau_acc_vs_convs"] = kendall_tau_b(convolutions(sub.archs[final_idx]),
                                                              scores["valid_acc"][take])
                    if n == names[0]:   # the scatter figure: the first seed's scores against the truth
                        group["scatter"] = {"supernet": n, "tau": entry["final"]["acc.tau"],
                                            "truth": [round(float(v), 6) for v in truth_ref["valid_acc"][final_idx]],
                                            "supernet_acc": [round(float(v), 6) for v in scores["valid_acc"][take]]}
                ccommon = curve_idx[common_ok[ref_rows][curve_idx]]
                if ceiling_seed is not None and len(ccommon) >= 3:
                    entry["curve_common"] = stats_on(ccommon, reference_seed)
                per_epoch[e] = entry
            group["per_seed"][n] = per_epoch
        group["summary"] = _summaries(group, names, curve_epochs, last, result["ceiling"], result["ceiling_curve"])
        # do supernet seeds agree with each other? (a stable but biased ranking, or noise)
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
        group["summary"]["supernet_seed_agreement"] = {
            f"{view}.tau": t_interval([kendall_tau_b(finals[a][metric], finals[b][metric]) for a, b in pairs])
            for view, (metric, _) in VIEWS.items()}
        scored = [x for x in group["scoring"] if x["scored"] > 0]
        group["cpu_seconds_per_cell"] = (sum(x["cpu_seconds"] for x in scored) / sum(x["scored"] for x in scored)
                                         if scored else None)
        result["groups"].append(group)
    result["timings"]["full_space_estimate_note"] = (f"scoring all {canon.num_classes(truth.rule)} classes costs "
                                                     f"about {scale:.1f}x the final scoring here")
    result["truth"]["summary"] = {m: _quantiles(truth_ref[m][final_idx]) for m in ("valid_acc", "valid_loss")}
    result["truth"]["tau_acc_vs_convs"] = kendall_tau_b(convolutions(sub.archs[final_idx]),
                                                        truth_ref["valid_acc"][final_idx])
    return result


def convolutions(archs) -> np.ndarray:
    """Convolution edges (``nor_conv_1x1`` or ``nor_conv_3x3``) per cell: a diagnostic of what a
    ranking rewards (capacity, or the fast convergence of cells without weights)."""
    from oracles.nb201_space import OPS
    archs = np.asarray(archs, dtype=np.int64).reshape(-1, N_EDGES)
    return np.isin(archs, [OPS.index("nor_conv_1x1"), OPS.index("nor_conv_3x3")]).sum(axis=1)


def _train_cpu(meta: Mapping[str, Any]) -> float:
    """CPU seconds a supernet's training took, from its checkpoint's per-epoch history."""
    return float(sum(h.get("cpu_seconds", 0.0) for h in meta["history"]))


def _quantiles(v) -> dict[str, float]:
    v = np.asarray(v, dtype=np.float64)
    q = np.quantile(v, [0, 0.25, 0.5, 0.75, 1])
    return {"min": float(q[0]), "q25": float(q[1]), "median": float(q[2]), "q75": float(q[3]), "max": float(q[4]),
            "distinct": int(len(np.unique(v)))}


def _above_zero(ceiling, key) -> bool:
    lo = ceiling.get("interval", {}).get(key, (None, None))[0]
    value = ceiling["stats"].get(key)
    return value is not None and value > 0 and (lo is None or lo > 0)


def _summaries(group, names, epochs, last, ceiling, ceiling_curve) -> dict[str, Any]:
    per = group["per_seed"]
    keys = list(per[names[0]][last]["final"])
    out: dict[str, Any] = {"final": {k: t_interval([per[n][last]["final"][k] for n in names]) for k in keys},
                           "tau_acc_vs_convs": t_interval([per[n][last]["tau_acc_vs_convs"] for n in names]),
                           "curve": {}}
    for e in epochs:
        out["curve"][e] = {k: t_interval([per[n][e]["curve"][k] for n in names]) for k in keys}
        if all("curve_common" in per[n][e] for n in names) and ceiling_curve is not None:
            out["curve"][e]["fraction_of_ceiling"] = {
                k: t_interval([_fraction(per[n][e]["curve_common"][k], ceiling_curve["stats"][k]) for n in names])
                for k in ("acc.tau", "loss.tau", "acc.rho", "loss.rho") if _above_zero(ceiling_curve, k)}
    if ceiling is not None and all("common_ref" in per[n][last] for n in names):
        out["common_ref"] = {k: t_interval([per[n][last]["common_ref"][k] for n in names]) for k in keys}
        out["common_other"] = {k: t_interval([per[n][last]["common_other"][k] for n in names]) for k in keys}
        # only where the ceiling is clearly above chance (its bootstrap interval above 0): a
        # fraction of a ceiling near 0 is noise
        out["fraction_of_ceiling"] = {
            k: t_interval([_fraction(per[n][last]["common_ref"][k], ceiling["stats"][k]) for n in names])
            for k in keys if (k.endswith(("tau", "rho", "tau_top")) or "overlap" in k)
            and _above_zero(ceiling, k)}
    return out


# --- the report -------------------------------------------------------------------------------------
ROWS = (("acc.tau", "Kendall tau-b, valid accuracy"), ("acc.rho", "Spearman rho, valid accuracy"),
        ("loss.tau", "Kendall tau-b, valid loss"), ("loss.rho", "Spearman rho, valid loss"),
        ("acc.tau_top", "tau-b within the true top 10 % (accuracy)"),
        ("loss.tau_top", "tau-b within the true top 10 % (loss)"),
        ("acc.overlap@10", "top-10 overlap (accuracy)"), ("acc.overlap@50", "top-50 overlap (accuracy)"),
        ("acc.overlap@100", "top-100 overlap (accuracy)"), ("loss.overlap@10", "top-10 overlap (loss)"),
        ("loss.overlap@50", "top-50 overlap (loss)"), ("loss.overlap@100", "top-100 overlap (loss)"),
        ("acc.best_true_rank", "true rank of the supernet's best (accuracy)"),
        ("acc.best_percentile", "... as a share of the classes"),
        ("acc.best_true_value", "true valid accuracy of the supernet's best"),
        ("acc.best_report", "true test accuracy of the supernet's best"),
        ("loss.best_true_rank", "true rank of the supernet's best (loss)"),
        ("acc.top100_in_true_top", "share of the supernet's top 100 in the true top 10 % (accuracy)"))


def _fmt(x, digits=3) -> str:
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def _cell(s: Mapping[str, Any]) -> str:
    if s is None or s.get("mean") is None:
        return "-"
    if s.get("lo") is None:
        return _fmt(s["mean"])
    return f"{_fmt(s['mean'])} [{_fmt(s['lo'])}, {_fmt(s['hi'])}]"


def _ceiling_cell(ceiling, key) -> str:
    if ceiling is None or ceiling["stats"].get(key) is None:
        return "-"
    lo, hi = ceiling["interval"].get(key, (None, None))
    return _fmt(ceiling["stats"][key]) + (f" [{_fmt(lo)}, {_fmt(hi)}]" if lo is not None else "")


def write_report(result: Mapping[str, Any], out, command: str = "") -> list[Path]:
    """Write ``rank.json`` (every number), ``report.md`` and the figures (``tau_vs_epoch.png``,
    ``scatter.png``) into ``out``; returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "rank.json"]
    (out / "rank.json").write_text(json.dumps(result, indent=1, default=_json_default) + "\n")
    written += _figures(result, out)
    written.append(out / "report.md")
    (out / "report.md").write_text(_markdown(result, command))
    return written


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def _at(d: Mapping, epoch):
    """``d[epoch]``, also when the dict went through JSON (keys as strings)."""
    return d[epoch] if epoch in d else d[str(epoch)]


def _markdown(r: Mapping[str, Any], command: str) -> str:
    t = r["truth"]
    lines = ["# How far can a supernet be trusted? NB201 cells on digits", ""]
    lines += [f"Ground truth: {t['source']}.",
              f"Classes (rule `{t['rule']}`, {t['classes_in_rule']:,} in all): {t['classes_present']:,} present "
              f"(per seed: {', '.join(f'seed {s}: {n:,}' for s, n in t['per_seed'].items())}); "
              f"**{t['classes_used']:,} used** for the final-epoch statistics, compared with truth seed "
              f"{t['reference_seed']}; {t['classes_common']:,} of them also have seed {t['ceiling_seed']} "
              f"(the ceiling and the fraction of it). The curve over epochs uses {t['curve_classes']:,} classes "
              f"({t['curve_classes_common']:,} with both seeds).", ""]
    s = r["settings"]
    lines += [f"Statistics: tau is {s['tau']}; rho is {s['rho']}; top-k overlaps and the best pick break ties "
              "uniformly at random (exact expectations; a random ranking expects tau 0, an overlap of k/n and "
              "a true rank of (n+1)/2 for its best; overlaps and ranks depend on n, so compare them at equal "
              "n only); the fraction of the ceiling is given where the ceiling's interval lies above 0; intervals: "
              f"{s['interval']} ({s['resamples']} resamples; with 3 seeds t = 4.30, and a t-interval may cross "
              "a statistic's natural bounds). Each supernet is scored on each class's "
              "representative through the oracle `supernet/NAME` (search_valid accuracy and loss, "
              "batch-norm recalibration per cell as the oracle does"
              + (f", options `{s['oracle_options']}`" if s['oracle_options'] else "") + ").", ""]
    if command:
        lines += ["Regenerate:", "", "```", command, "```", ""]
    ceiling = r.get("ceiling")
    for g in r["groups"]:
        summ = g["summary"]
        lines += [f"## {g['label']}: {len(g['supernets'])} supernet seeds ({', '.join(map(str, g['seeds']))})", ""]
        lines += [f"Supernets: {', '.join('`supernet/' + n + '`' for n in g['supernets'])}; training "
                  f"{', '.join(_fmt(x, 1) for x in g['train_cpu_seconds'])} CPU-s each; scoring "
                  f"{_fmt(g['cpu_seconds_per_cell'] * 1000 if g['cpu_seconds_per_cell'] else None, 1)} CPU-ms "
                  "a cell.", ""]
        last = max(g["epochs"])
        lines += [f"### After {last} epochs, {t['classes_used']:,} classes against truth seed {t['reference_seed']}",
                  "", "| statistic | supernets: mean [95 % t-interval over seeds] | seeds | ceiling: truth seed "
                  f"{t['ceiling_seed']} vs {t['reference_seed']} [bootstrap] | supernets on the same "
                  f"{t['classes_common']:,} classes | fraction of the ceiling |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for key, label in ROWS:
            if key not in summ["final"]:
                continue
            f = summ["final"][key]
            seeds = ", ".join(_fmt(v) for v in f["values"])
            frac = summ.get("fraction_of_ceiling", {}).get(key)
            common = summ.get("common_ref", {}).get(key)
            lines.append(f"| {label} | {_cell(f)} | {seeds} | {_ceiling_cell(ceiling, key)} | "
                         f"{_cell(common) if common else '-'} | {_cell(frac) if frac else '-'} |")
        agree = summ.get("supernet_seed_agreement", {})
        if agree.get("acc.tau", {}).get("n"):
            lines += ["", f"Supernet seeds against each other (Kendall tau-b over the pairs of seeds, same classes): "
                          f"accuracy {_cell(agree['acc.tau'])}, loss {_cell(agree['loss.tau'])}."]
        lines += ["", f"What the rankings reward: Kendall tau-b of valid accuracy against the number of convolution "
                  f"edges, supernets {_cell(summ['tau_acc_vs_convs'])}, truth seed {t['reference_seed']} "
                  f"{_fmt(t.get('tau_acc_vs_convs'))} (same classes). Supernet valid accuracy: "
                  + ", ".join(f"median {_fmt(_at(per, last)['scores_summary']['valid_acc']['median'])} with "
                              f"{_at(per, last)['scores_summary']['valid_acc']['distinct']} distinct values"
                              for per in list(g['per_seed'].values())[:1])
                  + f" (first seed); truth: median {_fmt(t['summary']['valid_acc']['median'])}, "
                  f"{t['summary']['valid_acc']['distinct']} distinct values.",
                  "", f"### Against training length ({t['curve_classes']:,} classes)", "",
                  "| epoch | acc tau | loss tau | acc rho | loss rho | top-10 overlap (acc) | acc tau / ceiling |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for e in g["epochs"]:
            c = _at(summ["curve"], e)
            frac = c.get("fraction_of_ceiling", {}).get("acc.tau")
            lines.append(f"| {e} | {_cell(c['acc.tau'])} | {_cell(c['loss.tau'])} | {_cell(c['acc.rho'])} | "
                         f"{_cell(c['loss.rho'])} | {_cell(c['acc.overlap@10'])} | {_cell(frac) if frac else '-'} |")
        lines.append("")
    if ceiling is not None:
        lines += ["## The ceiling", "",
                  f"Truth seed {t['ceiling_seed']} ranking the {ceiling['classes']:,} classes it shares with seed "
                  f"{t['reference_seed']}: Kendall tau-b {_ceiling_cell(ceiling, 'acc.tau')} on accuracy, "
                  f"{_ceiling_cell(ceiling, 'loss.tau')} on loss; Spearman {_ceiling_cell(ceiling, 'acc.rho')} / "
                  f"{_ceiling_cell(ceiling, 'loss.rho')}.", ""]
    lines += ["## Figures", "", "![tau against supernet epochs](tau_vs_epoch.png)", "",
              "![supernet against stand-alone accuracy](scatter.png)", ""]
    lines += ["Every number is in `rank.json` (per supernet seed, per epoch, on the curve's sample, on all "
              "classes used and on the classes with both truth seeds).", ""]
    return "\n".join(lines)


def _figures(r: Mapping[str, Any], out: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    written = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    cc = r.get("ceiling_curve")
    for ax, (key, title) in zip(axes, (("acc.tau", "validation accuracy"), ("loss.tau", "validation loss"))):
        for i, g in enumerate(r["groups"]):
            es = g["epochs"]
            summ = g["summary"]["curve"]
            get = (lambda e: summ[e] if e in summ else summ[str(e)])
            mean = np.array([get(e)[key]["mean"] for e in es], dtype=float)
            lo = np.array([np.nan if get(e)[key]["lo"] is None else get(e)[key]["lo"] for e in es], dtype=float)
            hi = np.array([np.nan if get(e)[key]["hi"] is None else get(e)[key]["hi"] for e in es], dtype=float)
            ax.plot(es, mean, "o-", color=colors[i % len(colors)], label=g["label"].split(" ")[0])
            ax.fill_between(es, lo, hi, color=colors[i % len(colors)], alpha=0.2)
        if cc is not None and cc["stats"].get(key) is not None:
            ax.axhline(cc["stats"][key], color="k", ls="--", lw=1,
                       label=f"ceiling: truth seed vs seed ({cc['classes']} classes)")
        ax.set_xscale("log")
        ax.set_xlabel("supernet epochs")
        ax.set_title(f"Kendall tau-b, {title}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"tau vs truth ({r['truth']['curve_classes']} classes)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "tau_vs_epoch.png", dpi=120)
    plt.close(fig)
    written.append(out / "tau_vs_epoch.png")
    return written + _scatter(r, out)


def _scatter(r: Mapping[str, Any], out: Path) -> list[Path]:
    """Supernet against true validation accuracy, the first seed of each group (jittered by
    a fraction of one validation image, so that tied cells show as a cloud)."""
    import matplotlib.pyplot as plt
    pts = [(g["label"].split(" ")[0] + " " + g["scatter"]["supernet"], g["scatter"]) for g in r["groups"]
           if "scatter" in g]
    if not pts:
        return []
    fig, axes = plt.subplots(1, len(pts), figsize=(5 * len(pts), 4.2), squeeze=False)
    jitter = np.random.default_rng(0)
    for ax, (label, sc) in zip(axes[0], pts):
        x, y, tau = np.array(sc["truth"]), np.array(sc["supernet_acc"]), sc["tau"]
        ax.scatter(x + jitter.uniform(-0.001, 0.001, len(x)), y + jitter.uniform(-0.001, 0.001, len(y)),
                   s=3, alpha=0.3)
        ax.set_xlabel("true valid accuracy (stand-alone, one seed)")
        ax.set_ylabel("supernet valid accuracy (inherited weights)")
        ax.set_title(f"{label}: tau-b {_fmt(tau)}", fontsize=9)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "scatter.png", dpi=120)
    plt.close(fig)
    return [out / "scatter.png"]


__all__ = ["TOP_FRACTION", "TOP_KS", "TRUTH_METRICS", "Truth", "arch_codes", "best_pick", "bootstrap_interval",
           "convolutions", "group_label", "kendall_tau_b", "load_truth", "merge_truths", "rank_statistics", "run_study",
           "sample_classes", "score_cells", "spearman_rho", "supernet_meta", "t_interval", "top_fraction_members",
           "top_fraction_tau", "top_k_membership", "top_k_overlap", "truth_from_collection", "truth_from_ground_truth",
           "truth_from_rows", "truth_from_table", "view_statistics", "write_report"]
