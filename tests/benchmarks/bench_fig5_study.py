"""The NB201 Fig. 5 study as users run it, and where its time goes (issue 13, "Speed": the
whole study, 1,200 runs, within 3 minutes of wall time on 2 cores).

The study is LaNAS's comparison (Wang et al., Sample-Efficient Neural Architecture Search
by Learning Action Space, §4.2, Fig. 5) as ``results/experiments/lanas_fig5_nb201.toml``
runs it: random search, regularized evolution, MCTS and LaNAS on the three NB201 datasets,
100 seeds each, every run until it draws the global optimum, 2 local workers.

* ``test_fig5_study_nb201_all``: the whole study (minutes). ``extra_info`` splits its runs'
  time per algorithm: the summed algorithm CPU (``algo_cpu_s``, the runs' own
  measurement of start/ask/tell), the summed run wall time, and the queries.
* ``test_runner_overhead_per_query``: one random-search run to the optimum of
  nb201/cifar10 (seed 0, about 10,000 queries), whose algorithm is nearly free, so the
  run's CPU minus its ``algo_cpu_s`` is the runner's own cost per query (goal: under
  10 us), reported in ``extra_info["runner_us_per_query"]``.

Run: ``python -m pytest tests/benchmarks/bench_fig5_study.py -o addopts="" --benchmark-only``
(``-k "not all"`` for the quick one). On a shared machine compare the CPU figures in
``extra_info``, which load inflates less than wall time.
"""

import time
from collections import defaultdict
from pathlib import Path

from harness.runner import RunConfig, run_one

EXPERIMENT = Path(__file__).resolve().parents[2] / "results" / "experiments" / "lanas_fig5_nb201.toml"


def test_fig5_study_nb201_all(benchmark, nb201_env, tmp_path_factory):
    from harness.experiment import execute, load_toml
    outs = iter(tmp_path_factory.mktemp("fig5-all") / f"r{i}" for i in range(100))
    per_algo: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def collect(result):
        row = per_algo[result["cell"].rsplit(" | ", 1)[-1]]  # cell key: "oracle | algorithm"
        row["runs"] += 1
        row["algo_cpu_s"] += result.get("algo_cpu_s") or 0.0
        row["run_wall_s"] += result.get("wall_s") or 0.0
        row["queries"] += result.get("n_queries") or 0

    def study():
        per_algo.clear()
        exp = load_toml(EXPERIMENT, {"out": str(next(outs))})
        return execute(exp, on_result=collect, progress=False)

    cells, skipped, ran = benchmark.pedantic(study, rounds=1, iterations=1)
    assert ran == 1200 and skipped == 0
    benchmark.extra_info.update({algo: {k: round(v, 3) for k, v in row.items()}
                                 for algo, row in per_algo.items()})


def test_runner_overhead_per_query(benchmark, nb201_cifar10):
    config = RunConfig("random", {}, "nb201/cifar10", until_optimum=True)
    seen = {}

    def run():
        t = time.process_time()
        _, summary = run_one(config, nb201_cifar10, 0)
        seen["cpu"], seen["summary"] = time.process_time() - t, summary

    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    s = seen["summary"]
    assert s["reached_optimum"]
    benchmark.extra_info.update(
        n_queries=s["n_queries"],
        run_cpu_us_per_query=round(1e6 * seen["cpu"] / s["n_queries"], 2),
        algo_cpu_us_per_query=round(1e6 * s["algo_cpu_s"] / s["n_queries"], 2),
        runner_us_per_query=round(1e6 * (seen["cpu"] - s["algo_cpu_s"]) / s["n_queries"], 2))
