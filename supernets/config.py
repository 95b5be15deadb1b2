"""What decides a supernet, without torch: the batch-norm setting of the cell operations, the
training configuration and its named presets.

Kept apart from :mod:`supernets.ops` and :mod:`supernets.training` so that the command line
(``nas-harness supernet --help``, ``nas-harness algorithms ...``) and checkpoint metadata read
them without importing torch, which costs seconds at every start. The recipe's sources are in
:mod:`supernets.training`'s module doc.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BNOptions:
    """Batch norm of the cell operations.

    Parameters
    ----------
    affine: learn a per-channel scale and shift after normalising.
    track_running_stats: keep running mean and variance and use them in evaluation mode;
        without them a BN layer normalises with the statistics of the batch it is given,
        in training and in evaluation alike.

    NB201's search runs use ``affine=False, track_running_stats=False`` in the cells (the
    default here, :data:`NB201_SEARCH_BN`): a sub-network's normalisation is then computed from
    the batch, so nothing accumulated over other paths leaks into it. Single-path methods
    that keep running statistics (SPOS, Guo et al. 2020, §3.3) recalibrate them per
    sub-network before evaluating it (:func:`supernets.training.recalibrate_bn`). Stand-alone
    training from scratch uses ``affine=True, track_running_stats=True``
    (:data:`STANDALONE_BN`), as NB201's table networks do. The skeleton's own batch norms
    (stem, residual blocks, the last BN before pooling) always have both, as in NB201.
    """

    affine: bool = False
    track_running_stats: bool = False

    def label(self) -> str:
        return f"affine={int(self.affine)},track={int(self.track_running_stats)}"

    @classmethod
    def parse(cls, text: str) -> "BNOptions":
        """``"affine=1,track=0"`` (the form :meth:`label` writes) or ``"nb201"`` / ``"full"``."""
        text = text.strip()
        if text in NAMED_BN:
            return NAMED_BN[text]
        values = {}
        for part in text.split(","):
            key, eq, val = part.partition("=")
            if not eq or key.strip() not in ("affine", "track") or val.strip() not in ("0", "1"):
                raise ValueError(f"bad batch-norm option {text!r}: write affine=0|1,track=0|1, "
                                 f"or one of {', '.join(sorted(NAMED_BN))}")
            values[key.strip()] = val.strip() == "1"
        return cls(values.get("affine", False), values.get("track", False))


NB201_SEARCH_BN = BNOptions(affine=False, track_running_stats=False)
STANDALONE_BN = BNOptions(affine=True, track_running_stats=True)
#: names the command line accepts for the two settings people compare
NAMED_BN = {"nb201": NB201_SEARCH_BN, "full": STANDALONE_BN}


MODES = ("single-path", "all-ops")
SPACES = ("nb201", "darts")


@dataclass(frozen=True)
class SupernetConfig:
    """Everything that decides a trained supernet besides the device.

    Parameters
    ----------
    space: the cell space, ``nb201`` or ``darts`` (:mod:`supernets.darts`, DARTS's search
        network: every operation, ``none`` included, on the 14 edges of both cells; paths are
        drawn without ``none``).
    dataset, split_seed: the data (:func:`supernets.data.load`); the supernet trains on
        ``supernet_train`` and is scored on ``search_valid``.
    C, N: NB201: width and cells per stage of the skeleton (NB201: 16, 5). DARTS: initial
        channels and the number of cells (DARTS's search network: 16, 8).
    bn_affine, bn_track: batch norm of the cell operations (:class:`supernets.ops.BNOptions`;
        NB201's search default: both off; DARTS's search network: no affine, running
        statistics on, which the ``darts`` presets set).
    mode: ``single-path`` or ``all-ops`` (module doc).
    epochs: passes over the training part; also the length of the cosine schedule.
    batch_size, lr, lr_min, momentum, weight_decay, grad_clip: the recipe (module doc).
    seed: seeds the initialisation, the shuffles and the paths.
    max_train: train on only the first ``max_train`` images of the training part (tests and
        quick looks); None: all of it.
    partial_channels: DARTS space only: PC-DARTS's K (Xu et al., "PC-DARTS: Partial Channel
        Connections for Memory-Efficient Architecture Search", ICLR 2020, §3.2): only ``C / K``
        channels of every edge go through its operation, the rest bypass it, then the channels
        are shuffled (:class:`supernets.darts.DartsSupernet`). Default 1: DARTS, every channel;
        PC-DARTS uses 4. ``C / K`` must be even. The value 1 is left out of :meth:`to_dict`,
        so the configurations (and checkpoints, names and oracle checksums) written before
        this field existed stay what they were.
    """

    space: str = "nb201"
    dataset: str = "digits"
    split_seed: int = 0
    C: int = 8
    N: int = 1
    bn_affine: bool = False
    bn_track: bool = False
    mode: str = "single-path"
    epochs: int = 50
    batch_size: int = 64
    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 5e-4
    grad_clip: float = 5.0
    seed: int = 0
    max_train: int | None = None
    partial_channels: int = 1

    def __post_init__(self):
        if self.space not in SPACES:
            raise ValueError(f"unknown supernet space {self.space!r}; choose from {', '.join(SPACES)}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.C < 1 or self.N < 1 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError("C, N, epochs and batch_size must be >= 1")
        if not (self.lr > 0 and 0 <= self.lr_min <= self.lr and self.momentum >= 0
                and self.weight_decay >= 0 and self.grad_clip > 0):
            raise ValueError("need lr > 0, 0 <= lr_min <= lr, momentum >= 0, weight_decay >= 0, grad_clip > 0")
        if self.max_train is not None and self.max_train < 1:
            raise ValueError("max_train must be >= 1 or None")
        k = self.partial_channels
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"partial_channels must be an integer >= 1, got {k!r}")
        if k > 1 and self.space != "darts":
            raise ValueError(f"partial channels (PC-DARTS) are for the darts space only, not {self.space}")
        if k > 1 and (self.C % k or (self.C // k) % 2):
            raise ValueError(f"partial_channels={k} must divide C={self.C} into even parts (C / K even)")

    @property
    def bn(self) -> BNOptions:
        return BNOptions(self.bn_affine, self.bn_track)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict; ``partial_channels`` only when it is not 1 (the field came
        after checkpoints whose stored configuration must still compare equal)."""
        d = dataclasses.asdict(self)
        if d["partial_channels"] == 1:
            del d["partial_channels"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SupernetConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


#: named scales of the skeleton and recipe, per space. NB201 ``cpu``: C=8, N=1 on digits, an
#: epoch in about a third of a second of one CPU core (docs/supernets.md has the measurement);
#: ``gpu``: NB201's own search skeleton, C=16, N=5. Epochs: NB201's RSPS/SPOS runs train 250
#: (ENAS, GDAS) or 100 epochs on CIFAR-10; on digits' 1,078 training images 50 epochs are 850
#: steps. DARTS ``gpu``: DARTS's search network (§3.1.1: C=16, 8 cells, 50 epochs); ``cpu``:
#: C=8 and 5 cells (reductions at cells 1 and 3), about 3 CPU-seconds an epoch on digits.
SPACE_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "nb201": {"cpu": {"C": 8, "N": 1, "epochs": 50},
              "gpu": {"C": 16, "N": 5, "epochs": 100}},
    "darts": {"cpu": {"C": 8, "N": 5, "epochs": 50, "bn_track": True},
              "gpu": {"C": 16, "N": 8, "epochs": 50, "bn_track": True}},
}
PRESETS = SPACE_PRESETS["nb201"]


def preset_config(preset: str, **overrides) -> SupernetConfig:
    """The preset's configuration (of ``overrides["space"]``, default ``nb201``) with
    ``overrides`` (None values ignored)."""
    space = overrides.get("space") or "nb201"
    if space not in SPACE_PRESETS:
        raise ValueError(f"unknown supernet space {space!r}; choose from {', '.join(SPACES)}")
    if preset not in SPACE_PRESETS[space]:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(SPACE_PRESETS[space])}")
    values = dict(SPACE_PRESETS[space][preset], space=space)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return SupernetConfig(**values)
