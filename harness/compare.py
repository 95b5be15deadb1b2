"""Regression verdicts: is a candidate algorithm worse than its baseline?

``nas-harness compare BASELINE CANDIDATE`` (results folders or baseline files) matches cells
by (oracle, algorithm label); a cell left over on both sides with the same oracle and the
same registered algorithm is matched too (``lanas`` vs ``lanas:split=random``). Cells must
have run under the same conditions: the same oracle data (checksum), budget, protocol
version, stopping rule, repeat charging, stuck limit (``max_repeats``: a stopped run is
censored where it stopped, so another limit moves censoring), simulated workers per run and
budget unit; anything else is refused
(:class:`UserError`),
because a difference could then come from the setup rather than the algorithm.

For every pair and metric there are two one-sided Mann-Whitney U tests (scipy):

* ``samples_to_optimum`` (``--until-optimum`` runs): is the candidate's number of samples
  to the global optimum stochastically larger (worse) / smaller (better)? Runs censored at
  the (common) budget are tied at the budget, ranked above every observed value: Gehan's
  generalised Wilcoxon test for a common censoring time.
* quality at ``at`` samples (default: the budget, or for budgets in epochs, time or queries
  the fewest architectures any run drew): ``best_search`` (best search metric found) or
  ``incumbent_report`` (report metric of the best-by-search architecture): is the
  candidate's stochastically worse / better, under the oracle's direction (lower accuracy,
  higher perplexity)?

A verdict needs both significance and size, so that noise does not fail a build and a
negligible but consistent change does not either:

* significance: Holm-Bonferroni-adjusted p < ``alpha`` (0.01; adjusted over every test of
  the same direction in the comparison, so checking many cells does not multiply false
  alarms: a comparison of pure noise fails at most ``alpha`` of the time);
* size: the Vargha-Delaney A12 (probability that a random candidate run is worse than a
  random baseline run, ties counting half) >= ``min_a12`` (0.64, their "medium" effect), and
  the practical difference >= ``min_ratio`` (samples: ratio of restricted means, 1.1 =
  10% more samples) or ``min_diff`` (quality: difference of means in percentage points,
  0.05 pp, for accuracies; in the metric's own unit for anything else).

A pair is ``worse`` if any metric is worse, ``better`` if some metric is better and none is
worse, ``indistinguishable`` otherwise.

A run the runner stopped because it could not go on (a stuck algorithm; summary ``stopped``)
counts as censored where it stopped for samples-to-optimum; when such a run is censored
before the common budget the rank test is Gehan's generalised Wilcoxon test with Mantel's
variance (:func:`harness.statistics.gehan`), which orders only the pairs the data order.
The text says how many runs stopped on each side. When the two sides' runs were computed
on machines whose facts differ (CPU model, BLAS library and kernel, numpy:
:func:`harness.results.machine_info`), a note says so; it never changes the verdict.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from oracles.errors import UserError

from .metrics import CellRuns, ResultSet
from .statistics import censor_at, censored_rank_test, holm, mann_whitney

#: configuration fields that must agree for two cells to be comparable
MUST_MATCH = ("oracle_checksum", "budget", "protocol", "until_optimum", "charge_repeats", "max_repeats",
              "workers_per_run", "budget_kind")
#: what a configuration that predates a field (or leaves it at its default) meant by its absence
_ABSENT = {"max_repeats": 10_000, "workers_per_run": 1, "budget_kind": "archs"}
METRICS = ("samples_to_optimum", "best_search", "incumbent_report")


@dataclass
class Thresholds:
    #: family-wise significance level: a build fails on pure noise (e.g. other seeds) at most
    #: this often; 1% rather than 5% because CI runs comparisons over and over
    alpha: float = 0.01
    min_a12: float = 0.64        #: Vargha & Delaney (2000) "medium" effect
    min_ratio: float = 1.10      #: samples-to-optimum: candidate/baseline restricted means
    min_diff: float = 0.05       #: quality: baseline minus candidate mean, percentage points

    def validate(self) -> "Thresholds":
        if not 0 < self.alpha < 1:
            raise UserError(f"--alpha must be in (0, 1), got {self.alpha}")
        if not 0.5 <= self.min_a12 <= 1:
            raise UserError(f"--min-a12 must be in [0.5, 1], got {self.min_a12}")
        if self.min_ratio < 1:
            raise UserError(f"--min-ratio must be >= 1, got {self.min_ratio}")
        if self.min_diff < 0:
            raise UserError(f"--min-diff must be >= 0, got {self.min_diff}")
        return self


@dataclass
class MetricResult:
    metric: str
    at: int | None                 #: samples, for quality metrics
    n_base: int
    n_cand: int
    base: float | None             #: baseline mean (restricted mean for samples)
    cand: float | None
    effect: float | None           #: ratio cand/base (samples), or how much worse the candidate's
    #: mean quality is: percentage points for accuracies, the metric's unit otherwise
    a12_worse: float | None        #: P(candidate run worse than baseline run)
    p_worse: float | None
    p_better: float | None
    p_worse_adj: float | None = None
    p_better_adj: float | None = None
    verdict: str = "indistinguishable"
    fraction: bool = True          #: quality shown in percent (an accuracy) or as plain numbers


@dataclass
class PairResult:
    oracle: str
    base_label: str
    cand_label: str
    metrics: list[MetricResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stopped: tuple[int, int] = (0, 0)    #: runs stopped by the runner: (baseline, candidate)

    @property
    def verdict(self) -> str:
        v = {m.verdict for m in self.metrics}
        return "worse" if "worse" in v else "better" if "better" in v else "indistinguishable"


@dataclass
class Comparison:
    baseline: str
    candidate: str
    thresholds: Thresholds
    pairs: list[PairResult]
    unmatched_baseline: list[str]
    unmatched_candidate: list[str]
    notes: list[str] = field(default_factory=list)    #: about the comparison as a whole

    @property
    def regression(self) -> bool:
        return any(p.verdict == "worse" for p in self.pairs)

    def as_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "candidate": self.candidate,
                "thresholds": asdict(self.thresholds), "regression": self.regression,
                "pairs": [{"oracle": p.oracle, "baseline": p.base_label, "candidate": p.cand_label,
                           "verdict": p.verdict, "notes": p.notes,
                           "stopped": {"baseline": p.stopped[0], "candidate": p.stopped[1]},
                           "metrics": [asdict(m) for m in p.metrics]} for p in self.pairs],
                "unmatched_baseline": self.unmatched_baseline,
                "unmatched_candidate": self.unmatched_candidate, "notes": self.notes}


def match_cells(base: ResultSet, cand: ResultSet) -> tuple[list[tuple[CellRuns, CellRuns]], list[str], list[str]]:
    """Pairs by (oracle, label), then by (oracle, algorithm name) among the leftovers when
    that is unambiguous on both sides."""
    pairs, b_left, c_left = [], [], {c.key: c for c in cand.cells if c.n_runs}
    for b in base.cells:
        if not b.n_runs:
            continue
        c = c_left.pop(b.key, None)
        if c is not None:
            pairs.append((b, c))
        else:
            b_left.append(b)
    still = []
    for b in b_left:
        same_b = [x for x in b_left if (x.oracle, x.algorithm) == (b.oracle, b.algorithm)]
        same_c = [x for x in c_left.values() if (x.oracle, x.algorithm) == (b.oracle, b.algorithm)]
        if len(same_b) == 1 and len(same_c) == 1:
            pairs.append((b, same_c[0]))
            c_left.pop(same_c[0].key)
        else:
            still.append(b)
    return (pairs, [f"{b.oracle} | {b.label}" for b in still],
            [f"{c.oracle} | {c.label}" for c in c_left.values()])


def check_comparable(b: CellRuns, c: CellRuns) -> None:
    for k in MUST_MATCH:
        bv, cv = b.config.get(k, _ABSENT.get(k)), c.config.get(k, _ABSENT.get(k))
        if bv != cv:
            what = {"oracle_checksum": "oracle data (checksum)", "protocol": "run protocol version",
                    "until_optimum": "stopping rule (--until-optimum)",
                    "charge_repeats": "repeat charging (--charge-repeats)",
                    "max_repeats": "stuck limit (--max-repeats)",
                    "workers_per_run": "simulated workers per run (--workers-per-run)",
                    "budget_kind": "budget unit (--budget-kind)"}.get(k, k)
            show = (lambda v: str(v)[:12]) if k == "oracle_checksum" else str
            todo = ("the two ran on different oracle data (another version of the table, or another "
                    "encoding of its columns): run the candidate on the baseline's data, or regenerate the "
                    "baseline" if k == "oracle_checksum" else "re-run the candidate with the baseline's configuration")
            raise UserError(f"cannot compare {b.oracle} | {b.label} with {c.label}: {what} differs "
                            f"(baseline {show(bv)}, candidate {show(cv)}); {todo}")


def _sto(cell: CellRuns) -> tuple[np.ndarray, np.ndarray]:
    """(times, observed): censored runs at the budget, stopped runs where they stopped."""
    return censor_at(cell.samples_to_optimum, cell.censored, cell.censor_times)


def _test_pair(b: CellRuns, c: CellRuns, metrics: list[str], at: int | None, info=None) -> PairResult:
    """The tests of one pair; ``info``: the oracle's facts (direction, units), None for a
    folder written before they were stored (maximised accuracies)."""
    pr = PairResult(b.oracle, b.label, c.label)
    if b.label != c.label:
        pr.notes.append(f"matched by algorithm name: {b.label} vs {c.label}")
    bp, cp = b.config.get("params") or {}, c.config.get("params") or {}
    changed = sorted(k for k in set(bp) | set(cp) if bp.get(k) != cp.get(k))
    if changed:
        pr.notes.append("hyper-parameters differ: " + ", ".join(f"{k} {bp.get(k)!r} -> {cp.get(k)!r}" for k in changed))
    overlap = len(set(b.seeds.tolist()) & set(c.seeds.tolist()))
    if overlap:
        pr.notes.append(f"{overlap} seed(s) in common")
    pr.stopped = (b.n_stopped, c.n_stopped)
    if b.n_stopped or c.n_stopped:
        why = sorted(set(b.stop_summary()) | set(c.stop_summary()))
        pr.notes.append(f"stopped runs (could not go on; censored where they stopped): baseline {b.n_stopped} "
                        f"of {b.n_runs}, candidate {c.n_stopped} of {c.n_runs} ({'; '.join(why)})")
    for metric in metrics:
        if metric == "samples_to_optimum":
            if not b.until_optimum:
                continue
            (bv, be), (cv, ce), n_at = _sto(b), _sto(c), None
            worse = censored_rank_test(cv, ce, bv, be, "greater")   # candidate needs more samples
            better = censored_rank_test(cv, ce, bv, be, "less")
            with np.errstate(divide="ignore", invalid="ignore"):
                effect = float(cv.mean() / bv.mean())
            a12 = worse.a12
        else:
            limit = min(b.sample_budget, c.sample_budget)
            n_at = limit if at is None else int(at)
            if n_at > limit:
                raise UserError(f"--at {n_at} is past the {'budget' if b.budget_kind == 'archs' else 'samples every run drew'} "
                                f"({limit}) of {b.oracle} | {b.label}")
            bv, cv = b.quality_at(n_at)[metric], c.quality_at(n_at)[metric]
            bv, cv = bv[~np.isnan(bv)], cv[~np.isnan(cv)]
            if len(bv) == 0 or len(cv) == 0:
                pr.notes.append(f"{metric}: no run defined at {n_at} samples")
                continue
            # scores: higher is better whatever the oracle's direction
            sign = -1.0 if info is not None and info.minimise else 1.0
            bs, cs = sign * bv, sign * cv
            worse = mann_whitney(cs, bs, "less")      # candidate finds worse architectures
            better = mann_whitney(cs, bs, "greater")
            fraction = info is None or info.is_fraction("report" if metric.endswith("report") else "search")
            effect = float((100.0 if fraction else 1.0) * (bs.mean() - cs.mean()))
            a12 = 1.0 - worse.a12                     # P(candidate worse than baseline)
        pr.metrics.append(MetricResult(
            metric=metric, at=n_at, n_base=len(bv), n_cand=len(cv), base=float(bv.mean()),
            cand=float(cv.mean()), effect=effect, a12_worse=a12,
            p_worse=worse.p_value, p_better=better.p_value,
            fraction=True if metric == "samples_to_optimum" else fraction))
    return pr


def _decide(m: MetricResult, t: Thresholds) -> str:
    big_worse = m.a12_worse >= t.min_a12 and (
        m.effect >= t.min_ratio if m.metric == "samples_to_optimum" else m.effect >= t.min_diff)
    big_better = m.a12_worse <= 1.0 - t.min_a12 and (
        m.effect <= 1.0 / t.min_ratio if m.metric == "samples_to_optimum" else m.effect <= -t.min_diff)
    if m.p_worse_adj < t.alpha and big_worse:
        return "worse"
    if m.p_better_adj < t.alpha and big_better:
        return "better"
    return "indistinguishable"


def compare(base: ResultSet, cand: ResultSet, metrics: list[str] | None = None, at: int | None = None,
            thresholds: Thresholds | None = None) -> Comparison:
    t = (thresholds or Thresholds()).validate()
    metrics = list(metrics or ["samples_to_optimum", "best_search"])
    bad = [m for m in metrics if m not in METRICS]
    if bad:
        raise UserError(f"unknown metric {bad[0]!r}; choose from {', '.join(METRICS)}")
    pairs, ub, uc = match_cells(base, cand)
    if not pairs:
        raise UserError(f"no cell of {cand.source} matches one of {base.source} by oracle and algorithm "
                        f"(baseline has {', '.join(f'{c.oracle} | {c.label}' for c in base.cells) or 'nothing'})")
    for b, c in pairs:
        check_comparable(b, c)
    results = [_test_pair(b, c, metrics, at, base.oracles.get(b.oracle) or cand.oracles.get(c.oracle))
               for b, c in pairs]
    flat = [m for r in results for m in r.metrics]
    for m, pw, pb in zip(flat, holm([m.p_worse for m in flat]), holm([m.p_better for m in flat])):
        m.p_worse_adj, m.p_better_adj = pw, pb
        m.verdict = _decide(m, t)
    return Comparison(base.source, cand.source, t, results, ub, uc, machine_notes(base, cand))


def machine_notes(base: ResultSet, cand: ResultSet) -> list[str]:
    """Say when the two sides ran on machines whose facts differ (CPU model, BLAS library or
    kernel, numpy). Information only, never a refusal: a comparison across machines is what
    a baseline file is for, and the verdict compares distributions over seeds. What differs
    is which runs are identical: random search, evolution and MCTS reproduce every seed
    across CPUs; algorithms built on least squares or torch (LaNAS) may not, because another
    BLAS kernel changes the last bits of a fit and a tree amplifies them."""
    from .metrics import describe_machine, machine_facts
    if not base.machines or not cand.machines:
        return []

    def side(machines):
        # which libraries a process reports depends on what it had imported (scipy brings its
        # own OpenBLAS, numba or torch an OpenMP runtime), so one machine shows up as several
        # records: a side is the union of its records' facts
        facts = [machine_facts(m) for m in machines]
        cpus = {(f["cpu"], f["machine"], f["numpy"]) for f in facts}
        return cpus, {tuple(lib) for f in facts for lib in f["blas"]}

    (bc, bb), (cc, cb) = side(base.machines), side(cand.machines)
    # same CPUs and numpy, and one side's libraries a subset of the other's: the same machine
    # seen through processes that loaded more or fewer libraries
    if bc == cc and (bb <= cb or cb <= bb):
        return []
    return [f"the runs were computed on different machines (baseline: "
            f"{'; '.join(describe_machine(m) for m in base.machines)}; candidate: "
            f"{'; '.join(describe_machine(m) for m in cand.machines)}): runs of algorithms built on least "
            "squares or torch (e.g. LaNAS) may differ seed by seed; the verdict compares distributions over "
            "seeds, so it stands"]


def format_comparison(cmp: Comparison) -> str:
    head = ["oracle", "baseline -> candidate", "metric", "runs", "baseline", "candidate", "effect",
            "A12", "p worse", "p better", "verdict"]
    rows = []
    for p in cmp.pairs:
        for m in p.metrics:
            if m.metric == "samples_to_optimum":
                vals = [f"{m.base:,.0f}", f"{m.cand:,.0f}", f"x{m.effect:.2f}"]
                name = "samples to optimum"
            elif m.fraction:
                vals = [f"{100 * m.base:.2f}%", f"{100 * m.cand:.2f}%", f"{-m.effect:+.2f} pp"]
                name = f"{m.metric} @{m.at:,}"
            else:   # not an accuracy (perplexity, loss): the metric's own numbers
                vals = [f"{m.base:.4g}", f"{m.cand:.4g}", f"{-m.effect:+.4g} better"]
                name = f"{m.metric} @{m.at:,}"
            rows.append([p.oracle, f"{p.base_label} -> {p.cand_label}", name, f"{m.n_base}/{m.n_cand}", *vals,
                         f"{m.a12_worse:.2f}", f"{m.p_worse_adj:.2g}", f"{m.p_better_adj:.2g}",
                         m.verdict.upper() if m.verdict == "worse" else m.verdict])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    t = cmp.thresholds
    out += ["", f"effect: samples ratio candidate/baseline (restricted means), or candidate minus baseline "
                f"mean quality; A12 = P(a candidate run is worse than a baseline run); p: one-sided "
                f"Mann-Whitney U, Holm-adjusted. worse/better needs p < {t.alpha}, A12 >= {t.min_a12} "
                f"(or <= {1 - t.min_a12:.2f}) and a ratio >= {t.min_ratio} / difference >= {t.min_diff} pp."]
    for p in cmp.pairs:
        for n in p.notes:
            out.append(f"note: {p.oracle} | {p.cand_label}: {n}")
    for k in cmp.unmatched_baseline:
        out.append(f"note: baseline cell {k} has no candidate counterpart (not compared)")
    for k in cmp.unmatched_candidate:
        out.append(f"note: candidate cell {k} has no baseline counterpart (not compared)")
    for n in cmp.notes:
        out.append(f"note: {n}")
    verdicts = [p.verdict for p in cmp.pairs]
    sb, sc = (sum(p.stopped[i] for p in cmp.pairs) for i in (0, 1))
    stops = (f"; runs stopped (could not go on, counted as censored): baseline {sb}, candidate {sc}"
             if sb or sc else "")
    out.append(f"\n{verdicts.count('worse')} worse, {verdicts.count('better')} better, "
               f"{verdicts.count('indistinguishable')} indistinguishable{stops}"
               + (": REGRESSION" if cmp.regression else ""))
    return "\n".join(out)
