"""Regression verdicts: hand-made result sets with known answers, mismatches refused, the
command line, and baseline files that round-trip."""

import json

import numpy as np
import pytest

from conftest import data_env
from harness.cli import main as cli
from harness.compare import Thresholds, compare, format_comparison
from harness.metrics import CellRuns, ResultSet, load, load_baseline, save_baseline
from oracles.errors import UserError

BUDGET = 1000


def cell(label, sto=None, quality=None, algorithm=None, **config):
    """A cell from per-run samples-to-optimum (NaN = censored) and final best_search."""
    n = len(sto if sto is not None else quality)
    sto = np.full(n, np.nan) if sto is None else np.asarray(sto, float)
    quality = np.full(n, 0.9) if quality is None else np.asarray(quality, float)
    cfg = {"algorithm": algorithm or label.split(":")[0], "budget": BUDGET, "until_optimum": True,
           "protocol": 1, "oracle_checksum": "abc", "charge_repeats": False, "max_repeats": 10_000, **config}
    q = {"best_search": quality, "incumbent_report": quality - 0.03, "best_report": quality}
    return CellRuns(oracle="o", label=label, config=cfg, seeds=np.arange(n), samples_to_optimum=sto,
                    censored=np.isnan(sto), final=q, total_cost=np.full(n, np.nan),
                    checkpoints={cfg["budget"]: q})


def rs(*cells, name="x"):
    return ResultSet(name, "baseline", list(cells), {})


RNG = np.random.default_rng(7)
BASE_STO = RNG.integers(100, 400, size=20).astype(float)


def test_identical_runs_are_indistinguishable():
    c = compare(rs(cell("lanas", BASE_STO)), rs(cell("lanas", BASE_STO)))
    assert [p.verdict for p in c.pairs] == ["indistinguishable"] and not c.regression
    m = c.pairs[0].metrics[0]
    assert m.metric == "samples_to_optimum" and m.a12_worse == 0.5 and m.effect == 1.0


def test_a_much_slower_candidate_is_a_regression():
    slow = np.where(np.arange(20) < 15, np.nan, BASE_STO * 3)   # 15 of 20 censored at the budget
    c = compare(rs(cell("lanas", BASE_STO)), rs(cell("lanas", slow)))
    m = c.pairs[0].metrics[0]
    # every candidate run needs more samples than every baseline run but one
    assert m.a12_worse > 0.95 and m.p_worse_adj < 1e-4 and m.effect > 3
    assert c.regression and c.pairs[0].verdict == "worse"
    assert "REGRESSION" in format_comparison(c)
    # and the other way round it is an improvement, not a regression
    c = compare(rs(cell("lanas", slow)), rs(cell("lanas", BASE_STO)))
    assert c.pairs[0].verdict == "better" and not c.regression


def test_worse_final_quality_is_a_regression():
    q = 0.91 + 0.002 * RNG.standard_normal(20)
    c = compare(rs(cell("evolution", quality=q)), rs(cell("evolution", quality=q - 0.004)),
                metrics=["best_search"])
    m = c.pairs[0].metrics[0]
    assert m.effect == pytest.approx(0.4) and c.pairs[0].verdict == "worse"


def test_effect_size_threshold_keeps_tiny_significant_changes_from_failing():
    # 500 runs each: 5% more samples, consistently, is highly significant (and a large A12)
    # but below the 10% practical threshold
    base = np.random.default_rng(0).integers(290, 311, size=500).astype(float)
    cand = np.random.default_rng(1).integers(290, 311, size=500) * 1.05
    c = compare(rs(cell("lanas", base)), rs(cell("lanas", cand)))
    m = c.pairs[0].metrics[0]
    assert m.p_worse_adj < 1e-6 and m.a12_worse > 0.64 and m.effect < 1.1
    assert m.verdict == "indistinguishable"
    assert compare(rs(cell("lanas", base)), rs(cell("lanas", cand)),
                   thresholds=Thresholds(min_ratio=1.04)).regression


def test_noise_does_not_fail():
    # two independent samples from the same distribution, many times: the family-wise false
    # alarm rate stays at alpha = 1% (300 trials: at most 1% + 3 standard errors = 2.7%)
    rng = np.random.default_rng(3)
    alarms = 0
    for _ in range(300):
        a, b = (rng.geometric(1 / 300, size=20).astype(float) for _ in range(2))
        a[a > BUDGET], b[b > BUDGET] = np.nan, np.nan
        qa, qb = 0.9 + 0.003 * rng.standard_normal((2, 20))
        alarms += compare(rs(cell("lanas", a, qa)), rs(cell("lanas", b, qb))).regression
    assert alarms <= 8


def test_matching_by_algorithm_name_and_unmatched_cells():
    base = rs(cell("lanas", BASE_STO), cell("random", BASE_STO * 10))
    cand = rs(cell("lanas:split=random", BASE_STO), cell("mcts", BASE_STO))
    c = compare(base, cand)
    assert [(p.base_label, p.cand_label) for p in c.pairs] == [("lanas", "lanas:split=random")]
    assert c.unmatched_baseline == ["o | random"] and c.unmatched_candidate == ["o | mcts"]
    assert "matched by algorithm name" in c.pairs[0].notes[0]
    with pytest.raises(UserError, match="no cell"):
        compare(rs(cell("random", BASE_STO)), rs(cell("mcts", BASE_STO)))


@pytest.mark.parametrize("field, value, words", [
    ("budget", 500, "budget differs"),
    ("oracle_checksum", "def", "oracle data (checksum) differs"),
    ("protocol", 2, "run protocol version differs"),
    ("until_optimum", False, "stopping rule"),
])
def test_mismatched_configurations_are_refused(field, value, words):
    with pytest.raises(UserError, match=words.replace("(", r"\(").replace(")", r"\)")):
        compare(rs(cell("lanas", BASE_STO)), rs(cell("lanas", BASE_STO, **{field: value})))


def test_bad_thresholds_and_metrics_are_user_errors():
    with pytest.raises(UserError, match="alpha"):
        compare(rs(cell("a", BASE_STO)), rs(cell("a", BASE_STO)), thresholds=Thresholds(alpha=2))
    with pytest.raises(UserError, match="unknown metric"):
        compare(rs(cell("a", BASE_STO)), rs(cell("a", BASE_STO)), metrics=["speed"])
    with pytest.raises(UserError, match="keeps quality at 1000 samples only"):
        compare(rs(cell("a", BASE_STO)), rs(cell("a", BASE_STO)), metrics=["best_search"], at=10)


@pytest.fixture(scope="module")
def two_runs(nb201_data_dir, tmp_path_factory):
    """Real NB201 results: random search and a stronger algorithm, and a baseline file."""
    from harness.experiment import Experiment, execute
    with data_env(nb201_data_dir):
        d = tmp_path_factory.mktemp("cmp")
        for name, algo, seed_start in (("a", "evolution:population=20,sample_size=5", 0),
                                       ("b", "evolution:population=20,sample_size=5", 50),
                                       ("weak", "evolution:population=20,sample_size=1", 0)):
            execute(Experiment(oracles=["nb201/cifar10"], algorithms=[algo], seeds=12, seed_start=seed_start,
                               budget=150, until_optimum=True, out=str(d / name)), progress=False)
        yield d


def test_cli_compare_and_baseline_files(two_runs, nb201_env, tmp_path, capsys):
    d = two_runs
    # a folder and its compact baseline file hold the same numbers
    f = tmp_path / "base.json"
    assert cli(["baseline", str(d / "a"), str(f)]) == 0
    folder, base = load(d / "a"), load_baseline(f)
    for k in ("samples_to_optimum", "censored", "seeds"):
        np.testing.assert_array_equal(getattr(folder.cells[0], k), getattr(base.cells[0], k))
    np.testing.assert_array_equal(folder.cells[0].quality_at(100)["best_search"],
                                  base.cells[0].quality_at(100)["best_search"])
    assert base.oracles["nb201/cifar10"].optimum_search == pytest.approx(0.916066667)
    capsys.readouterr()
    # a baseline file reports like a folder (tables, no figures)
    assert cli(["report", str(f), "--format", "md"]) == 0
    text = capsys.readouterr().out
    assert "## Samples to the global optimum" in text and "![" not in text
    # identical runs, then other seeds: no regression (exit 0)
    assert cli(["compare", str(f), str(d / "a")]) == 0
    assert cli(["compare", str(f), str(d / "b"), "--metric", "best_search", "--at", "100"]) == 0
    # the tournament of one (no selection pressure) is caught: exit 1
    capsys.readouterr()
    code = cli(["compare", str(f), str(d / "weak"), "--metric", "best_search", "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["regression"] and out["pairs"][0]["verdict"] == "worse"
    # a mismatched configuration is one line and exit status 2
    save_baseline(_with_budget(base, 999), tmp_path / "other.json", [999])
    code = cli(["compare", str(tmp_path / "other.json"), str(d / "a")])
    err = capsys.readouterr().err
    assert code == 2 and "budget differs" in err and len(err.strip().splitlines()) == 1
    assert cli(["compare", str(tmp_path / "nope"), str(d / "a")]) == 2


def _with_budget(result_set, budget):
    c = result_set.cells[0]
    c.config = dict(c.config, budget=budget)
    c.checkpoints = {budget: c.checkpoints[max(c.checkpoints)]}
    return result_set


# --- runs the runner stopped, and machines -------------------------------------------------
def stopped_cell(label, sto, stopped_at):
    """``cell`` whose runs with ``stopped_at[i]`` set were stopped there (stuck algorithm)."""
    c = cell(label, sto)
    reasons = np.array([None if s is None else "stuck: asked 10000 already-evaluated architectures in a row "
                        f"(seed {i}, after {s} distinct)" for i, s in enumerate(stopped_at)], dtype=object)
    c.stopped = reasons
    c.n_distinct = np.array([BUDGET if s is None else s for s in stopped_at], dtype=float)
    c.censored = c.censored | np.array([s is not None for s in stopped_at])
    return c


def test_stopped_runs_are_censored_where_they_stopped_and_counted_in_the_verdict():
    # 12 of 20 candidate runs got stuck after 800 distinct architectures: each is known to
    # need more samples than every baseline run (100-400), so the candidate is worse
    stuck = np.arange(20) < 12
    sto = np.where(stuck, np.nan, BASE_STO)
    cand = stopped_cell("lanas", sto, [800 if s else None for s in stuck])
    np.testing.assert_array_equal(cand.censor_times[stuck], 800)
    c = compare(rs(cell("lanas", BASE_STO)), rs(cand))
    m = c.pairs[0].metrics[0]
    # the 12 x 20 pairs of a stuck run are all "worse"; the other 8 x 20 pairs are ordered by rank
    assert m.a12_worse > 0.75 and m.verdict == "worse" and c.regression
    assert c.pairs[0].stopped == (0, 12)
    text = format_comparison(c)
    assert "runs stopped (could not go on, counted as censored): baseline 0, candidate 12" in text
    assert "baseline 0 of 20, candidate 12 of 20 (stuck: asked 10000 already-evaluated architectures in a row)" in text
    assert c.as_dict()["pairs"][0]["stopped"] == {"baseline": 0, "candidate": 12}
    # stuck early (after 50): unordered against every baseline run that needed more, so the
    # same runs are weaker evidence, never "better"
    early = stopped_cell("lanas", sto, [50 if s else None for s in stuck])
    m_early = compare(rs(cell("lanas", BASE_STO)), rs(early)).pairs[0].metrics[0]
    assert m_early.a12_worse < m.a12_worse and m_early.verdict != "better"


def test_stopped_runs_round_trip_through_baseline_files(tmp_path):
    stops = [300 if i < 2 else None for i in range(20)]
    src = rs(stopped_cell("lanas", np.where(np.arange(20) < 2, np.nan, BASE_STO), stops))
    src.kind = "folder"
    path = save_baseline(src, tmp_path / "b.json", [BUDGET])
    back = load_baseline(path).cells[0]
    assert back.n_stopped == 2 and back.stop_summary() == {
        "stuck: asked 10000 already-evaluated architectures in a row": 2}
    np.testing.assert_array_equal(back.censor_times, src.cells[0].censor_times)


def test_compare_says_when_the_machines_differ_and_keeps_the_verdict(tmp_path):
    intel = {"cpu": "Intel(R) Xeon(R) CPU @ 2.20GHz", "machine": "x86_64", "numpy": "2.1.3",
             "blas": [{"internal_api": "openblas", "version": "0.3.27", "architecture": "SkylakeX",
                       "threading_layer": "pthreads", "num_threads": 1}]}
    amd = dict(intel, cpu="AMD EPYC 7B13", blas=[dict(intel["blas"][0], architecture="Zen")])
    base, cand = rs(cell("lanas", BASE_STO)), rs(cell("lanas", BASE_STO))
    base.machines, cand.machines = [intel], [dict(intel, blas=[dict(intel["blas"][0], num_threads=8)])]
    assert compare(base, cand).notes == []          # thread counts do not change results
    # one machine seen through processes that loaded more libraries (scipy's own OpenBLAS, an
    # OpenMP runtime): the same machine, no note
    scipy_blas = dict(intel["blas"][0], version="0.3.30")
    omp = {"internal_api": "openmp", "version": None, "architecture": None, "threading_layer": None}
    cand.machines = [dict(intel, blas=intel["blas"] + [scipy_blas]), dict(intel, blas=intel["blas"] + [omp])]
    assert compare(base, cand).notes == []
    cand.machines = [amd]
    c = compare(base, cand)
    assert c.pairs[0].verdict == "indistinguishable" and not c.regression
    (note,) = c.notes
    assert "different machines" in note and "SkylakeX" in note and "Zen" in note and "AMD EPYC 7B13" in note
    assert "note: the runs were computed on different machines" in format_comparison(c)
    # a baseline file keeps the machine facts of its runs
    base.kind = "folder"
    back = load_baseline(save_baseline(base, tmp_path / "m.json", [BUDGET]))
    assert back.machines == [intel]
    assert compare(back, cand).notes == c.notes


def test_baseline_of_a_real_folder_records_its_machine(two_runs, nb201_env, tmp_path):
    f = tmp_path / "base.json"
    assert cli(["baseline", str(two_runs / "a"), str(f)]) == 0
    data = json.loads(f.read_text())
    (m,) = data["machines"]
    assert m["cpu"] is not None and any(lib.get("internal_api") for lib in m["blas"])
    assert "recorded_by" not in m   # the runs' own record, not the machine writing the file
