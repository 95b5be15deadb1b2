"""Samples to the optimum of our LaNAS runs next to the authors' own code's runs (nb201/cifar10).

    python results/lanas_authors_figure.py RUNS_DIR [OUT.png]

RUNS_DIR is the folder written by ``nas-harness run results/experiments/lanas_authors_nb201.toml``;
every (oracle, algorithm) cell in it is drawn (an empirical CDF per algorithm; censored runs
are marked, never dropped) and printed (n, censored, mean, median, quartiles). The authors'
eight runs on the same table (their code, same protocol: distinct architectures until the
optimum of ``cifar10_valid``) are drawn as points: seven finished ones and one stopped
unfinished past 1,800 samples (censored).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

# The authors' code on nb201/cifar10, recorded in issue 13: seven finished runs, one unfinished
AUTHORS_FINISHED = [344, 412, 524, 531, 545, 558, 563]
AUTHORS_CENSORED_AT = 1800
DESCRIPTION = {"lanas": "lanas (default, Adam nodes)",
               "lanas:split=lstsq": "lanas:split=lstsq"}


def load(runs_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{label: (samples, censored)}`` per cell of the results folder."""
    from harness.results import ResultsStore
    out: dict[str, tuple[list, list]] = {}
    for cell, meta, _ in ResultsStore(runs_dir).iter_runs():
        s = meta["summary"]
        n, cens = (s["samples_to_optimum"], False) if s["samples_to_optimum"] is not None \
            else (s["n_distinct"], True)
        key = f"{cell.oracle} {cell.label}"
        out.setdefault(key, ([], []))
        out[key][0].append(n)
        out[key][1].append(cens)
    return {k: (np.asarray(a), np.asarray(c)) for k, (a, c) in out.items()}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    runs_dir = Path(argv[0])
    out = Path(argv[1]) if len(argv) > 1 else Path("results/lanas_authors_nb201/samples_to_optimum.png")
    cells = load(runs_dir)
    if not cells:
        print(f"error: no finished runs in {runs_dir}; run the experiment first", file=sys.stderr)
        return 2
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, axs) = plt.subplots(2, 1, figsize=(7.5, 6.2), height_ratios=(3, 1.4), sharex=True)
    styles = ["C0", "C2", "C4", "C5"]
    for (label, (n, cens)), color in zip(sorted(cells.items()), styles):
        fin = np.sort(n[~cens])
        q1, med, q3 = np.percentile(n, [25, 50, 75], method="inverted_cdf")  # = Kaplan-Meier without censoring
        if cens.any():
            print(f"note: {label} has censored runs; its quantiles here treat them as finished "
                  "(nas-harness report gives Kaplan-Meier ones)")
        print(f"{label}: n={len(n)} censored={int(cens.sum())} mean={n.mean():.1f} "
              f"median={med:g} IQR={q1:g}-{q3:g} max={n.max()}")
        y = np.arange(1, len(fin) + 1) / len(n)
        name = label.split(" ", 1)[1]
        ax.step(fin, y, where="post", color=color, label=f"{DESCRIPTION.get(name, name)}: "
                f"{len(n)} runs, med. {med:g}, mean {n.mean():.0f}")
        row = list(sorted(cells)).index(label)
        jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(n))
        axs.scatter(n[~cens], row + 1 + jitter[~cens], s=8, color=color, alpha=0.6)
        axs.scatter(n[cens], row + 1 + jitter[cens], s=30, marker=">", color=color)
    a = np.sort(AUTHORS_FINISHED)
    ya = np.arange(1, len(a) + 1) / (len(a) + 1)
    ax.step(np.r_[a, AUTHORS_CENSORED_AT], np.r_[ya, ya[-1]], where="post", color="C3", lw=1.2)
    ax.plot(a, ya, "o", color="C3", label="authors' code: 7 runs + 1 past 1,800")
    ax.annotate("", xy=(AUTHORS_CENSORED_AT * 1.25, ya[-1]), xytext=(AUTHORS_CENSORED_AT, ya[-1]),
                arrowprops=dict(arrowstyle="->", color="C3"))
    ax.plot([AUTHORS_CENSORED_AT], [ya[-1]], ">", color="C3", ms=8)
    axs.scatter(a, np.zeros(len(a)), s=30, color="C3", zorder=3)
    axs.scatter([AUTHORS_CENSORED_AT], [0], s=60, marker=">", color="C3", zorder=3)
    axs.set_yticks(range(len(cells) + 1), ["authors' code"] + [k.split(" ", 1)[1] for k in sorted(cells)])
    axs.set_ylim(-0.6, len(cells) + 0.6)
    ax.axvspan(min(AUTHORS_FINISHED), max(AUTHORS_FINISHED), color="C3", alpha=0.08)
    ax.set_ylabel("fraction of runs that found the optimum")
    ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.3)  # headroom for the legend
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.legend(loc="upper left", fontsize=7.5)
    ax.set_title("LaNAS on nb201/cifar10: samples to the global optimum\n"
                 "(shaded: range of the authors' seven finished runs; > : censored)", fontsize=10)
    axs.set_xlabel("samples to the optimum (distinct architectures, log scale)")
    ax.grid(alpha=0.3, which="both")
    axs.grid(alpha=0.3, axis="x", which="both")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130)
    print(f"figure: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
