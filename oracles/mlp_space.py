"""The MLPNAS space: multi-layer perceptrons sampled layer by layer.

Minutoli & Ciranni, "Neural Architecture Search: An Overview", §4 (the controller samples
layers from a vocabulary of "(n. of neurons, activation function)" pairs) and §5.1 (the
space): widths in {8, 16, 32, 64, 128, 256, 512}, activations in {sigmoid, tanh, ReLU,
ELU}, a dropout layer with rate 0.2, "maximum architecture length: 10 layers", the final
layer "decided depending on the given task" (a softmax over the classes). Its Tables 4-6
print networks of nine hidden layers plus the output layer, so the ten layers include the
output: up to :data:`MAX_HIDDEN` = 9 hidden layers.

An architecture is a tuple of hidden layers, first layer first; a layer is a ``(width,
activation)`` pair (a dense layer followed by that activation) or the string ``"dropout"``:
``((32, "elu"), "dropout", (512, "sigmoid"))``. The output layer is not part of it (it is
the task's); the string form prints it, as the paper's tables do::

    (32, 'elu'), dropout, (512, 'sigmoid'), (10, 'softmax')

Decisions the paper leaves open, decided here:

* At least one hidden layer, and the first hidden layer is dense (a network never starts
  with a dropout of its raw input); dropout layers may otherwise stand anywhere, repeated.
* The output layer is ``(num_classes, 'softmax')`` for every task here (all are
  multi-class); the space's ``num_classes`` only changes how strings print it.

Representations:

* ``tokens``: :data:`MAX_HIDDEN` positions, one layer each, over the controller's vocabulary
  of 30 (:data:`VOCAB`): 0 = end of the network, 1..28 = dense layers (width-major: ``1 + 4
  * width_index + activation_index``), 29 = dropout. Position 0 is always a dense layer, so
  its 28 choices are the dense layers alone (token ``t`` there is ``VOCAB[t + 1]``).
  Positions after the first end are padding: ``tokens`` writes 0 there and ``from_tokens``
  ignores them, so every in-range token sequence is a network (as in
  :class:`~oracles.convnet_space.ConvNetSpace`: controllers, tree searches and decoders never
  produce invalid ones).
* ``encode``: per position 7 numbers (is dense, is dropout, log2(width) / 9, one-hot
  activation), 63 in all; zeros past the depth.
* neighbours: replace one layer by another vocabulary entry, insert one layer anywhere
  (below 9 layers), or delete one layer (above 1), keeping the first layer dense;
  ``mutate`` draws uniformly among the distinct neighbours.
* ``sample``: uniform over the space (the interface's contract): depth ``L`` with
  probability proportional to the number of networks of that depth (28 * 29^(L-1)), so
  about 96.6 % of the draws have nine hidden layers. ``sampler="depth"`` draws the depth
  uniformly from 1..9 first, then each layer uniformly.

There are 29^9 - 1 = 14,507,145,975,868 networks (the sum over L = 1..9 of 28 * 29^(L-1)):
far too many to enumerate, so the space is not finite for the harness (``size`` is None)
and LaNAS samples it with its MCMC sampler.

:func:`build_mlp` builds the torch network, :func:`count_macs` and :func:`count_params` its
cost and size. :class:`MLPTableSpace` is the finite space of a table a live oracle exported
(:meth:`oracles.live.LiveOracle.export_table`; :func:`space_from_table`).
"""

from __future__ import annotations

import math
import re
from typing import Sequence

import numpy as np

from .errors import InvalidArchitecture, UserError
from .space import FiniteSpace, SearchSpace, check_tokens

#: §5.1's layer widths, activations and dropout rate
WIDTHS = (8, 16, 32, 64, 128, 256, 512)
ACTIVATIONS = ("sigmoid", "tanh", "relu", "elu")
DROPOUT = "dropout"
DROPOUT_RATE = 0.2
#: §5.1: "maximum architecture length: 10 layers", the output layer included
MAX_LAYERS = 10
MAX_HIDDEN = MAX_LAYERS - 1

#: the controller's vocabulary: index -> layer (0 = end of the network)
END = 0
VOCAB: tuple = (None,) + tuple((w, a) for w in WIDTHS for a in ACTIVATIONS) + (DROPOUT,)
TOKEN_OF = {layer: i for i, layer in enumerate(VOCAB) if layer is not None}
N_DENSE = len(WIDTHS) * len(ACTIVATIONS)
FEATURES = 3 + len(ACTIVATIONS)

Layer = "tuple[int, str] | str"
MLPArch = tuple

SAMPLERS = ("uniform", "depth")


def _count(depth: int) -> int:
    """Networks with ``depth`` hidden layers: a dense first layer, then any layer."""
    return N_DENSE * (N_DENSE + 1) ** (depth - 1)


class MLPSpace(SearchSpace):
    """MLPNAS's MLPs (module doc).

    Parameters
    ----------
    num_classes: width of the task's softmax output layer, printed by :meth:`to_string` and
        checked by :meth:`parse` (default 10: MNIST and digits).
    max_hidden: most hidden layers (default :data:`MAX_HIDDEN` = 9, §5.1's ten layers less
        the output); smaller values give smaller spaces for tests.
    sampler: ``"uniform"`` (default: uniform over the networks, the interface's contract) or
        ``"depth"`` (depth uniform in 1..max_hidden, then layers uniform).
    """

    name = "mlp"
    mutates_to_neighbours = True

    def __init__(self, num_classes: int = 10, max_hidden: int = MAX_HIDDEN, sampler: str = "uniform"):
        if int(num_classes) < 2:
            raise UserError(f"mlp space: num_classes must be >= 2, got {num_classes}")
        if not 1 <= int(max_hidden) <= MAX_HIDDEN:
            raise UserError(f"mlp space: max_hidden must be in 1..{MAX_HIDDEN}, got {max_hidden}")
        if sampler not in SAMPLERS:
            raise UserError(f"mlp space: sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
        self.num_classes = int(num_classes)
        self.max_hidden = int(max_hidden)
        self.sampler = sampler
        counts = np.array([_count(d) for d in range(1, self.max_hidden + 1)], dtype=np.float64)
        self._depth_p = counts / counts.sum()

    def params(self) -> dict:
        return {"num_classes": self.num_classes, "max_hidden": self.max_hidden, "sampler": self.sampler}

    @property
    def n_networks(self) -> int:
        """How many networks the space holds (exact; not enumerable)."""
        return sum(_count(d) for d in range(1, self.max_hidden + 1))

    # --- validity ------------------------------------------------------------------
    def validate(self, arch) -> MLPArch:
        """``arch`` as a canonical tuple, or :class:`InvalidArchitecture` saying why not."""
        if not isinstance(arch, (tuple, list)):
            raise InvalidArchitecture(f"an MLP is a tuple of layers, got {type(arch).__name__}")
        layers = []
        for layer in arch:
            if layer == DROPOUT:
                layers.append(DROPOUT)
                continue
            if not isinstance(layer, (tuple, list)) or len(layer) != 2:
                raise InvalidArchitecture(f"layer {layer!r} is neither (width, activation) nor 'dropout'")
            width, act = layer
            if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or int(width) not in WIDTHS:
                raise InvalidArchitecture(f"width {width!r} is not one of {list(WIDTHS)}")
            if not isinstance(act, str) or act.lower() not in ACTIVATIONS:
                raise InvalidArchitecture(f"activation {act!r} is not one of {list(ACTIVATIONS)}")
            layers.append((int(width), act.lower()))
        if not 1 <= len(layers) <= self.max_hidden:
            raise InvalidArchitecture(f"an MLP has 1..{self.max_hidden} hidden layers, got {len(layers)}")
        if layers[0] == DROPOUT:
            raise InvalidArchitecture("the first hidden layer must be dense, not dropout")
        return tuple(layers)

    # --- random moves --------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> MLPArch:
        if self.sampler == "uniform":
            depth = 1 + int(rng.choice(self.max_hidden, p=self._depth_p))
        else:
            depth = 1 + int(rng.integers(self.max_hidden))
        first = VOCAB[1 + int(rng.integers(N_DENSE))]
        rest = [VOCAB[1 + int(t)] for t in rng.integers(N_DENSE + 1, size=depth - 1)]
        return (first, *rest)

    def neighbours(self, arch) -> list[MLPArch]:
        arch = self.validate(arch)
        out: dict[MLPArch, None] = {}
        layers = VOCAB[1:]
        for i, old in enumerate(arch):           # replace one layer
            for new in layers:
                if new != old and not (i == 0 and new == DROPOUT):
                    out[arch[:i] + (new,) + arch[i + 1:]] = None
        if len(arch) < self.max_hidden:          # insert one layer
            for i in range(len(arch) + 1):
                for new in layers:
                    if not (i == 0 and new == DROPOUT):
                        out[arch[:i] + (new,) + arch[i:]] = None
        if len(arch) > 1:                        # delete one layer
            for i in range(len(arch)):
                cand = arch[:i] + arch[i + 1:]
                if cand[0] != DROPOUT:
                    out[cand] = None
        out.pop(arch, None)
        return list(out)

    def mutate(self, arch, rng: np.random.Generator) -> MLPArch:
        nbrs = self.neighbours(arch)
        return nbrs[int(rng.integers(len(nbrs)))]

    # --- representations -----------------------------------------------------------
    def identity(self, arch) -> str:
        return self.to_string(arch)

    def to_string(self, arch) -> str:
        arch = self.validate(arch)
        parts = [DROPOUT if layer == DROPOUT else f"({layer[0]}, '{layer[1]}')" for layer in arch]
        return ", ".join(parts + [f"({self.num_classes}, 'softmax')"])

    _LAYER = re.compile(r"\(\s*(\d+)\s*,\s*'?([A-Za-z]+)'?\s*\)|(dropout)", re.IGNORECASE)

    def parse(self, text: str) -> MLPArch:
        """A network in the paper's table form: layers ``(width, 'activation')`` or
        ``dropout`` separated by commas; the output layer ``(num_classes, 'softmax')`` at
        the end is optional (quotes optional, activations case-insensitive)."""
        if not isinstance(text, str):
            raise InvalidArchitecture(f"an MLP string is text, got {type(text).__name__}")
        rest = text.strip()
        layers: list = []
        pos = 0
        while True:
            m = self._LAYER.match(rest, pos)
            if m is None:
                raise InvalidArchitecture(f"cannot read an MLP layer at {rest[pos:pos + 30]!r} in {text!r}; "
                                          "write e.g. \"(32, 'elu'), dropout, (10, 'softmax')\"")
            if m.group(3):
                layers.append(DROPOUT)
            else:
                layers.append((int(m.group(1)), m.group(2).lower()))
            pos = m.end()
            sep = re.compile(r"\s*,\s*").match(rest, pos)
            if pos == len(rest):
                break
            if sep is None or sep.end() == len(rest):
                raise InvalidArchitecture(f"unexpected {rest[pos:pos + 30]!r} in MLP string {text!r}")
            pos = sep.end()
        if layers and layers[-1] != DROPOUT and layers[-1][1] == "softmax":
            if layers[-1][0] != self.num_classes:
                raise InvalidArchitecture(f"output layer {layers[-1]} does not match the task's "
                                          f"{self.num_classes} classes")
            layers.pop()
        return self.validate(tuple(layers))

    @property
    def encoding_size(self) -> int:
        return FEATURES * self.max_hidden

    def encode(self, arch) -> np.ndarray:
        arch = self.validate(arch)
        x = np.zeros((self.max_hidden, FEATURES), dtype=np.float64)
        for i, layer in enumerate(arch):
            if layer == DROPOUT:
                x[i, 1] = 1.0
            else:
                x[i, 0] = 1.0
                x[i, 2] = math.log2(layer[0]) / 9.0
                x[i, 3 + ACTIVATIONS.index(layer[1])] = 1.0
        return x.reshape(-1)

    @property
    def decisions(self) -> tuple[int, ...]:
        return (N_DENSE,) + (len(VOCAB),) * (self.max_hidden - 1)

    def tokens(self, arch) -> tuple[int, ...]:
        arch = self.validate(arch)
        t = [TOKEN_OF[layer] for layer in arch]
        t[0] -= 1   # position 0 chooses among the dense layers only
        return tuple(t) + (END,) * (self.max_hidden - len(arch))

    def from_tokens(self, tokens: Sequence[int]) -> MLPArch:
        t = check_tokens(tokens, self.decisions)
        layers = [VOCAB[t[0] + 1]]
        for x in t[1:]:
            if x == END:
                break   # what follows is padding
            layers.append(VOCAB[x])
        return self.validate(tuple(layers))

    def describe(self) -> dict:
        d = super().describe()
        d.update(self.params(), networks=self.n_networks)
        return d


# --- networks ------------------------------------------------------------------------------
def count_params(arch: MLPArch, in_features: int, num_classes: int) -> int:
    """Trainable weights and biases of ``arch`` on ``in_features`` inputs."""
    total, width = 0, int(in_features)
    for layer in arch:
        if layer != DROPOUT:
            total += width * layer[0] + layer[0]
            width = layer[0]
    return total + width * num_classes + num_classes


def count_macs(arch: MLPArch, in_features: int, num_classes: int) -> int:
    """Multiply-accumulates of one forward pass on one sample."""
    total, width = 0, int(in_features)
    for layer in arch:
        if layer != DROPOUT:
            total += width * layer[0]
            width = layer[0]
    return total + width * num_classes


def build_mlp(arch: MLPArch, in_features: int, num_classes: int):
    """The torch network: flatten, then per layer Linear + activation or Dropout(0.2), then
    Linear(num_classes) giving logits (the softmax is in the cross-entropy loss)."""
    import torch.nn as nn
    acts = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}
    mods: list = [nn.Flatten()]
    width = int(in_features)
    for layer in arch:
        if layer == DROPOUT:
            mods.append(nn.Dropout(DROPOUT_RATE))
        else:
            mods += [nn.Linear(width, layer[0]), acts[layer[1]]()]
            width = layer[0]
    mods.append(nn.Linear(width, num_classes))
    return nn.Sequential(*mods)


# --- tables grown from a live oracle -------------------------------------------------------
class MLPTableSpace(FiniteSpace):
    """The networks of a table exported from a live MLP oracle (:mod:`oracles.live`), in the
    table's row order: a finite space with the MLP space's representations.

    ``parent`` is the :class:`MLPSpace` the networks come from, ``archs`` the networks (any
    form :meth:`MLPSpace.validate` accepts), distinct. Random moves stay inside: ``neighbours``
    are the parent's neighbours that are rows; ``mutate`` draws one of them, and when a network
    has none (a sparse table) draws uniformly from the other rows instead, as
    :class:`~oracles.subset_space.SubsetSpace` does.
    """

    name = "mlp-table"

    def __init__(self, parent: MLPSpace, archs: Sequence):
        self.parent = parent
        self._archs = [parent.validate(a) for a in archs]
        self._index = {a: i for i, a in enumerate(self._archs)}
        if len(self._index) != len(self._archs):
            raise UserError("mlp table space: the networks must be distinct")
        if not self._archs:
            raise UserError("mlp table space: no networks")

    @property
    def size(self) -> int:
        return len(self._archs)

    def arch(self, index: int) -> MLPArch:
        if not 0 <= int(index) < self.size:
            raise InvalidArchitecture(f"index {index} out of range 0..{self.size - 1}")
        return self._archs[int(index)]

    def index(self, arch) -> int:
        try:
            return self._index[self.parent.validate(arch)]
        except KeyError:
            raise InvalidArchitecture(f"{self.parent.to_string(arch)} is not a row of this table") from None

    def contains(self, arch) -> bool:
        try:
            return self.parent.validate(arch) in self._index
        except InvalidArchitecture:
            return False

    def neighbours(self, arch) -> list[MLPArch]:
        self.index(arch)
        return [a for a in self.parent.neighbours(arch) if a in self._index]

    def mutate(self, arch, rng: np.random.Generator) -> MLPArch:
        nbrs = self.neighbours(arch)
        if nbrs:
            return nbrs[int(rng.integers(len(nbrs)))]
        if self.size < 2:
            raise UserError("mlp table space has a single network; nothing to mutate to")
        own = self.index(arch)
        j = int(rng.integers(self.size - 1))
        return self.arch(j + 1 if j >= own else j)

    def identity(self, arch) -> str:
        return self.parent.identity(arch)

    def to_string(self, arch) -> str:
        return self.parent.to_string(arch)

    def parse(self, text: str) -> MLPArch:
        arch = self.parent.parse(text)
        self.index(arch)
        return arch

    @property
    def encoding_size(self) -> int:
        return self.parent.encoding_size

    def encode(self, arch) -> np.ndarray:
        return self.parent.encode(arch)

    @property
    def decisions(self) -> tuple[int, ...]:
        return self.parent.decisions

    def tokens(self, arch) -> tuple[int, ...]:
        return self.parent.tokens(arch)

    def from_tokens(self, tokens: Sequence[int]) -> MLPArch:
        arch = self.parent.from_tokens(tokens)
        self.index(arch)
        return arch

    def describe(self) -> dict:
        d = self.parent.describe()
        d.update(name=self.name, size=self.size)
        return d


def space_from_table(table) -> MLPTableSpace:
    """The space of a table whose ``meta.space.kind`` is ``"mlp"`` (rows: MLP strings)."""
    from .errors import CorruptData
    meta = table.meta.get("space", {})
    try:
        parent = MLPSpace(num_classes=meta["num_classes"], max_hidden=meta.get("max_hidden", MAX_HIDDEN),
                          sampler=meta.get("sampler", "uniform"))
        return MLPTableSpace(parent, [parent.parse(str(a)) for a in table.archs])
    except (KeyError, InvalidArchitecture) as exc:
        raise CorruptData(f"table {table.name}: not an MLP table ({exc})") from None


# --- one-shot: bigram weight sharing (Minutoli & Ciranni, §4.1) ------------------------------
#: the feature a live oracle declares when the networks of a run share bigram weights
#: (MLPNAS's one-shot option requires it of the run's oracle)
BIGRAM_SHARING = "bigram-weight-sharing"


def bigram_keys(arch: Sequence) -> list[tuple]:
    """The keys of an MLP's weight matrices under §4.1's bigram sharing, one per dense layer
    of :func:`oracles.mlp_space.build_mlp`'s network (hidden layers first, then the output):
    ``(previous dense layer, this layer)`` with ``"input"`` before the first and ``"output"``
    for the output layer. A layer is its ``(width, activation)`` pair; dropout layers have no
    weights and do not change which layers a matrix connects, so they are skipped. Two
    networks share a matrix exactly when they share its key (its shape follows from the key,
    the output's from the task)."""
    keys, prev = [], "input"
    for layer in arch:
        if isinstance(layer, str):
            continue                                  # dropout
        cur = (int(layer[0]), str(layer[1]))
        keys.append((prev, cur))
        prev = cur
    keys.append((prev, "output"))
    return keys
