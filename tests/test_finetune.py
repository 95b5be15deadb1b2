"""§5.2's fine-tuning of the best network (oracles/finetune.py) on a tiny live MLP oracle:
the first phase is the search's own training, the second trains on, the result is kept in
the store once, and the MLPClassifier reference comes out as a reference result."""

from types import SimpleNamespace

import pytest
from optional import require_module

require_module("torch")
require_module("sklearn")

from harness.summary import reference_entry  # noqa: E402
from oracles.errors import UserError  # noqa: E402
from oracles.finetune import finetune_mlp, mlp_classifier_reference  # noqa: E402
from oracles.live import build_oracle, reference_mlp_classifier  # noqa: E402

ARCH = "(16, 'relu'), (3, 'softmax')"


@pytest.fixture
def oracle(tmp_path):
    return build_oracle("live/mlp-wine", {"store": str(tmp_path)})


def test_first_phase_is_the_search_training_and_the_result_is_stored_once(oracle, tmp_path):
    searched = oracle.query(oracle.space.parse(ARCH))
    row = finetune_mlp(oracle, ARCH, extra_epochs=3)
    assert row["reproduces_search"] is True
    assert row["search_valid_acc"] == pytest.approx(searched.observation.value, abs=1e-12)
    assert row["search_test_acc"] == pytest.approx(searched.report, abs=1e-12)
    assert len(row["valid_curve"]) == 3 and row["valid_acc"] == pytest.approx(row["valid_curve"][-1], abs=1e-12)
    assert row["train_loss"] < row["search_train_loss"]        # it did train on
    n = len(oracle.store.rows())
    assert finetune_mlp(oracle, oracle.space.parse(ARCH), extra_epochs=3) == row
    # the one-shot oracle's network is fine-tuned from its stand-alone training: the same row
    shared = build_oracle("live/mlp-wine", {"store": str(tmp_path), "bigram_sharing": "true"})
    assert finetune_mlp(shared, ARCH, extra_epochs=3) == row
    assert len(oracle.store.rows()) == n
    longer = finetune_mlp(oracle, ARCH, extra_epochs=4)        # another recipe: another key
    assert len(longer["valid_curve"]) == 4 and len(oracle.store.rows()) == n + 1


def test_without_a_search_row_there_is_nothing_to_compare(oracle):
    row = finetune_mlp(oracle, ARCH, extra_epochs=1)
    assert row["reproduces_search"] is None


def test_refuses_what_it_cannot_fine_tune(oracle, tmp_path):
    with pytest.raises(UserError, match="live MLP oracle"):
        finetune_mlp(SimpleNamespace(name="nb201/cifar10"), ARCH)
    with pytest.raises(UserError, match="extra_epochs"):
        finetune_mlp(oracle, ARCH, extra_epochs=0)
    sto = build_oracle("live/mlp-wine", {"store": str(tmp_path), "mode": "stochastic"})
    with pytest.raises(UserError, match="give the training seed"):
        finetune_mlp(sto, ARCH, extra_epochs=1)
    assert finetune_mlp(sto, ARCH, extra_epochs=1, seed=7)["seed"] == 7


def test_mlp_classifier_reference_is_a_reference_result(oracle):
    ref = mlp_classifier_reference(oracle, seeds=[0, 1], name="live/mlp-wine:bigram_sharing=true")
    entry = reference_entry(**{k: ref[k] for k in ("oracle", "name", "search", "report", "provenance", "note")})
    assert entry["oracle"] == "live/mlp-wine:bigram_sharing=true" and len(entry["search"]) == 2
    direct = reference_mlp_classifier(oracle.trainer.data, seed=1, store=oracle.store.root)
    assert entry["search"][1] == direct["valid_acc"] and entry["report"][1] == direct["test_acc"]
    assert ref["provenance"]["random_state"] == [0, 1] and ref["provenance"]["data"]["dataset"] == "wine"
