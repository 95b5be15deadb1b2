"""Numbers of results/mf_nb201.md beyond `nas-harness report`: the ranking by final regret
with pairwise rank tests, how often each algorithm ends at the optimum, what it trained at
12 and at 200 epochs, the regret at the simulated time every run reached (4 workers), and
how well the 12-epoch results rank the 200-epoch ones.

    python results/mf_nb201/analysis.py RUNS        # RUNS: the folder of results/experiments/mf_nb201.toml

RUNS is read as one tidy table (`pandas.read_parquet(RUNS / "runs")`); the 12/200 rank
correlation needs the `nb201` table in $NAS_HARNESS_DATA (`nas-harness oracles import nb201
../shared/data/nb201`). Intervals are percentile bootstraps of the runs (2000 resamples,
seed 0, `harness.statistics.bootstrap_ci`); p-values are two-sided Mann-Whitney U tests
(`harness.statistics.mann_whitney`) of the final search regret, Holm-adjusted over the
pairs shown.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from harness.statistics import bootstrap_ci, holm, mann_whitney


def final_regrets(runs: Path) -> tuple[pd.DataFrame, float, float]:
    exp = json.loads((runs / "experiment.json").read_text())
    facts = next(iter(exp["oracle_facts"].values())) if "oracle_facts" in exp else None
    df = pd.read_parquet(runs / "runs", columns=["algorithm", "seed", "sample", "best_search",
                                                 "incumbent_report", "fidelity", "epochs", "repeat", "finish"])
    df = df.sort_values(["algorithm", "seed", "sample"])
    opt_search = facts["optimum_search"] if facts else float(df["best_search"].max())
    opt_report = facts["best_report"] if facts else float(df["incumbent_report"].max())
    last = df.groupby(["algorithm", "seed"]).tail(1).set_index(["algorithm", "seed"])
    out = pd.DataFrame({"search": (opt_search - last["best_search"]) * 100,
                        "report": (opt_report - last["incumbent_report"]) * 100})
    paid = df[~df["repeat"]]
    trained = paid.groupby(["algorithm", "seed", "fidelity"]).size().unstack("fidelity", fill_value=0)
    out = out.join(trained.add_prefix("n_at_"))
    out["clock"] = df.groupby(["algorithm", "seed"])["finish"].max()
    # the simulated time every run reached: the best found by then (records are in tell order,
    # so finish times increase within a run)
    horizon = float(out["clock"].min())
    by_then = df[df["finish"] <= horizon].groupby(["algorithm", "seed"]).tail(1).set_index(["algorithm", "seed"])
    out["search_at_horizon"] = (opt_search - by_then["best_search"]) * 100
    out.attrs["horizon"] = horizon
    return out, opt_search, opt_report


def main(runs: Path) -> None:
    reg, opt_search, opt_report = final_regrets(runs)
    print(f"optimum: valid {opt_search * 100:.4f} %, best test {opt_report * 100:.4f} %\n")
    rows = []
    for algo, g in reg.groupby(level="algorithm"):
        s = g["search"].to_numpy()
        r = g["report"].to_numpy()
        lo, hi = bootstrap_ci(s, "median")
        rlo, rhi = bootstrap_ci(r, "median")
        mlo, mhi = bootstrap_ci(s, "mean")
        counts = {c: g[c].mean() for c in g.columns if c.startswith("n_at_")}
        h = g["search_at_horizon"].to_numpy()
        hlo, hhi = bootstrap_ci(h, "median")
        rows.append((algo, np.median(s), lo, hi, s.mean(), mlo, mhi, np.median(r), rlo, rhi,
                     float(np.mean(s <= 1e-8)), counts, len(s), g["clock"].mean(), np.median(h), hlo, hhi))
    rows.sort(key=lambda t: (t[1], t[4]))
    print("| rank | algorithm | runs | search regret [pp], median [95% CI] | mean [95% CI] | "
          "test regret of the incumbent [pp], median [95% CI] | runs at the optimum | "
          "trainings per run (12 / 200 epochs) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for k, (algo, med, lo, hi, mean, mlo, mhi, rmed, rlo, rhi, at_opt, counts, n, *_) in enumerate(rows, 1):
        c12, c200 = counts.get("n_at_12", 0.0), counts.get("n_at_200", 0.0)
        print(f"| {k} | {algo} | {n} | {med:.3f} [{lo:.3f}, {hi:.3f}] | {mean:.3f} [{mlo:.3f}, {mhi:.3f}] | "
              f"{rmed:.3f} [{rlo:.3f}, {rhi:.3f}] | {at_opt:.0%} | {c12:.0f} / {c200:.0f} |")
    horizon = reg.attrs["horizon"]
    print(f"\n| algorithm | simulated time at the end (mean) | search regret [pp] at time {horizon:,.0f}, "
          "median [95% CI] |")
    print("| --- | --- | --- |")
    for algo, *_, clock, hmed, hlo, hhi in rows:
        print(f"| {algo} | {clock:,.0f} | {hmed:.3f} [{hlo:.3f}, {hhi:.3f}] |")
    # pairwise: every pair, Holm-adjusted
    names = [r[0] for r in rows]
    pairs = list(itertools.combinations(names, 2))
    tests = [mann_whitney(reg.loc[a, "search"].to_numpy(), reg.loc[b, "search"].to_numpy()) for a, b in pairs]
    adjusted = holm([t.p_value for t in tests])
    print("\n| pair (better rank first) | A12 = P(first has the larger regret) | p (Holm) |")
    print("| --- | --- | --- |")
    for (a, b), t, p in zip(pairs, tests, adjusted):
        print(f"| {a} vs {b} | {t.a12:.2f} | {p:.2g} |")
    from scipy.stats import kendalltau, spearmanr

    from oracles.registry import load_oracle
    o = load_oracle("nb201/cifar10:fidelities=all")
    v12 = np.array([o.query_index(i, fidelity=12).observation.value for i in range(o.space.size)])
    v200 = np.asarray(o.search_values)
    top = v200 >= np.quantile(v200, 0.9)
    print(f"\n12- vs 200-epoch cifar10_valid over {o.space.size:,} cells: Spearman "
          f"{spearmanr(v12, v200)[0]:.3f}, Kendall {kendalltau(v12, v200)[0]:.3f}; within the top 10 % "
          f"at 200 epochs: Spearman {spearmanr(v12[top], v200[top])[0]:.3f}")

if __name__ == "__main__":
    main(Path(sys.argv[1]))
