"""How far a supernet ranks like the ground truth (supernets/rank.py, `nas-harness supernet rank`).

The statistics are checked on rankings whose answers are known by hand; the study end to
end on tiny supernets (C=4, N=1, 192 digits images, 2 epochs: seconds) against a truth made
of two of those supernets' own scores, so every alignment of classes, seeds and epochs shows
up as a statistic that must be exactly 1 or equal to another one."""

import json
import math

import numpy as np
import pytest

from optional import require_module

from oracles import nb201_canonical as canon
from oracles.errors import CorruptData
from supernets import rank

require_module("scipy")


# --- statistics with known answers -----------------------------------------------------------------
def test_tau_and_rho_of_identical_and_reversed_rankings():
    x = np.arange(20.0)
    assert rank.kendall_tau_b(x, x) == pytest.approx(1.0)
    assert rank.kendall_tau_b(x, -x) == pytest.approx(-1.0)
    assert rank.spearman_rho(x, x[::-1]) == pytest.approx(-1.0)
    assert rank.spearman_rho(x ** 3, x) == pytest.approx(1.0)      # ranks, not values


def test_tau_b_corrects_for_ties():
    # pairs: (0,1) tied in pred, (0,2) and (1,2) concordant: (2 - 0) / sqrt((3 - 1) * (3 - 0))
    assert rank.kendall_tau_b([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(6))
    # a constant ranking has no tau
    assert rank.kendall_tau_b([1, 1, 1], [1, 2, 3]) is None
    assert rank.spearman_rho([5, 5], [1, 2]) is None


def test_missing_values_are_refused():
    with pytest.raises(ValueError, match="finite"):
        rank.kendall_tau_b([1, np.nan, 3], [1, 2, 3])
    with pytest.raises(ValueError):
        rank.top_k_overlap([1, 2], [1, 2, 3], 1)


def test_top_k_membership_shares_tied_places():
    p = rank.top_k_membership([5, 4, 4, 4, 1], 2)
    np.testing.assert_allclose(p, [1, 1 / 3, 1 / 3, 1 / 3, 0])
    assert rank.top_k_membership([3, 3, 3], 5).sum() == pytest.approx(3)   # k cut to n


def test_top_k_overlap():
    x = np.arange(100.0)
    assert rank.top_k_overlap(x, x, 10) == pytest.approx(1.0)
    assert rank.top_k_overlap(-x, x, 10) == pytest.approx(0.0)
    # top 10 predicted = items 90..99 shifted by 5: 95..99 shared
    assert rank.top_k_overlap(np.roll(x, 5), x, 10) == pytest.approx(0.5)
    # a constant prediction picks k of n at random: expected overlap k / n
    assert rank.top_k_overlap(np.zeros(50), x[:50], 10) == pytest.approx(10 / 50)


def test_top_fraction_members_and_tau():
    truth = np.arange(100.0)
    assert rank.top_fraction_members(truth, 0.1).sum() == 10
    tied = np.array([1, 2, 3, 3, 3, 4.0])
    # ceil(0.5 * 6) = 3rd best is 3: every 3 is in
    assert list(rank.top_fraction_members(tied, 0.5)) == [False, False, True, True, True, True]
    # a ranking right at the bottom and reversed at the top
    pred = truth.copy()
    pred[90:] = -pred[90:]
    assert rank.top_fraction_tau(pred, truth, 0.1) == pytest.approx(-1.0)
    assert rank.kendall_tau_b(pred, truth) < 1


def test_best_pick():
    truth = np.array([10, 20, 30, 40, 50.0])
    out = rank.best_pick([0, 0, 9, 0, 0], truth, report=[1, 2, 3, 4, 5])
    assert out["true_rank"] == 3 and out["true_value"] == 30 and out["regret"] == 20
    assert out["report_value"] == 3 and out["percentile"] == pytest.approx(3 / 5)
    # two cells tied for the best prediction: each picked with probability 1/2
    out = rank.best_pick([9, 0, 0, 0, 9], truth)
    assert out["true_rank"] == pytest.approx((5 + 1) / 2) and out["tied_picks"] == 2
    # ties in the truth: rank = 1 + the number strictly better
    assert rank.best_pick([0, 1, 0], [5, 5, 5])["true_rank"] == 1


def test_loss_view_reads_lower_as_better():
    acc = np.linspace(0.5, 0.9, 30)
    loss = 1 - acc
    stats = rank.view_statistics({"valid_acc": acc, "valid_loss": loss},
                                 {"valid_acc": acc, "valid_loss": loss, "test_acc": acc})
    assert stats["acc.tau"] == pytest.approx(1) and stats["loss.tau"] == pytest.approx(1)
    assert stats["loss.best_true_rank"] == 1 and stats["loss.best_true_value"] == pytest.approx(loss.min())
    assert stats["acc.best_report"] == pytest.approx(0.9) and stats["acc.overlap@10"] == pytest.approx(1)
    assert stats["n"] == 30 and stats["acc.top100_in_true_top"] == pytest.approx(3 / 30)


def test_t_interval_over_seeds():
    out = rank.t_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)    # t(0.975, 2) * s / sqrt(n), s = 1
    assert out["mean"] == 2 and out["lo"] == pytest.approx(2 - half) and out["hi"] == pytest.approx(2 + half)
    assert rank.t_interval([0.5])["lo"] is None and rank.t_interval([None, 0.5])["n"] == 1


def test_bootstrap_interval_brackets_the_estimate():
    rng = np.random.default_rng(1)
    x = rng.normal(size=300)
    y = x + rng.normal(size=300)
    point = rank.kendall_tau_b(y, x)
    ci = rank.bootstrap_interval(lambda b: {"tau": rank.kendall_tau_b(y[b], x[b])}, 300, resamples=100)
    lo, hi = ci["tau"]
    assert lo < point < hi and hi - lo < 0.2


# --- the truth -------------------------------------------------------------------------------------
def _rows(classes, seeds, value=lambda c, s: 0.5):
    reps = canon.representative_archs("nb201")
    from oracles.nb201_space import arch_to_string
    return {(c, s): {"arch": arch_to_string(reps[c]), "valid_acc": value(c, s), "valid_loss": 1 - value(c, s),
                     "test_acc": value(c, s), "test_loss": 1.0} for c in classes for s in seeds}


def test_truth_from_rows_partial_seeds_and_merge():
    rows = _rows([3, 7, 11], [0], lambda c, s: c / 100)
    rows.update(_rows([7], [1], lambda c, s: 0.2))
    t = rank.truth_from_rows(rows)
    assert list(t.classes) == [3, 7, 11] and t.seeds == ("0", "1") and t.counts() == {"0": 3, "1": 1}
    np.testing.assert_array_equal(t.archs[1], canon.representative_archs()[7])
    assert np.isnan(t.column("valid_acc", "1")[0]) and t.column("valid_acc", "1")[1] == 0.2
    other = rank.truth_from_rows(_rows([11, 20], [0, 1], lambda c, s: c / 100))
    both = rank.merge_truths([t, other])
    assert list(both.classes) == [3, 7, 11, 20] and both.counts() == {"0": 4, "1": 3}
    clash = rank.truth_from_rows(_rows([3], [0], lambda c, s: 0.9))
    with pytest.raises(CorruptData, match="disagree"):
        rank.merge_truths([t, clash])
    bad = _rows([3], [0])
    bad[3, 0]["arch"] = "|none~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|"
    with pytest.raises(CorruptData, match="representative"):
        rank.truth_from_rows(bad)


def test_sample_classes_prefers_complete_classes_and_is_fixed():
    t = rank.truth_from_rows(_rows(range(40), [0]))
    prefer = np.zeros(40, bool)
    prefer[[2, 5, 9]] = True
    a = rank.sample_classes(t, 10, seed=4, prefer=prefer)
    assert len(a) == 10 and len(set(a)) == 10 and set([2, 5, 9]) <= set(a)
    np.testing.assert_array_equal(a, rank.sample_classes(t, 10, seed=4, prefer=prefer))
    assert set(rank.sample_classes(t, 2, seed=4, prefer=prefer)) < {2, 5, 9}
    assert set(rank.sample_classes(t, 5, seed=4)) < set(rank.sample_classes(t, 12, seed=4))   # nested
    np.testing.assert_array_equal(rank.sample_classes(t, None), np.arange(40))


def test_sample_follows_the_collectors_class_order():
    from oracles.collectors.nb201 import class_order
    order = class_order("nb201")
    # a partial collection: the first 300 classes of the order with seed 0, the first 50 also with seed 1
    t = rank.truth_from_rows(_rows(order[:300].tolist(), [0]))
    prefer = np.isin(t.classes, order[:50])
    picked = t.classes[rank.sample_classes(t, 80, prefer=prefer)]
    assert set(picked) == set(order[:80].tolist())


# --- end to end on tiny supernets ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_supernets(tmp_path_factory):
    require_module("torch")
    require_module("sklearn")
    from conftest import data_env
    from harness.cli import main
    d = tmp_path_factory.mktemp("rank-data")
    with data_env(d):
        for seed in (0, 1, 2):
            assert main(["supernet", "train", "nb201", "--dataset", "digits", "--C", "4", "--epochs", "2",
                         "--max-train", "192", "--seed", str(seed), "--snapshots", "1", "--name", f"tiny-s{seed}",
                         "--no-progress"]) == 0
    return d


def _truth_from_supernets(names, classes, cache):
    """A truth whose seed k is supernet names[k]'s own scores (so the answers are known)."""
    archs = canon.representative_archs()[classes]
    cols = [rank.score_cells(n, archs, cache_dir=cache) for n in names]
    values = {m: np.stack([c[m] for c in cols], axis=1) for m in rank.TRUTH_METRICS}
    return rank.Truth(classes, archs, tuple(str(i) for i in range(len(names))), values, source="test")


def test_study_end_to_end(tiny_supernets, tmp_path):
    from conftest import data_env
    classes = np.sort(np.random.default_rng(0).choice(canon.num_classes(), 30, replace=False))
    with data_env(tiny_supernets):
        truth = _truth_from_supernets(["tiny-s0", "tiny-s1"], classes, tmp_path / "cache")
        # seed 1 missing for a few classes: a partial truth
        for m in truth.values:
            truth.values[m][:5, 1] = np.nan
        result = rank.run_study(truth, ["tiny-s0", "tiny-s1", "tiny-s2"], cells=12, cache_dir=tmp_path / "cache",
                                resamples=20, log=lambda m: None)
        t = result["truth"]
        assert t["classes_used"] == 30 and t["classes_common"] == 25 and t["curve_classes"] == 12
        (g,) = result["groups"]
        assert g["epochs"] == [1, 2] and g["seeds"] == [0, 1, 2]
        s0 = g["per_seed"]["tiny-s0"][2]
        # truth seed 0 is supernet seed 0's own scores
        assert s0["final"]["acc.tau"] == pytest.approx(1) and s0["final"]["loss.tau"] == pytest.approx(1)
        assert s0["final"]["acc.best_true_rank"] == 1
        # identical rankings: the overlap is 1 but for ties at the 10th place (broken at random on each side)
        acc = truth.column("valid_acc", "0")
        assert s0["final"]["acc.overlap@10"] == pytest.approx(rank.top_k_overlap(acc, acc, 10))
        # the ceiling (truth seed 1 ranking against seed 0) is supernet seed 1 against seed 0 on the same classes
        assert result["ceiling"]["classes"] == 25
        assert result["ceiling"]["stats"]["acc.tau"] == pytest.approx(
            g["per_seed"]["tiny-s1"][2]["common_ref"]["acc.tau"])
        assert g["per_seed"]["tiny-s1"][2]["common_other"]["acc.tau"] == pytest.approx(1)
        # an earlier snapshot is another ranking than the last epoch's
        assert g["per_seed"]["tiny-s0"][1]["curve"] != s0["curve"]
        summ = g["summary"]["final"]["acc.tau"]
        assert summ["n"] == 3 and summ["lo"] <= summ["mean"] <= summ["hi"]
        # the cache serves a second run without scoring
        again = rank.run_study(truth, ["tiny-s0", "tiny-s1", "tiny-s2"], cells=12, cache_dir=tmp_path / "cache",
                               resamples=0, log=lambda m: None)
        assert all(x["scored"] == 0 for x in again["groups"][0]["scoring"])
        assert again["groups"][0]["summary"]["final"] == g["summary"]["final"]
        paths = rank.write_report(result, tmp_path / "out", command="nas-harness supernet rank ...")
    names = {p.name for p in paths}
    assert {"rank.json", "report.md", "tau_vs_epoch.png", "scatter.png"} <= names
    assert json.loads((tmp_path / "out" / "rank.json").read_text())["truth"]["classes_used"] == 30
    assert "30 used" in (tmp_path / "out" / "report.md").read_text()


def test_cli_on_a_table_truth(tiny_supernets, tmp_path, capsys):
    from conftest import data_env
    from harness.cli import main
    from oracles.collectors.nb201 import STORED_KIND, cell_code
    from oracles.table import Table, save_table
    classes = np.arange(0, 200, 10)
    with data_env(tiny_supernets):
        truth = _truth_from_supernets(["tiny-s2", "tiny-s1"], classes, tmp_path / "cache")
        metrics = rank.TRUTH_METRICS
        values = np.stack([truth.values[m] for m in metrics], axis=-1)[:, :, None, :]
        # stored as the collector stores a table: by class (oracles.collectors.nb201.finalize)
        table = Table(name="tiny-truth", archs=np.array([cell_code(a) for a in truth.archs]), seeds=("0", "1"),
                      fidelities=(2,), metrics=metrics, values=values,
                      columns={"params": np.zeros(len(classes), np.int32)},
                      meta={"space": {"kind": STORED_KIND, "rule": "nb201"}})
        save_table(table, tmp_path / "truth")
        code = main(["supernet", "rank", "tiny-s0", "supernet/tiny-s1", "tiny-s2", "--truth", str(tmp_path / "truth"),
                     "--out", str(tmp_path / "out"), "--resamples", "10", "--cache", str(tmp_path / "cache")])
        assert code == 0
        out = capsys.readouterr().out
        assert "20 classes used" in out
        result = json.loads((tmp_path / "out" / "rank.json").read_text())
        assert result["groups"][0]["per_seed"]["tiny-s2"]["2"]["final"]["acc.tau"] == pytest.approx(1)
        assert main(["supernet", "rank", "nope", "--truth", str(tmp_path / "truth"), "--out", str(tmp_path)]) == 2
        assert "no supernet 'nope'" in capsys.readouterr().err
        assert main(["supernet", "rank", "tiny-s0", "--truth", str(tmp_path), "--out", str(tmp_path)]) == 2
        assert "neither a collection" in capsys.readouterr().err
