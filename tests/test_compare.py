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


# --- the text, the JSON and the notes, pinned down by mutation testing --------------------
def _comparison_by_hand():
    from harness.compare import Comparison, MetricResult, PairResult
    worse = MetricResult("samples_to_optimum", None, 20, 20, 1234.4, 2468.8, 2.0, 0.9, 1e-5, 1.0,
                         p_worse_adj=2e-5, p_better_adj=1.0, verdict="worse")
    better = MetricResult("best_search", 1000, 20, 19, 0.9123, 0.9246, -1.23, 0.2, 0.9, 0.004,
                          p_worse_adj=1.0, p_better_adj=0.008, verdict="better")
    same = MetricResult("incumbent_report", 1000, 5, 5, 0.5, 0.5, 0.01, 0.5, 0.5, 0.5,
                        p_worse_adj=0.5, p_better_adj=0.5)
    p1 = PairResult("nb201/cifar10", "lanas", "lanas:split=random", [worse, better],
                    notes=["matched by algorithm name: lanas vs lanas:split=random"], stopped=(0, 3))
    p2 = PairResult("o2", "rs", "rs", [same], stopped=(1, 0))
    return Comparison("base.json", "runs/cand", Thresholds(), [p1, p2], ["o | mcts"], ["o | evolution"],
                      notes=["the runs were computed on different machines"])


def test_the_comparison_table_by_hand():
    text = format_comparison(_comparison_by_hand()).split("\n")
    cells = [["oracle", "baseline -> candidate", "metric", "runs", "baseline", "candidate", "effect", "A12",
              "p worse", "p better", "verdict"],
             ["nb201/cifar10", "lanas -> lanas:split=random", "samples to optimum", "20/20", "1,234", "2,469",
              "x2.00", "0.90", "2e-05", "1", "WORSE"],
             ["nb201/cifar10", "lanas -> lanas:split=random", "best_search @1,000", "20/19", "91.23%", "92.46%",
              "+1.23 pp", "0.20", "1", "0.008", "better"],
             ["o2", "rs -> rs", "incumbent_report @1,000", "5/5", "50.00%", "50.00%", "-0.01 pp", "0.50", "0.5",
              "0.5", "indistinguishable"]]
    # each column as wide as its widest entry, two spaces apart, left-aligned: column k
    # starts at starts[k] (widths 13, 27, 23, 5, 8, 9, 8, 4, 7, 8, 17)
    starts = [0, 15, 44, 69, 76, 86, 97, 107, 113, 122, 132]
    for line, want in zip(text[:4], cells):
        assert len(line) == 149, line
        got = [line[a:b].rstrip() for a, b in zip(starts, starts[1:] + [149])]
        assert got == want
        assert all(line[a - 2:a] == "  " for a in starts[1:])
    assert text[4:] == [
        "",
        "effect: samples ratio candidate/baseline (restricted means), or candidate minus baseline mean quality; "
        "A12 = P(a candidate run is worse than a baseline run); p: one-sided Mann-Whitney U, Holm-adjusted. "
        "worse/better needs p < 0.01, A12 >= 0.64 (or <= 0.36) and a ratio >= 1.1 / difference >= 0.05 pp.",
        "note: nb201/cifar10 | lanas:split=random: matched by algorithm name: lanas vs lanas:split=random",
        "note: baseline cell o | mcts has no candidate counterpart (not compared)",
        "note: candidate cell o | evolution has no baseline counterpart (not compared)",
        "note: the runs were computed on different machines",
        "",
        "1 worse, 0 better, 1 indistinguishable; runs stopped (could not go on, counted as censored): "
        "baseline 1, candidate 3: REGRESSION"]
    # the count is of pairs, one of each verdict
    c = compare(rs(cell("a", BASE_STO), cell("b", BASE_STO), cell("c", BASE_STO)),
                rs(cell("a", BASE_STO * 3), cell("b", BASE_STO / 3), cell("c", BASE_STO)))
    assert format_comparison(c).split("\n")[-1] == "1 worse, 1 better, 1 indistinguishable: REGRESSION"


def test_an_empty_comparison_reads_as_nothing_compared():
    from harness.compare import Comparison
    text = format_comparison(Comparison("a", "b", Thresholds(min_a12=0.7), [], [], []))
    lines = text.split("\n")
    assert lines[0] == "oracle  baseline -> candidate  metric  runs  baseline  candidate  effect  A12  p worse  " \
                       "p better  verdict"
    assert "(or <= 0.30)" in lines[2]
    assert lines[-2:] == ["", "0 worse, 0 better, 0 indistinguishable"]


def test_the_comparison_as_json():
    d = _comparison_by_hand().as_dict()
    assert d["baseline"] == "base.json" and d["candidate"] == "runs/cand" and d["regression"] is True
    assert d["thresholds"] == {"alpha": 0.01, "min_a12": 0.64, "min_ratio": 1.1, "min_diff": 0.05}
    assert d["unmatched_baseline"] == ["o | mcts"] and d["unmatched_candidate"] == ["o | evolution"]
    assert d["notes"] == ["the runs were computed on different machines"]
    p = d["pairs"][0]
    assert {k: v for k, v in p.items() if k != "metrics"} == {
        "oracle": "nb201/cifar10", "baseline": "lanas", "candidate": "lanas:split=random", "verdict": "worse",
        "notes": ["matched by algorithm name: lanas vs lanas:split=random"],
        "stopped": {"baseline": 0, "candidate": 3}}
    want = {"metric": "best_search", "at": 1000, "n_base": 20, "n_cand": 19, "base": 0.9123, "cand": 0.9246,
            "effect": -1.23, "a12_worse": 0.2, "p_worse": 0.9, "p_better": 0.004, "p_worse_adj": 1.0,
            "p_better_adj": 0.008, "verdict": "better"}
    assert {k: p["metrics"][1][k] for k in want} == want
    assert [m["metric"] for m in p["metrics"]] == ["samples_to_optimum", "best_search"]
    assert [q["oracle"] for q in d["pairs"]] == ["nb201/cifar10", "o2"]
    assert set(d) == {"baseline", "candidate", "thresholds", "regression", "pairs", "unmatched_baseline",
                      "unmatched_candidate", "notes"}
    assert json.loads(json.dumps(d)) == d


def test_compare_names_its_two_sides():
    c = compare(ResultSet("base.json", "baseline", [cell("lanas", BASE_STO)], {}),
                ResultSet("runs/x", "folder", [cell("lanas", BASE_STO)], {}))
    assert (c.baseline, c.candidate) == ("base.json", "runs/x")


def test_the_notes_of_a_pair():
    base = cell("lanas", BASE_STO, params={"split": "adam", "trees": 3, "same": 1})
    cand = cell("lanas", BASE_STO + 1, params={"split": "lstsq", "same": 1, "extra": True})
    cand.seeds = np.arange(15, 35)
    (p,) = compare(rs(base), rs(cand)).pairs
    assert p.notes == ["hyper-parameters differ: extra None -> True, split 'adam' -> 'lstsq', trees 3 -> None",
                       "5 seed(s) in common"]
    cand.seeds = np.arange(100, 120)
    cand.config["params"] = dict(base.config["params"])
    assert compare(rs(base), rs(cand)).pairs[0].notes == []          # nothing to say
    # runs stopped for two reasons on the two sides
    b = stopped_cell("lanas", np.where(np.arange(20) < 2, np.nan, BASE_STO), [300, 300] + [None] * 18)
    c = stopped_cell("lanas", np.where(np.arange(20) < 1, np.nan, BASE_STO), [200] + [None] * 19)
    c.stopped = np.array(["budget of repeats spent"] + [None] * 19, dtype=object)
    (p,) = compare(rs(b), rs(c)).pairs
    assert p.notes[-1] == ("stopped runs (could not go on; censored where they stopped): baseline 2 of 20, candidate "
                           "1 of 20 (budget of repeats spent; stuck: asked 10000 already-evaluated architectures in a row)")


def test_metrics_a_cell_cannot_answer_are_left_out():
    from scipy.stats import mannwhitneyu
    # runs not until the optimum: no samples-to-optimum, the quality metrics still compared
    q = np.linspace(0.90, 0.91, 20)
    base, cand = cell("rs", BASE_STO, q, until_optimum=False), cell("rs", BASE_STO, q - 0.001, until_optimum=False)
    c = compare(rs(base), rs(cand), metrics=["samples_to_optimum", "best_search", "incumbent_report"])
    assert [m.metric for m in c.pairs[0].metrics] == ["best_search", "incumbent_report"]
    # quality undefined in every baseline run: a note, and the next metric is still compared
    base = cell("rs", BASE_STO, q)
    base.checkpoints[BUDGET]["best_search"] = np.full(20, np.nan)
    c = compare(rs(base), rs(cell("rs", BASE_STO, q)), metrics=["best_search", "incumbent_report"])
    assert c.pairs[0].notes[-1] == "best_search: no run defined at 1000 samples"
    assert [m.metric for m in c.pairs[0].metrics] == ["incumbent_report"]
    # defined in a single run on either side: compared, with the counts saying so
    for side in ("base", "cand"):
        one_run = cell("rs", BASE_STO, q)
        one_run.checkpoints[BUDGET]["best_search"] = np.r_[0.95, np.full(19, np.nan)]
        b, k = (one_run, cell("rs", BASE_STO, q)) if side == "base" else (cell("rs", BASE_STO, q), one_run)
        (m,) = compare(rs(b), rs(k), metrics=["best_search"]).pairs[0].metrics
        assert (m.n_base, m.n_cand) == ((1, 20) if side == "base" else (20, 1))
        # the two one-sided tests of the candidate's quality: lower is worse, higher better
        bv, cv = b.checkpoints[BUDGET]["best_search"], k.checkpoints[BUDGET]["best_search"]
        bv, cv = bv[~np.isnan(bv)], cv[~np.isnan(cv)]
        assert m.p_worse == pytest.approx(mannwhitneyu(cv, bv, alternative="less").pvalue, rel=1e-9)
        assert m.p_better == pytest.approx(mannwhitneyu(cv, bv, alternative="greater").pvalue, rel=1e-9)
    with pytest.raises(UserError, match=r"--at 1001 is past the budget \(1000\) of o \| rs"):
        compare(rs(cell("rs", BASE_STO)), rs(cell("rs", BASE_STO)), metrics=["best_search"], at=1001)


def test_samples_to_optimum_tests_are_one_sided():
    from scipy.stats import mannwhitneyu
    cand = BASE_STO[::-1] * 1.3
    (m,) = compare(rs(cell("lanas", BASE_STO)), rs(cell("lanas", cand)), metrics=["samples_to_optimum"]).pairs[0].metrics
    assert m.p_worse == pytest.approx(mannwhitneyu(cand, BASE_STO, alternative="greater").pvalue, rel=1e-9)
    assert m.p_better == pytest.approx(mannwhitneyu(cand, BASE_STO, alternative="less").pvalue, rel=1e-9)
    assert (m.n_base, m.n_cand) == (20, 20)


def test_refusals_say_what_differs_and_what_to_do():
    base = cell("lanas", BASE_STO, oracle_checksum="0123456789abcdef0123")
    with pytest.raises(UserError) as err:
        compare(rs(base), rs(cell("lanas", BASE_STO, oracle_checksum="fedcba9876543210fedc")))
    assert str(err.value) == (
        "cannot compare o | lanas with lanas: oracle data (checksum) differs (baseline 0123456789ab, candidate "
        "fedcba987654); the two ran on different oracle data (another version of the table, or another encoding of "
        "its columns): run the candidate on the baseline's data, or regenerate the baseline")
    with pytest.raises(UserError) as err:
        compare(rs(cell("lanas", BASE_STO)), rs(cell("lanas", BASE_STO, budget=123456789012345)))
    assert str(err.value) == ("cannot compare o | lanas with lanas: budget differs (baseline 1000, candidate "
                              "123456789012345); re-run the candidate with the baseline's configuration")
    with pytest.raises(UserError) as err:
        compare(rs(cell("a", BASE_STO)), rs(cell("a", BASE_STO)), metrics=["speed"])
    assert str(err.value) == "unknown metric 'speed'; choose from samples_to_optimum, best_search, incumbent_report"
    with pytest.raises(UserError) as err:
        compare(rs(cell("random", BASE_STO), cell("evolution", BASE_STO)), rs(cell("mcts", BASE_STO)))
    assert str(err.value) == "no cell of x matches one of x by oracle and algorithm (baseline has o | random, o | evolution)"
    with pytest.raises(UserError, match=r"\(baseline has nothing\)"):
        compare(rs(), rs(cell("mcts", BASE_STO)))


def test_cells_match_by_label_first():
    # two variants of one algorithm on both sides: each matches its own label, and a cell
    # without runs is passed over
    empty = cell("random", [])
    base = rs(empty, cell("lanas:split=adam", BASE_STO, algorithm="lanas"),
              cell("lanas:split=lstsq", BASE_STO, algorithm="lanas"))
    cand = rs(cell("lanas:split=lstsq", BASE_STO * 3, algorithm="lanas"),
              cell("lanas:split=adam", BASE_STO, algorithm="lanas"))
    c = compare(base, cand)
    assert [(p.base_label, p.cand_label, p.verdict) for p in c.pairs] == [
        ("lanas:split=adam", "lanas:split=adam", "indistinguishable"),
        ("lanas:split=lstsq", "lanas:split=lstsq", "worse")]
    assert not any("matched by algorithm name" in n for p in c.pairs for n in p.notes)
    assert c.unmatched_baseline == [] and c.unmatched_candidate == []


def test_machine_notes_need_both_sides_and_any_difference():
    from harness.compare import machine_notes
    intel = {"cpu": "Intel(R) Xeon(R) CPU @ 2.20GHz", "machine": "x86_64", "numpy": "2.1.3",
             "blas": [{"internal_api": "openblas", "version": "0.3.27", "architecture": "SkylakeX",
                       "threading_layer": "pthreads", "num_threads": 1}]}
    other_cpu = dict(intel, cpu="Intel(R) Xeon(R) Platinum 8481C")      # same BLAS, another CPU
    base, cand = rs(cell("a", BASE_STO)), rs(cell("a", BASE_STO))
    base.machines, cand.machines = [], [other_cpu]
    assert machine_notes(base, cand) == [] and machine_notes(cand, base) == []    # one side unknown
    base.machines = [intel]
    (note,) = machine_notes(base, cand)
    assert "Platinum 8481C" in note
    base.machines = [intel, dict(intel, numpy="1.26.4")]
    cand.machines = [other_cpu, dict(other_cpu, machine="aarch64")]
    (note,) = machine_notes(base, cand)
    assert note == (
        "the runs were computed on different machines (baseline: Intel(R) Xeon(R) CPU @ 2.20GHz (x86_64), openblas "
        "0.3.27 SkylakeX, numpy 2.1.3; Intel(R) Xeon(R) CPU @ 2.20GHz (x86_64), openblas 0.3.27 SkylakeX, numpy "
        "1.26.4; candidate: Intel(R) Xeon(R) Platinum 8481C (x86_64), openblas 0.3.27 SkylakeX, numpy 2.1.3; "
        "Intel(R) Xeon(R) Platinum 8481C (aarch64), openblas 0.3.27 SkylakeX, numpy 2.1.3): runs "
        "of algorithms built on least squares or torch (e.g. LaNAS) may differ seed by seed; the verdict compares "
        "distributions over seeds, so it stands")


def _epochs_cell(label, quality, drew):
    """Runs with a budget in epochs, not until the optimum: each drew ``drew[i]`` architectures."""
    c = cell(label, quality=quality, until_optimum=False, budget_kind="epochs", budget=60_000)
    c.n_distinct = np.asarray(drew, float)
    c.checkpoints = {int(min(drew)): c.checkpoints[60_000]}
    return c


def test_quality_under_a_budget_in_epochs_is_compared_where_every_run_still_drew():
    q = np.linspace(0.90, 0.91, 20)
    drew = 300 + np.arange(20)
    (m,) = compare(rs(_epochs_cell("m", q, drew)), rs(_epochs_cell("m", q - 0.02, drew)),
                   metrics=["best_search"]).pairs[0].metrics
    assert m.at == 300 and m.verdict == "worse"
    with pytest.raises(UserError) as err:
        compare(rs(_epochs_cell("m", q, drew)), rs(_epochs_cell("m", q, drew)), metrics=["best_search"], at=301)
    assert str(err.value) == "--at 301 is past the samples every run drew (300) of o | m"
    with pytest.raises(UserError) as err:
        compare(rs(cell("m", BASE_STO)), rs(cell("m", BASE_STO)), metrics=["best_search"], at=1001)
    assert str(err.value) == "--at 1001 is past the budget (1000) of o | m"


def _facts(direction="max", units=None, optimum=0.95, best_report=0.94):
    from harness.metrics import OracleInfo
    return OracleInfo("o", "abc", optimum_search=optimum, best_report=best_report, search_metric="valid",
                      report_metric="test", direction=direction, units=units)


def test_each_quality_metric_in_its_own_unit():
    # the search metric an accuracy (a fraction), the report metric a loss: the first effect
    # in percentage points, the second in the loss's own unit
    q = np.linspace(0.90, 0.91, 20)
    facts = {"o": _facts(units={"valid": "fraction of images", "test": "cross-entropy"}, best_report=0.1)}
    base = ResultSet("b", "baseline", [cell("m", BASE_STO, q)], facts)
    cand = ResultSet("c", "baseline", [cell("m", BASE_STO, q - 0.002)], facts)
    sto, search, report = compare(base, cand, metrics=["samples_to_optimum", "best_search",
                                                       "incumbent_report"]).pairs[0].metrics
    assert search.effect == pytest.approx(0.2) and report.effect == pytest.approx(0.002)
    assert (sto.fraction, search.fraction, report.fraction) == (True, True, False)
    # and the other way round
    facts["o"] = _facts(units={"valid": "cross-entropy", "test": "accuracy"}, optimum=0.1)
    search, report = compare(base, cand, metrics=["best_search", "incumbent_report"]).pairs[0].metrics
    assert search.effect == pytest.approx(0.002) and report.effect == pytest.approx(0.2)
    assert (search.fraction, report.fraction) == (False, True)
    d = compare(base, cand, metrics=["samples_to_optimum", "best_search"]).as_dict()
    assert [m["fraction"] for m in d["pairs"][0]["metrics"]] == [True, False]


@pytest.mark.parametrize("side", ["baseline", "candidate"])
def test_the_direction_comes_from_whichever_side_knows_it(side):
    # a baseline file written before oracle facts were kept, compared with a folder that has
    # them (or the other way round): a minimised metric is still read as minimised
    ppl = 80.0 + 0.01 * np.arange(40)
    facts = {"o": _facts("min", optimum=60.0, best_report=59.0)}
    base = ResultSet("b", "baseline", [cell("m", quality=ppl)], facts if side == "baseline" else {})
    cand = ResultSet("c", "baseline", [cell("m", quality=ppl + 5)], facts if side == "candidate" else {})
    c = compare(base, cand, metrics=["best_search"])
    (m,) = c.pairs[0].metrics
    assert m.verdict == "worse" and m.effect == pytest.approx(5.0) and not m.fraction
    row = format_comparison(c).split("\n")[1].split()
    assert row[-8:-5] == ["80.2", "85.2", "-5"] and row[-5] == "better"
