"""What a query of the live supernet oracle costs (supernets/oracle.py, "What a live query
costs"): the supernet's epochs are paid once, by the query that makes the supernet train,
and every query pays its evaluation; the deterministic cost and the measured seconds alike,
per run.

A tiny supernet (C=4, N=1, 128 digits images, 3 epochs) from an untrained checkpoint."""

import numpy as np
import pytest

from optional import require_module

torch = require_module("torch")
require_module("sklearn")

from harness.runner import RunConfig, run_one  # noqa: E402

torch.set_num_threads(1)

EPOCHS = 3
ARCHS = [(3, 2, 1, 3, 4, 2), (1, 1, 1, 1, 1, 1), (0, 3, 3, 2, 2, 1), (2, 0, 4, 3, 1, 0), (4, 4, 3, 3, 2, 2),
         (3, 3, 3, 3, 3, 3)]
#: the fidelities the sequence asks, out of order: their sum (12) is what the old rule charged
FIDELITIES = [2, 1, 3, 3, 1, 2]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from harness.cli import main
    path = tmp_path_factory.mktemp("supernets")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NAS_HARNESS_DATA", str(path))
        assert main(["supernet", "train", "nb201", "--dataset", "digits", "--C", "4", "--epochs", str(EPOCHS),
                     "--max-train", "128", "--name", "cost", "--until", "0", "--no-progress"]) == 0
    return path


@pytest.fixture
def live(data_dir, monkeypatch):
    from oracles.registry import load_oracle
    monkeypatch.setenv("NAS_HARNESS_DATA", str(data_dir))
    return load_oracle("supernet/cost:mode=live,calib=64")


def ask(oracle, rng):
    return [oracle.query(a, rng, fidelity=f) for a, f in zip(ARCHS, FIDELITIES)]


def test_the_epochs_are_paid_once_by_the_query_that_trains_them(live):
    e = live.eval_cost
    # 64 recalibration images and the search_valid part, at a third of a training image each
    assert e == pytest.approx((64 + len(live.data.search_valid[1])) / (3 * 128))
    answers = ask(live, np.random.default_rng(0))
    costs = [a.observation.cost for a in answers]
    # epochs 1-2 by the first query, 3 by the third; the others only their evaluation
    np.testing.assert_allclose(costs, [2 + e, e, 1 + e, e, e, e])
    assert sum(costs) == pytest.approx(EPOCHS + len(ARCHS) * e)
    assert sum(costs) < sum(FIDELITIES)
    # measured alike: a query's seconds are those of the epochs it paid for, plus its scoring
    seconds = {h["epoch"]: h["cpu_seconds"] for h in live.log}
    assert sorted(seconds) == [1, 2, 3]
    paid = [seconds[1] + seconds[2], 0.0, seconds[3], 0.0, 0.0, 0.0]
    scoring = [a.measured_s - p for a, p in zip(answers, paid)]
    assert min(scoring) >= 0.0


def test_a_new_run_pays_the_same_though_the_supernet_is_trained(live):
    first = ask(live, np.random.default_rng(0))
    log = list(live.log)
    again = ask(live, np.random.default_rng(0))                 # another generator: another run
    assert live.log == log                                      # nothing trained again
    assert [a.observation for a in again] == [a.observation for a in first]
    assert [a.measured_s for a in again] == [a.measured_s for a in first]
    # within one run, asking the same architecture again adds its evaluation to what it paid
    rng = np.random.default_rng(1)
    one = live.query(ARCHS[0], rng, fidelity=1).observation.cost
    two = live.query(ARCHS[0], rng, fidelity=3).observation.cost
    assert one == pytest.approx(1 + live.eval_cost) and two == pytest.approx(one + 2 + live.eval_cost)


@pytest.mark.parametrize("algorithm", ["successive-halving", "random"])
def test_a_search_is_charged_the_last_epoch_plus_its_evaluations(live, algorithm):
    """Through the run loop: successive halving (promotions continue trials on the prefix
    fidelities) and random search (every query at the last epoch). The clock's total is the
    last epoch reached plus one evaluation per evaluated trial; no trial has a negative
    duration; two runs of the same seed on one oracle object are one run."""
    config = RunConfig(algorithm, {}, oracle=live.name, budget=10)
    records, summary = run_one(config, live, 0)
    assert "failed" not in summary and summary["stopped"] is None
    new = ~records["repeat"]
    reached = int(records["fidelity"].max())
    assert reached == EPOCHS
    assert records["cum_cost"][-1] == pytest.approx(reached + new.sum() * live.eval_cost)
    assert np.all(records["finish"] - records["start"] >= 0)
    # the runner's epochs column (and --budget-kind epochs) pays what the oracle charged, not
    # each trial's fidelity: the same total as the clock
    assert records["epochs"].sum() == pytest.approx(records["cum_cost"][-1])
    if algorithm == "successive-halving":
        assert (records["fidelity"] < EPOCHS).any()
    else:   # pricing by fidelity charged every query its 3 epochs
        assert records["epochs"].sum() < EPOCHS * new.sum()
    again, _ = run_one(config, live, 0)
    for column in ("arch_id", "fidelity", "cost", "cum_cost", "start", "finish", "measured_s", "epochs"):
        assert np.array_equal(records[column], again[column]), column
    seconds = sum(h["cpu_seconds"] for h in live.log)
    assert np.nansum(records["measured_s"]) >= seconds


def test_an_epoch_budget_counts_the_epochs_the_oracle_charged(live):
    """--budget-kind epochs spends what the supernet charged: the first query trains the 3
    epochs and pays its evaluation, each later one its evaluation only, and queries are asked
    until 8 epochs are spent. Pricing by fidelity (3 epochs a query) would have stopped at 3."""
    budget, e = 8, live.eval_cost
    config = RunConfig("random", {}, oracle=live.name, budget=budget, budget_kind="epochs")
    records, summary = run_one(config, live, 0)
    assert "failed" not in summary
    paid = np.cumsum(records["epochs"])
    assert paid[-1] >= budget and paid[-2] < budget           # asked until the budget was spent
    np.testing.assert_allclose(paid, EPOCHS + e * np.arange(1, len(paid) + 1))
    assert len(paid) == int(np.ceil((budget - EPOCHS) / e)) > int(np.ceil(budget / EPOCHS))
