"""How results/mlpnas_52/finetune_best.py pairs cells for its Mann-Whitney tests: within one
folder, every pair of one oracle family (the one-shot oracle with its plain twin); with
``--against``, every cell of the folder against each cell of another folder's finetuned.csv."""

import csv

import pytest

from results_scripts import load_results_script


@pytest.fixture(scope="module")
def finetune_best():
    return load_results_script("mlpnas_52/finetune_best.py", "mlpnas_52_finetune_best")


def runs(valid, test):
    return [{"valid_acc": v, "finetuned_test_acc": t} for v, t in zip(valid, test)]


def test_within_a_folder_pairs_every_cell_of_one_family_once(finetune_best):
    cells = {("live/mlp-wine", "random"): runs([0.1, 0.2, 0.3], [0.1, 0.2, 0.3]),
             ("live/mlp-wine:bigram_sharing=true", "mlpnas"): runs([0.7, 0.8, 0.9], [0.7, 0.8, 0.9]),
             ("live/mlp-digits", "random"): runs([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])}
    summary = {}
    lines = finetune_best.pairwise_tests(cells, summary)
    pairs = [(p["first"][1], p["second"][1]) for p in summary["pairwise"]]
    # wine's one-shot oracle counts with wine, never with digits
    assert pairs == [("random", "mlpnas")]
    assert summary["pairwise"][0]["valid_acc"]["a12"] == 0.0
    assert "pairwise_against" not in summary
    assert sum(line.startswith("| random | mlpnas |") for line in lines) == 1


def test_against_pairs_each_cell_here_with_each_cell_of_the_other_folder(finetune_best, tmp_path):
    other = tmp_path / "digits" / "finetuned.csv"
    other.parent.mkdir()
    with open(other, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["oracle", "algorithm", "seed", "valid_acc", "finetuned_test_acc"])
        w.writeheader()
        for seed, (v, t) in enumerate([(0.90, 0.91), (0.92, 0.93)]):
            w.writerow({"oracle": "live/mlp-digits", "algorithm": "random", "seed": seed, "valid_acc": v,
                        "finetuned_test_acc": t})
            w.writerow({"oracle": "live/mlp-digits", "algorithm": "mlpnas:preset=plain", "seed": seed,
                        "valid_acc": v + 0.05, "finetuned_test_acc": t})
        w.writerow({"oracle": "live/mlp-wine", "algorithm": "random", "seed": 0, "valid_acc": 1.0,
                    "finetuned_test_acc": 1.0})
    against = finetune_best.read_finetuned(other)
    # the other folder's cells keep its name, so they never merge with this folder's
    assert sorted(against) == [("live/mlp-digits", "mlpnas:preset=plain [digits]"),
                               ("live/mlp-digits", "random [digits]"), ("live/mlp-wine", "random [digits]")]
    assert against[("live/mlp-digits", "random [digits]")] == runs([0.90, 0.92], [0.91, 0.93])
    here = {("live/mlp-digits:bigram_sharing=true", "mlpnas:preset=extended"): runs([0.99, 0.98], [0.95, 0.96]),
            ("live/mlp-digits", "random"): runs([0.80, 0.81], [0.90, 0.92])}
    summary = {}
    finetune_best.pairwise_tests(here, summary, against)
    pairs = {(p["first"][1], p["second"][1]): p for p in summary["pairwise_against"]}
    # digits' cells against digits' cells only; no pair within one folder
    assert sorted(pairs) == [("mlpnas:preset=extended", "mlpnas:preset=plain [digits]"),
                             ("mlpnas:preset=extended", "random [digits]"),
                             ("random", "mlpnas:preset=plain [digits]"), ("random", "random [digits]")]
    assert pairs[("mlpnas:preset=extended", "random [digits]")]["valid_acc"]["a12"] == 1.0
    assert pairs[("random", "random [digits]")]["finetuned_test_acc"]["a12"] == 0.25   # 0.92 > 0.91 only
    assert "pairwise" not in summary


def test_a_file_that_is_no_finetuned_csv_is_named_with_its_line(finetune_best, tmp_path):
    bad = tmp_path / "x" / "finetuned.csv"
    bad.parent.mkdir()
    bad.write_text("oracle,algorithm,valid_acc\nlive/mlp-wine,random,0.9\n")
    with pytest.raises(ValueError, match=r"finetuned.csv, line 2: not a row of a finetuned.csv"):
        finetune_best.read_finetuned(bad)
