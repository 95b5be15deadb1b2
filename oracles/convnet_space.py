"""Plain VGG-style ConvNets: LaNAS's motivating space (§2) and ConvNet-60K (appendix 6.1).

Wang et al., "Sample-Efficient Neural Architecture Search by Learning Action Space"
(LaNAS; see docs/bibliography.md):

* §2: a plain CNN of Conv-ReLU layers with depth ``L in {1..5}``, filter channels
  ``C in {32, 64}`` and kernel size ``K in {3x3, 5x5}`` per layer: 1,364 networks.
  Preset ``lanas-s2``.
* appendix 6.1, ConvNet-60K: ``D in {1..8}``, ``C in {32, 64, 96}``, ``K in {3, 5}``.
  Depth up to 8 gives 2,015,538 networks, which does not match the paper's name; depth up to
  6 gives 55,986 ~ 60K, the count the name and §4 ("60,000 plain VGG-style ConvNets")
  quote. Preset ``convnet60k`` therefore uses ``max_depth=6``; ``convnet60k-d8`` is the
  literal appendix reading.
* ``digits``: the §2 depths and kernels with channels scaled down to ``C in {8, 16}``
  (1,364 networks), so that a network trains on 8x8 digits in about a second on one CPU
  core; the shipped ``convnet-digits`` table uses it.

An architecture is a tuple of layers, each a ``(kernel, channels)`` pair, first layer
first: ``((3, 32), (5, 64))``. Its string form is one ``KxC`` token per layer joined by
``-``: ``3x32-5x64``. Every layer is Conv(K, C, stride 1, same padding) + ReLU; the network
ends with global average pooling and a linear classifier (see
:mod:`oracles.collectors.train`).

Enumeration order (= row order of collected tables): by depth, then lexicographically by
layer, first layer most significant; a layer's option number is
``kernel_index * len(channels) + channel_index``.

Representations:

* ``encode``: LaNAS's attribute vector ``[L, C_1, K_1, ..., C_max, K_max]`` (raw depth,
  channel counts and kernel sizes; zeros for absent layers), length ``1 + 2 * max_depth``.
* ``tokens``: ``(depth_index, k_1, c_1, ..., k_max, c_max)`` with ``k_l``/``c_l`` indices into
  ``kernels``/``channels``. Positions past the depth are padding: ``tokens`` writes 0 there
  and ``from_tokens`` ignores them, so every in-range token sequence is a valid network
  (controllers and decoders never produce invalid ones).
* neighbours: change one layer's kernel or channels, remove one layer, or insert one
  layer (any option, any position) within the depth bounds; ``mutate`` draws uniformly
  from the distinct neighbours.

MCTS action spaces (§2), for tree searches that build a network decision by decision::

    acts = space.action_space("sequential")   # or "global"
    prefix = []
    while not acts.is_complete(prefix):
        prefix.append(rng.choice(acts.legal(prefix)))
    arch = acts.to_arch(prefix)
    assert acts.decisions(arch) == tuple(prefix)

``legal(prefix)`` gives the legal next actions (a tuple of ints) after a partial decision
list, ``is_complete(prefix)`` says whether the list is a whole network, ``to_arch``
converts a complete list, ``decisions(arch)`` is its inverse, ``step_kind(prefix)`` names
the next decision (``"layer"``, ``"kernel"``, ``"channels"``, ``"depth"``) and
``max_length`` bounds the list's length. The actions are:

* ``sequential`` -- "adding a layer l, setting kernel size K_l, setting filter channel C_l",
  repeated: at a ``"layer"`` step the actions are 1 (add a layer; legal while depth <
  max) and 0 (stop; legal once depth >= min); then the kernel size (e.g. 3 or 5), then the
  channel count. A list is complete after a stop, or after the channels of the
  ``max_depth``-th layer.
* ``global`` -- "setting network depth L, setting kernel size K_1..L, setting filter channel
  C_1..L": first the depth, then L kernel sizes, then L channel counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .errors import InvalidArchitecture, UserError
from .space import FiniteSpace, check_tokens

Layer = tuple[int, int]          # (kernel, channels)
ConvArch = tuple[Layer, ...]

#: preset name -> (min_depth, max_depth, channels, kernels)
PRESETS: dict[str, dict] = {
    "lanas-s2": {"min_depth": 1, "max_depth": 5, "channels": (32, 64), "kernels": (3, 5)},
    "convnet60k": {"min_depth": 1, "max_depth": 6, "channels": (32, 64, 96), "kernels": (3, 5)},
    "convnet60k-d8": {"min_depth": 1, "max_depth": 8, "channels": (32, 64, 96), "kernels": (3, 5)},
    "digits": {"min_depth": 1, "max_depth": 5, "channels": (8, 16), "kernels": (3, 5)},
}


class ConvNetSpace(FiniteSpace):
    """Every plain ConvNet with ``min_depth..max_depth`` Conv-ReLU layers.

    Parameters
    ----------
    channels: filter-channel choices per layer (LaNAS §2: 32, 64).
    kernels: kernel-size choices per layer (LaNAS §2: 3, 5); odd sizes (same padding).
    max_depth: deepest network (LaNAS §2: 5; appendix 6.1: 8, see module docstring).
    min_depth: shallowest network (LaNAS: 1).
    preset: the preset name this space was built from, for ``describe()`` only.
    """

    name = "convnet"

    def __init__(self, channels: Sequence[int] = (32, 64), kernels: Sequence[int] = (3, 5),
                 max_depth: int = 5, min_depth: int = 1, preset: str | None = None):
        self.channels = tuple(int(c) for c in channels)
        self.kernels = tuple(int(k) for k in kernels)
        self.min_depth, self.max_depth = int(min_depth), int(max_depth)
        if not self.channels or not self.kernels:
            raise UserError("convnet space needs at least one channel and one kernel choice")
        if len(set(self.channels)) != len(self.channels) or len(set(self.kernels)) != len(self.kernels):
            raise UserError("convnet space: channel and kernel choices must be distinct")
        if any(c < 1 for c in self.channels) or any(k < 1 or k % 2 == 0 for k in self.kernels):
            raise UserError("convnet space: channels must be >= 1 and kernels odd and >= 1")
        if not 1 <= self.min_depth <= self.max_depth:
            raise UserError(f"convnet space: need 1 <= min_depth <= max_depth, got "
                            f"{self.min_depth}..{self.max_depth}")
        self.preset = preset
        self._k_index = {k: i for i, k in enumerate(self.kernels)}
        self._c_index = {c: i for i, c in enumerate(self.channels)}
        self.n_options = len(self.kernels) * len(self.channels)
        counts = [self.n_options ** d for d in range(self.min_depth, self.max_depth + 1)]
        #: _offset[j] = index of the first network of depth min_depth + j
        self._offset = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self._size = int(self._offset[-1])

    @classmethod
    def from_preset(cls, preset: str) -> "ConvNetSpace":
        if preset not in PRESETS:
            raise UserError(f"unknown convnet preset {preset!r}; choose from {', '.join(PRESETS)}")
        return cls(preset=preset, **PRESETS[preset])

    def params(self) -> dict:
        """The constructor arguments (what a table's ``meta.space`` records)."""
        return {"channels": list(self.channels), "kernels": list(self.kernels),
                "max_depth": self.max_depth, "min_depth": self.min_depth}

    # --- enumeration -------------------------------------------------------------
    @property
    def size(self) -> int:
        return self._size

    def _layer(self, option: int) -> Layer:
        ki, ci = divmod(int(option), len(self.channels))
        return (self.kernels[ki], self.channels[ci])

    def _option(self, layer) -> int:
        try:
            k, c = layer
            return self._k_index[int(k)] * len(self.channels) + self._c_index[int(c)]
        except (KeyError, TypeError, ValueError):
            raise InvalidArchitecture(
                f"layer {layer!r} is not in the space (kernels {self.kernels}, channels "
                f"{self.channels})") from None

    def arch(self, index: int) -> ConvArch:
        i = int(index)
        if not 0 <= i < self._size:
            raise InvalidArchitecture(f"convnet index {i} out of range 0..{self._size - 1}")
        j = int(np.searchsorted(self._offset, i, side="right")) - 1
        depth, rest = self.min_depth + j, i - int(self._offset[j])
        options = []
        for _ in range(depth):
            rest, o = divmod(rest, self.n_options)
            options.append(o)
        return tuple(self._layer(o) for o in reversed(options))

    def _check(self, arch) -> ConvArch:
        try:
            layers = tuple(arch)
        except TypeError:
            raise InvalidArchitecture(f"convnet architecture must be a tuple of layers, got {arch!r}") from None
        if not self.min_depth <= len(layers) <= self.max_depth:
            raise InvalidArchitecture(f"convnet depth {len(layers)} out of range "
                                      f"{self.min_depth}..{self.max_depth}")
        return layers

    def index(self, arch) -> int:
        layers = self._check(arch)
        code = 0
        for layer in layers:
            code = code * self.n_options + self._option(layer)
        return int(self._offset[len(layers) - self.min_depth]) + code

    def options_all(self) -> np.ndarray:
        """``(size, max_depth)`` int array: layer option numbers, -1 past each depth; cached."""
        cached = getattr(self, "_options_cache", None)
        if cached is None:
            cached = np.full((self._size, self.max_depth), -1, dtype=np.int64)
            for j, depth in enumerate(range(self.min_depth, self.max_depth + 1)):
                lo, hi = int(self._offset[j]), int(self._offset[j + 1])
                codes = np.arange(hi - lo, dtype=np.int64)
                place = self.n_options ** np.arange(depth - 1, -1, -1, dtype=np.int64)
                cached[lo:hi, :depth] = (codes[:, None] // place[None, :]) % self.n_options
            cached.setflags(write=False)
            self._options_cache = cached
        return cached

    # --- random moves ------------------------------------------------------------
    def neighbours(self, arch) -> list[ConvArch]:
        layers = self._check(arch)
        for layer in layers:
            self._option(layer)
        out: dict[ConvArch, None] = {}
        for pos, (k, c) in enumerate(layers):
            for k2 in self.kernels:
                if k2 != k:
                    out[layers[:pos] + ((k2, c),) + layers[pos + 1:]] = None
            for c2 in self.channels:
                if c2 != c:
                    out[layers[:pos] + ((k, c2),) + layers[pos + 1:]] = None
        if len(layers) > self.min_depth:
            for pos in range(len(layers)):
                out[layers[:pos] + layers[pos + 1:]] = None
        if len(layers) < self.max_depth:
            for pos in range(len(layers) + 1):
                for o in range(self.n_options):
                    out[layers[:pos] + (self._layer(o),) + layers[pos:]] = None
        out.pop(layers, None)  # inserting a copy of a neighbouring layer can recreate arch
        return list(out)

    def mutate(self, arch, rng: np.random.Generator) -> ConvArch:
        nbrs = self.neighbours(arch)
        return nbrs[int(rng.integers(len(nbrs)))]

    # --- representations ---------------------------------------------------------
    def identity(self, arch) -> str:
        return self.to_string(arch)

    @property
    def encoding_size(self) -> int:
        return 1 + 2 * self.max_depth

    def encode(self, arch) -> np.ndarray:
        layers = self._check(arch)
        v = np.zeros(self.encoding_size)
        v[0] = len(layers)
        for pos, layer in enumerate(layers):
            self._option(layer)
            k, c = layer
            v[1 + 2 * pos], v[2 + 2 * pos] = c, k
        return v

    def _encode_all(self) -> np.ndarray:
        opts = self.options_all()
        present = opts >= 0
        ki, ci = np.divmod(np.where(present, opts, 0), len(self.channels))
        out = np.zeros((self._size, self.encoding_size))
        out[:, 0] = present.sum(axis=1)
        out[:, 1::2] = np.where(present, np.asarray(self.channels)[ci], 0)
        out[:, 2::2] = np.where(present, np.asarray(self.kernels)[ki], 0)
        return out

    @property
    def decisions(self) -> tuple[int, ...]:
        return (self.max_depth - self.min_depth + 1,) + (len(self.kernels), len(self.channels)) * self.max_depth

    def tokens(self, arch) -> tuple[int, ...]:
        layers = self._check(arch)
        out = [len(layers) - self.min_depth]
        for layer in layers:
            ki, ci = divmod(self._option(layer), len(self.channels))
            out += [ki, ci]
        out += [0, 0] * (self.max_depth - len(layers))
        return tuple(out)

    def _tokens_all(self) -> np.ndarray:
        opts = self.options_all()
        present = opts >= 0
        ki, ci = np.divmod(np.where(present, opts, 0), len(self.channels))
        out = np.zeros((self._size, len(self.decisions)), dtype=np.int64)
        out[:, 0] = present.sum(axis=1) - self.min_depth
        out[:, 1::2] = ki
        out[:, 2::2] = ci
        return out

    def from_tokens(self, tokens) -> ConvArch:
        t = check_tokens(tokens, self.decisions)
        depth = self.min_depth + t[0]
        return tuple((self.kernels[t[1 + 2 * p]], self.channels[t[2 + 2 * p]]) for p in range(depth))

    def to_string(self, arch) -> str:
        layers = self._check(arch)
        for layer in layers:
            self._option(layer)
        return "-".join(f"{k}x{c}" for k, c in layers)

    def parse(self, text: str) -> ConvArch:
        if not isinstance(text, str) or not text.strip():
            raise InvalidArchitecture(f"convnet architecture must be a string like 3x32-5x64, got {text!r}")
        layers = []
        for part in text.strip().split("-"):
            k, sep, c = part.partition("x")
            # isascii: str.isdigit() accepts characters int() rejects, e.g. '²'
            if not sep or not (k + c).isascii() or not k.isdigit() or not c.isdigit():
                raise InvalidArchitecture(f"bad convnet string {text!r}: layer {part!r} must read "
                                          "KxC, e.g. 3x32 (kernel 3, 32 channels)")
            layers.append((int(k), int(c)))
        arch = self._check(tuple(layers))
        for layer in arch:
            self._option(layer)
        return arch

    def describe(self):
        d = super().describe()
        d.update(self.params())
        d["preset"] = self.preset
        return d

    # --- MCTS action spaces (LaNAS §2) -------------------------------------------
    def action_space(self, kind: str) -> "ActionSpace":
        """The §2 action space ``kind`` (``"sequential"`` or ``"global"``) over this space."""
        if kind == "sequential":
            return SequentialActions(self)
        if kind == "global":
            return GlobalActions(self)
        raise UserError(f"unknown convnet action space {kind!r}; choose sequential or global")


@dataclass(frozen=True)
class ActionSpace:
    """Decision-by-decision construction of a :class:`ConvNetSpace` network (see module doc)."""

    space: ConvNetSpace

    kind = "abstract"

    def legal(self, prefix: Sequence[int]) -> tuple[int, ...]:
        raise NotImplementedError

    def is_complete(self, prefix: Sequence[int]) -> bool:
        raise NotImplementedError

    def step_kind(self, prefix: Sequence[int]) -> str:
        raise NotImplementedError

    def to_arch(self, prefix: Sequence[int]) -> ConvArch:
        raise NotImplementedError

    def decisions(self, arch) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def max_length(self) -> int:
        raise NotImplementedError

    def _validate(self, prefix: Sequence[int]) -> None:
        for i in range(len(prefix)):
            if self.is_complete(prefix[:i]):
                raise InvalidArchitecture(f"{self.kind} decisions {list(prefix)} continue past a "
                                          "complete network")
            if int(prefix[i]) not in self.legal(prefix[:i]):
                raise InvalidArchitecture(f"{self.kind} decision {i} ({prefix[i]}) is not legal after "
                                          f"{list(prefix[:i])}; legal: {list(self.legal(prefix[:i]))}")


class SequentialActions(ActionSpace):
    """§2 ``sequential``: [add(1)/stop(0), K, C] per layer, until stop or max depth."""

    kind = "sequential"

    def _state(self, prefix):
        # (layers done, position inside the current layer's triple: 0 add/stop, 1 K, 2 C, stopped?)
        n = len(prefix)
        stopped = n > 0 and n % 3 == 1 and int(prefix[-1]) == 0
        return n // 3, n % 3, stopped

    def step_kind(self, prefix):
        return ("layer", "kernel", "channels")[len(prefix) % 3]

    def is_complete(self, prefix) -> bool:
        done, pos, stopped = self._state(prefix)
        return stopped or (pos == 0 and done == self.space.max_depth)

    def legal(self, prefix) -> tuple[int, ...]:
        s = self.space
        done, pos, stopped = self._state(prefix)
        if self.is_complete(prefix):
            return ()
        if pos == 0:
            acts = []
            if done >= s.min_depth:
                acts.append(0)
            if done < s.max_depth:
                acts.append(1)
            return tuple(acts)
        return s.kernels if pos == 1 else s.channels

    def to_arch(self, prefix) -> ConvArch:
        self._validate(prefix)
        if not self.is_complete(prefix):
            raise InvalidArchitecture(f"sequential decisions {list(prefix)} are not a complete network")
        p = [int(a) for a in prefix]
        return tuple((p[3 * i + 1], p[3 * i + 2]) for i in range(len(p) // 3))

    def decisions(self, arch) -> tuple[int, ...]:
        layers = self.space._check(arch)
        out = []
        for k, c in layers:
            self.space._option((k, c))
            out += [1, k, c]
        if len(layers) < self.space.max_depth:
            out.append(0)
        return tuple(out)

    @property
    def max_length(self) -> int:
        return 3 * self.space.max_depth + 1


class GlobalActions(ActionSpace):
    """§2 ``global``: [L, K_1..K_L, C_1..C_L]."""

    kind = "global"

    def step_kind(self, prefix):
        if not prefix:
            return "depth"
        return "kernel" if len(prefix) <= int(prefix[0]) else "channels"

    def is_complete(self, prefix) -> bool:
        return len(prefix) > 0 and len(prefix) == 1 + 2 * int(prefix[0])

    def legal(self, prefix) -> tuple[int, ...]:
        s = self.space
        if not prefix:
            return tuple(range(s.min_depth, s.max_depth + 1))
        if self.is_complete(prefix):
            return ()
        return s.kernels if len(prefix) <= int(prefix[0]) else s.channels

    def to_arch(self, prefix) -> ConvArch:
        self._validate(prefix)
        if not self.is_complete(prefix):
            raise InvalidArchitecture(f"global decisions {list(prefix)} are not a complete network")
        p = [int(a) for a in prefix]
        depth = p[0]
        return tuple(zip(p[1:1 + depth], p[1 + depth:]))

    def decisions(self, arch) -> tuple[int, ...]:
        layers = self.space._check(arch)
        for layer in layers:
            self.space._option(layer)
        return (len(layers),) + tuple(k for k, _ in layers) + tuple(c for _, c in layers)

    @property
    def max_length(self) -> int:
        return 1 + 2 * self.space.max_depth


def space_from_table(table) -> FiniteSpace:
    """The space whose enumeration is ``table``'s row order (``meta.space.kind == "convnet"``).

    A table of the whole space gets the :class:`ConvNetSpace` (its row order is checked on
    a spread of rows); a table of a random subset gets a :class:`~oracles.subset_space.SubsetSpace`.
    """
    from .errors import CorruptData
    from .subset_space import SubsetSpace
    meta = dict(table.meta.get("space", {}))
    try:
        space = ConvNetSpace(channels=meta["channels"], kernels=meta["kernels"], max_depth=meta["max_depth"],
                             min_depth=meta.get("min_depth", 1), preset=meta.get("preset"))
    except KeyError as exc:
        raise CorruptData(f"table {table.name}: meta.space lacks {exc}; re-collect it") from None
    archs = table.archs
    if len(archs) == space.size and not meta.get("subset"):
        for i in np.unique(np.linspace(0, space.size - 1, min(space.size, 64)).astype(np.int64)):
            if str(archs[i]) != space.to_string(space.arch(int(i))):
                raise CorruptData(f"table {table.name}: row {i} is {archs[i]}, expected "
                                  f"{space.to_string(space.arch(int(i)))}; the table is not in the "
                                  "convnet enumeration order")
        return space
    indices = np.array([space.index(space.parse(str(a))) for a in archs], dtype=np.int64)
    if len(indices) > 1 and not np.all(np.diff(indices) > 0):
        raise CorruptData(f"table {table.name}: subset rows are not in increasing space order")
    return SubsetSpace(space, indices)
