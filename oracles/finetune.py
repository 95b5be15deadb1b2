"""The §5.2 protocol of MLPNAS: fine-tune the best network a search found, then test it.

Minutoli & Ciranni ("Neural Architecture Search: An Overview", §5.2): "validation accuracy
refers to validation accuracy obtained after 10 epochs of training during architecture
generation, while test accuracy is obtained on a test set after 50 additional epochs of
fine-tuning since we did a full train only on the most promising architecture"; every
table sets it against "the test accuracy obtained from fitting a Scikit-learn's MLP
Classifier onto the same dataset".

:func:`finetune_mlp` does that for one architecture of a live MLP oracle
(:mod:`oracles.live`); :func:`mlp_classifier_reference` trains the reference over several
seeds and returns it as a reference result for the reports
(:func:`harness.summary.write_references`).

What the paper leaves open, and what is decided here:

* **Which weights are fine-tuned.** The network as the search trained it: the architecture
  trained with the oracle's recipe and its deterministic training seed
  (:func:`oracles.live.derived_seed` of the architecture and the oracle seed), which on the
  same machine and library versions is exactly the training the search was answered with
  (:func:`finetune_mlp` checks it against the store's row and records the check). The store
  keeps numbers, not weights, so the network is trained again; that is one more training
  of the recipe's length, not 50 epochs. A one-shot run (shared bigram weights) answered
  with a training that depended on the run's history, which no later process can rebuild:
  its best architecture is fine-tuned from its stand-alone training (the same one a plain
  run would have had; the fine-tuning's key does not depend on weight sharing).
* **How.** ``extra_epochs`` (50, §5.2) more epochs on the training split, with a fresh Adam
  optimiser at the recipe's learning rate (0.001, §5.1; the optimiser's moments from the
  first phase are not kept: the paper calls it fine-tuning and says nothing of the
  optimiser's state), the recipe's batch size (32), no early stopping (the paper counts
  "50 additional epochs"), dropout as in training. The validation accuracy after each epoch
  is recorded; the test split is evaluated once, at the end (it never chooses anything).
  The shuffling of the second phase draws from ``numpy.random.default_rng([seed, 1])``, the
  dropout masks continue torch's generator seeded by the first phase.
* **Caching.** The result is kept in the oracle's result store under the key
  ``(architecture identity, fine-tuning recipe digest, data digest, training seed)``: the
  same best network found by several runs or seeds is fine-tuned once.
"""

from __future__ import annotations

import math
import socket
import time
from typing import Any, Sequence

import numpy as np

from .errors import UserError
from .live import (LiveOracle, MLPTrainer, _evaluate, data_record, derived_seed, reference_mlp_classifier,
                   train_epoch, train_mlp)

#: §5.2: "50 additional epochs of fine-tuning"
FINETUNE_EPOCHS = 50
#: bumped whenever :func:`finetune_mlp` changes what a key computes
FINETUNE_VERSION = 1


class _Keep:
    """Stands in for a bigram bank (:func:`oracles.live.train_mlp`'s ``bank`` hook) to get
    the trained network back: it shares nothing (``load`` copies no weight and returns 0, so
    the training is the plain one) and keeps the network ``save`` is given."""

    def __init__(self):
        self.net = None

    def load(self, net, arch) -> int:
        return 0

    def save(self, net, arch) -> None:
        self.net = net


def finetune_record(trainer: MLPTrainer, extra_epochs: int) -> dict[str, Any]:
    """Everything that decides a fine-tuning's numbers besides architecture, data and seed."""
    return {"trainer": "oracles.finetune.finetune_mlp", "version": FINETUNE_VERSION,
            "first_phase": trainer.recipe_record(), "extra_epochs": int(extra_epochs),
            "optimizer": f"fresh adam(lr={trainer.recipe.lr}, betas=0.9,0.999)",
            "batch_size": trainer.recipe.batch_size, "early_stopping": "none",
            "shuffle": "numpy default_rng([seed, 1]) permutation per epoch",
            "test": "evaluated once, after the last epoch"}


def finetune_mlp(oracle: LiveOracle, arch, extra_epochs: int = FINETUNE_EPOCHS,
                 seed: int | None = None) -> dict[str, Any]:
    """Train ``arch`` as ``oracle`` trains it, then ``extra_epochs`` more epochs, and test it
    (module doc); the result is cached in the oracle's store.

    Parameters
    ----------
    oracle: a live MLP oracle (``live/mlp-...``, :func:`oracles.live.build_oracle`); its
        recipe, data, device, threads and store are used; a ``bigram_sharing`` oracle's bank
        is not (module doc).
    arch: the architecture (an :class:`~oracles.mlp_space.MLPSpace` architecture or its
        string, as a results folder's ``arch`` column holds it).
    extra_epochs: epochs of fine-tuning (default 50, Minutoli & Ciranni §5.2).
    seed: the training seed of the first phase; None (default): the oracle's deterministic
        seed for ``arch`` (a stochastic-mode oracle needs it given: its runs drew theirs).

    Returns the store's row: ``search_*`` (train/valid/test accuracy and loss after the
    first phase, ``search_epochs`` trained), ``train_acc`` ... ``test_loss`` after
    fine-tuning, ``valid_curve`` (validation accuracy after each fine-tuning epoch),
    ``reproduces_search`` (whether the first phase equals the store's stand-alone
    training of the same architecture, recipe, data and seed, which is the search's own
    training in a run without weight sharing: True/False, None where the store has none),
    ``train_cpu`` / ``train_time`` (both phases, seconds), ``seed``, ``arch``.
    """
    if not isinstance(oracle, LiveOracle) or oracle.trainer.kind != "mlp":
        raise UserError(f"fine-tuning needs a live MLP oracle (live/mlp-...), got {getattr(oracle, 'name', oracle)}")
    if int(extra_epochs) < 1:
        raise UserError(f"extra_epochs must be >= 1, got {extra_epochs}")
    space, trainer = oracle.space, oracle.trainer
    arch = space.parse(arch) if isinstance(arch, str) else space.validate(arch)
    ident = space.identity(arch)
    if seed is None:
        if oracle.mode != "deterministic":
            raise UserError(f"oracle {oracle.name} is stochastic: give the training seed of the network to fine-tune")
        seed = derived_seed(ident, oracle.seed)
    seed = int(seed)
    store = oracle.store
    spec = store.put_spec(finetune_record(trainer, extra_epochs))
    key = (ident, spec, oracle.data_digest, seed)

    def run() -> dict[str, Any]:
        from .collectors.train import configure_torch
        configure_torch(oracle.threads)
        t0, c0 = time.perf_counter(), time.process_time()
        keep = _Keep()
        first = train_mlp(arch, seed, trainer.recipe, trainer.data, trainer.device, bank=keep)
        searched = store.get((ident, oracle.recipe_digest, oracle.data_digest, seed))
        row: dict[str, Any] = {f"search_{k}": first[k] for k in ("train_acc", "train_loss", "valid_acc",
                                                                   "valid_loss", "test_acc", "test_loss")}
        row["search_epochs"] = first["epochs"]
        row["reproduces_search"] = None if searched is None else bool(
            searched["epochs"] == first["epochs"] and math.isclose(searched["valid_loss"], first["valid_loss"],
                                                                   rel_tol=1e-9, abs_tol=1e-12))
        row.update(_continue(keep.net, trainer, seed, int(extra_epochs)))
        row.update(train_time=time.perf_counter() - t0, train_cpu=time.process_time() - c0, seed=seed, arch=ident,
                   extra_epochs=int(extra_epochs), params=first["params"], device=trainer.device,
                   host=socket.gethostname(), finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        return row

    return store.compute(key, run)[0]


def _continue(net, trainer: MLPTrainer, seed: int, epochs: int) -> dict[str, Any]:
    """``epochs`` more epochs of ``net`` (module doc: fresh Adam, no early stopping)."""
    import torch
    data, recipe = trainer.data, trainer.recipe
    dev = next(net.parameters()).device
    opt = torch.optim.Adam(net.parameters(), lr=recipe.lr)
    x_train = torch.from_numpy(data.x_train).to(dev)
    y_train = torch.from_numpy(data.y_train).to(dev)
    n = len(y_train)
    shuffle = np.random.default_rng([seed % 2**63, 1])
    curve = []
    for _ in range(epochs):
        train_epoch(net, opt, x_train, y_train, shuffle.permutation(n), recipe.batch_size)
        net.eval()
        curve.append(_evaluate(net, data.x_valid, data.y_valid, recipe.eval_batch, dev)[0])
    out: dict[str, Any] = {"valid_curve": curve}
    net.eval()
    for part, x, y in (("train", data.x_train, data.y_train), ("valid", data.x_valid, data.y_valid),
                       ("test", data.x_test, data.y_test)):
        out[f"{part}_acc"], out[f"{part}_loss"] = _evaluate(net, x, y, recipe.eval_batch, dev)
    return out


def mlp_classifier_reference(oracle: LiveOracle, seeds: Sequence[int] = range(5),
                             name: str | None = None) -> dict[str, Any]:
    """scikit-learn's ``MLPClassifier`` with its defaults trained on ``oracle``'s split with
    each of ``seeds`` as ``random_state`` (:func:`oracles.live.reference_mlp_classifier`,
    kept in the oracle's store), as a reference result of the oracle named ``name``
    (default: the oracle's own name): a dict in :func:`harness.summary.reference_entry`'s
    form, its search and report values the validation and test accuracies, one per seed.
    Five seeds by default: the paper gives one number, the spread over seeds says how much
    one number can be trusted."""
    if not isinstance(oracle, LiveOracle) or oracle.trainer.kind != "mlp":
        raise UserError(f"the MLPClassifier reference needs a live MLP oracle, got {getattr(oracle, 'name', oracle)}")
    rows = [reference_mlp_classifier(oracle.trainer.data, seed=int(s), store=oracle.store.root) for s in seeds]
    data = data_record(oracle.trainer.data)
    return {"oracle": name or oracle.name, "name": "MLPClassifier (scikit-learn defaults)",
            "search": [r["valid_acc"] for r in rows], "report": [r["test_acc"] for r in rows],
            "provenance": {"code": "oracles.live.reference_mlp_classifier", "sklearn": rows[0].get("sklearn"),
                           "params": "defaults (one hidden layer of 100 ReLU units, Adam, up to 200 iterations)",
                           "random_state": [int(s) for s in seeds], "data": data,
                           "iterations": [r["epochs"] for r in rows],
                           "train_cpu_s": [r["train_cpu"] for r in rows]},
            "note": f"scikit-learn {rows[0].get('sklearn')} MLPClassifier(), defaults, trained on the same "
                    f"training split, random_state {', '.join(str(int(s)) for s in seeds)} (Minutoli & "
                    "Ciranni §5.2's reference)"}
