"""Numbers of results/mf_nbnlp.md beyond `nas-harness report`: the ranking by regret at the
budget's simulated time with pairwise rank tests, how often each algorithm ends at the
optimum (the LSTM), what it trained at each fidelity, how many diverged cells it was told
about, and how well early epochs rank epoch 50 (the issue's anchors).

    python results/mf_nbnlp/analysis.py RUNS [FIGURE.png]   # RUNS: the folder of results/experiments/mf_nbnlp.toml

FIGURE (optional): the best validation perplexity found against the simulated time of the 4
workers in days, linear axes, median and interquartile range over the seeds
(results/mf_nbnlp/figures/perplexity_days.png).

RUNS is read as one tidy table (`pandas.read_parquet(RUNS / "runs")`); the anchors need the
`nbnlp` table in $NAS_HARNESS_DATA (`nas-harness oracles import nbnlp ../shared/data/nbnlp`).
Regrets are in validation loss (nats per word) at epoch 50: best found - the LSTM's 4.41531
(perplexity ratio exp(regret)); test regret = test loss (at the epoch of best validation) of
the best-by-validation cell - the best such test loss in the space. Intervals are percentile
bootstraps of the runs (2000 resamples, seed 0, `harness.statistics.bootstrap_ci`); p-values
are two-sided Mann-Whitney U tests (`harness.statistics.mann_whitney`) of the regret at the
budget, Holm-adjusted over the 15 pairs.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from harness.statistics import bootstrap_ci, holm, mann_whitney

#: training epochs every run paid (Hyperband and BOHB pay about 6,400 to 7,000 in the budget's
#: time): the regret at equal compute rather than equal simulated time
EPOCHS_CUT = 6000


def regrets(runs: Path) -> tuple[pd.DataFrame, dict]:
    exp = json.loads((runs / "experiment.json").read_text())
    cell = next(iter(exp["cells"].values()))
    facts = cell["oracle_facts"]
    budget = float(cell["config"]["budget"]) if cell["config"]["budget_kind"] == "time" else None
    df = pd.read_parquet(runs / "runs", columns=["algorithm", "seed", "sample", "best_search", "incumbent_report",
                                                 "search", "fidelity", "epochs", "repeat", "start", "finish", "cost"])
    df = df.sort_values(["algorithm", "seed", "sample"])
    opt_search, opt_report = facts["optimum_search"], facts["best_report"]
    last = df.groupby(["algorithm", "seed"]).tail(1).set_index(["algorithm", "seed"])
    out = pd.DataFrame({"final": last["best_search"] - opt_search,
                        "final_report": last["incumbent_report"] - opt_report})
    out["clock"] = df.groupby(["algorithm", "seed"])["finish"].max()
    # at the budget's simulated time: trials finished by then (records are in tell order)
    horizon = budget if budget is not None else float(out["clock"].min())
    by_then = df[df["finish"] <= horizon].groupby(["algorithm", "seed"]).tail(1).set_index(["algorithm", "seed"])
    out["search"] = by_then["best_search"] - opt_search
    out["report"] = by_then["incumbent_report"] - opt_report
    # at equal compute: the best found once a run had paid EPOCHS_CUT epochs (told order)
    df["paid_so_far"] = df.groupby(["algorithm", "seed"])["epochs"].cumsum()
    by_epochs = df[df["paid_so_far"] <= EPOCHS_CUT].groupby(["algorithm", "seed"]).tail(1)
    out["at_epochs"] = by_epochs.set_index(["algorithm", "seed"])["best_search"] - opt_search
    paid = df[~df["repeat"]]
    out["trials"] = paid.groupby(["algorithm", "seed"]).size()
    out["at_50"] = paid[paid["fidelity"] == 50].groupby(["algorithm", "seed"]).size()
    out["failed"] = paid[~np.isfinite(paid["search"])].groupby(["algorithm", "seed"]).size()
    out["epochs"] = paid.groupby(["algorithm", "seed"])["epochs"].sum()
    # busy share of the 4 simulated workers: trial durations over workers x clock
    workers = int(cell["config"].get("workers_per_run", 1))
    busy = (paid["finish"] - paid["start"]).groupby([paid["algorithm"], paid["seed"]]).sum()
    out["busy"] = busy / (workers * out["clock"])
    out = out.fillna({"at_50": 0, "failed": 0})
    rungs = paid.groupby(["algorithm", "fidelity"]).size() / paid.groupby("algorithm")["seed"].nunique()
    return out, {"optimum": opt_search, "best_report": opt_report, "horizon": horizon, "rungs": rungs}


def main(runs: Path) -> None:
    reg, info = regrets(runs)
    print(f"optimum: valid loss {info['optimum']:.5f} (perplexity {math.exp(info['optimum']):.2f}); best test "
          f"loss at best validation {info['best_report']:.5f} (perplexity {math.exp(info['best_report']):.2f}); "
          f"regrets at simulated time {info['horizon']:,.0f} s\n")
    rows = []
    for algo, g in reg.groupby(level="algorithm"):
        s, r, f = g["search"].to_numpy(), g["report"].to_numpy(), g["final"].to_numpy()
        rows.append((algo, np.median(s), *bootstrap_ci(s, "median"), s.mean(), *bootstrap_ci(s, "mean"),
                     np.median(r), *bootstrap_ci(r, "median"), float(np.mean(s <= 1e-12)), len(s),
                     g["trials"].mean(), g["at_50"].mean(), g["failed"].mean(), g["epochs"].mean(),
                     g["clock"].mean(), np.median(f), *bootstrap_ci(f, "median")))
    rows.sort(key=lambda t: (t[1], t[4]))
    print("| rank | algorithm | runs | validation-loss regret, median [95% CI] | mean [95% CI] | "
          "test-loss regret of the incumbent, median [95% CI] | runs at the LSTM | trials per run "
          "(of them at 50 epochs) | diverged cells told per run | epochs paid per run |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for k, (algo, med, lo, hi, mean, mlo, mhi, rmed, rlo, rhi, at_opt, n, trials, at50, failed, epochs,
            *_rest) in enumerate(rows, 1):
        print(f"| {k} | {algo} | {n} | {med:.4f} [{lo:.4f}, {hi:.4f}] | {mean:.4f} [{mlo:.4f}, {mhi:.4f}] | "
              f"{rmed:.4f} [{rlo:.4f}, {rhi:.4f}] | {at_opt:.0%} | {trials:,.0f} ({at50:,.0f}) | {failed:.1f} | "
              f"{epochs:,.0f} |")
    print("\n| algorithm | simulated time at the end (mean) | final regret (all started trials told), median [95% CI] "
          f"| workers busy (mean) | regret after {EPOCHS_CUT:,} epochs paid, median [95% CI] |")
    print("| --- | --- | --- | --- | --- |")
    for algo, *rest in rows:
        clock, fmed, flo, fhi = rest[-4:]
        e = reg.loc[algo, "at_epochs"].to_numpy()
        elo, ehi = bootstrap_ci(e, "median")
        print(f"| {algo} | {clock:,.0f} s | {fmed:.4f} [{flo:.4f}, {fhi:.4f}] | {reg.loc[algo, 'busy'].mean():.0%} | "
              f"{np.median(e):.4f} [{elo:.4f}, {ehi:.4f}] |")
    names = [r[0] for r in rows]
    pairs = list(itertools.combinations(names, 2))
    tests = [mann_whitney(reg.loc[a, "search"].to_numpy(), reg.loc[b, "search"].to_numpy()) for a, b in pairs]
    adjusted = holm([t.p_value for t in tests])
    print("\n| pair (better rank first) | A12 = P(first has the larger regret) | p (Holm) |")
    print("| --- | --- | --- |")
    for (a, b), t, p in zip(pairs, tests, adjusted):
        print(f"| {a} vs {b} | {t.a12:.2f} | {p:.2g} |")
    print("\ntrials per run at each fidelity (epochs), mean over seeds:")
    rungs = info["rungs"]
    for algo in names:
        r = rungs.loc[algo]
        print(f"  {algo}: " + ", ".join(f"{int(f)}: {c:.1f}" for f, c in r.items()))
    anchors()


def anchors() -> None:
    """The issue's anchors and the rank correlation of every rung with epoch 50."""
    from scipy.stats import kendalltau, spearmanr

    from oracles.registry import data_dir
    from oracles.table import load_table
    t = load_table(data_dir() / "nbnlp")
    v = np.asarray(t.values[:, 0, :, t.metrics.index("valid_loss")])
    fin = np.asarray(t.columns["n_finished"]) > 0
    print(f"\nfinished cells: {fin.sum():,} of {len(fin):,}")
    for e in (1, 2, 3, 5, 6, 10, 17, 25):
        print(f"  validation at epoch {e} vs 50: Spearman {spearmanr(v[fin, e - 1], v[fin, 49])[0]:.3f}, "
              f"Kendall {kendalltau(v[fin, e - 1], v[fin, 49])[0]:.3f}")
    best = np.argmin(v[fin], axis=1) + 1
    print(f"  best validation at epoch 50: {np.mean(best == 50):.1%} of the finished cells; "
          f"median epoch of best validation {np.median(best):.0f}")
    top = v[fin, 49] <= np.quantile(v[fin, 49], 0.1)
    print(f"  within the top 10 % at epoch 50: Spearman epoch 5 vs 50 {spearmanr(v[fin][top, 4], v[fin][top, 49])[0]:.3f}")
    cost = np.asarray(t.values[:, 0, :, t.metrics.index("train_time")])
    print(f"  training seconds to epoch 50: mean {cost[:, -1].mean():,.0f} over all cells, "
          f"{cost[fin, -1].mean():,.0f} over finished ones (min {cost[fin, -1].min():,.0f}, "
          f"max {cost[fin, -1].max():,.0f}); a diverged cell pays {cost[~fin, -1].mean():,.0f} on average")


def figure(runs: Path, out: Path, points: int = 300) -> None:
    """Best validation perplexity at epoch 50 found by each simulated time (median and IQR)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    exp = json.loads((runs / "experiment.json").read_text())
    cell = next(iter(exp["cells"].values()))
    budget, opt = float(cell["config"]["budget"]), cell["oracle_facts"]["optimum_search"]
    df = pd.read_parquet(runs / "runs", columns=["algorithm", "seed", "best_search", "finish"])
    grid = np.linspace(0, budget, points)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for algo, g in sorted(df.groupby("algorithm"), key=lambda kv: kv[0]):
        curves = []
        for _, r in g.groupby("seed"):
            finish, best = r["finish"].to_numpy(), r["best_search"].to_numpy()
            k = np.searchsorted(finish, grid, side="right") - 1
            curves.append(np.where(k >= 0, best[np.maximum(k, 0)], np.nan))
        ppl = np.exp(np.array(curves))
        with np.errstate(invalid="ignore"):
            med, lo, hi = (np.nanquantile(ppl, q, axis=0) for q in (0.5, 0.25, 0.75))
        line, = ax.plot(grid / 86400, med, label=algo)
        ax.fill_between(grid / 86400, lo, hi, color=line.get_color(), alpha=0.15, linewidth=0)
    ax.axhline(math.exp(opt), color="black", linestyle=":", linewidth=1, label=f"LSTM {math.exp(opt):.1f}")
    ax.set_ylim(math.exp(opt) - 2, 115)
    ax.set_xlabel("simulated time of 4 workers [days] (measured training seconds)")
    ax.set_ylabel("best validation perplexity at epoch 50")
    ax.set_title("NAS-Bench-NLP, 100 seeds: median and IQR (lower is better)")
    ax.grid(alpha=0.3)
    ax.legend(ncol=2, fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
    if len(sys.argv) > 2:
        figure(Path(sys.argv[1]), Path(sys.argv[2]))
