"""A finite space restricted to a subset of another finite space's architectures.

Collected tables can cover a uniform random subset of a space too big to train in full,
as LaNAS's LSTM-10K does (Wang et al., "Sample-Efficient Neural Architecture Search by
Learning Action Space", §4 and appendix 6.1: 10,000 cells
out of a larger space). The subset keeps its parent's representations (encoding, tokens,
strings) and enumerates the chosen architectures in increasing parent index order, so
row ``i`` of such a table is ``arch(i)``.

Random moves stay inside the subset: ``neighbours`` are the parent's neighbours that are
in the subset; ``mutate`` draws one of them, and when an architecture has none (sparse
subsets) it draws uniformly from the rest of the subset instead.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import InvalidArchitecture, UserError
from .space import FiniteSpace


class SubsetSpace(FiniteSpace):
    """``parent`` restricted to the architectures at ``indices`` (parent enumeration indices)."""

    def __init__(self, parent: FiniteSpace, indices: Sequence[int]):
        idx = np.unique(np.asarray(indices, dtype=np.int64))
        if len(idx) != len(indices):
            raise UserError("subset space: indices must be distinct")
        if len(idx) == 0 or idx[0] < 0 or idx[-1] >= parent.size:
            raise UserError(f"subset space: indices must be non-empty and in 0..{parent.size - 1}")
        self.parent = parent
        self.parent_indices = idx
        self.parent_indices.setflags(write=False)
        self.name = f"{parent.name}-subset"

    @property
    def size(self) -> int:
        return len(self.parent_indices)

    def arch(self, index: int):
        if not 0 <= int(index) < self.size:
            raise InvalidArchitecture(f"subset index {index} out of range 0..{self.size - 1}")
        return self.parent.arch(int(self.parent_indices[int(index)]))

    def _position(self, parent_index: int) -> int:
        pos = int(np.searchsorted(self.parent_indices, parent_index))
        if pos < self.size and self.parent_indices[pos] == parent_index:
            return pos
        return -1

    def index(self, arch) -> int:
        pos = self._position(self.parent.index(arch))
        if pos < 0:
            raise InvalidArchitecture(f"{self.parent.to_string(arch)} is not in this subset of "
                                      f"{self.parent.name}")
        return pos

    def contains(self, arch) -> bool:
        try:
            return self._position(self.parent.index(arch)) >= 0
        except InvalidArchitecture:
            return False

    def neighbours(self, arch):
        return [a for a in self.parent.neighbours(arch) if self.contains(a)]

    def mutate(self, arch, rng: np.random.Generator):
        nbrs = self.neighbours(arch)
        if nbrs:
            return nbrs[int(rng.integers(len(nbrs)))]
        if self.size < 2:
            raise UserError("subset space has a single architecture; nothing to mutate to")
        own = self.index(arch)
        j = int(rng.integers(self.size - 1))
        return self.arch(j + 1 if j >= own else j)

    def identity(self, arch) -> str:
        return self.parent.identity(arch)

    @property
    def encoding_size(self) -> int:
        return self.parent.encoding_size

    def encode(self, arch) -> np.ndarray:
        return self.parent.encode(arch)

    def _encode_all(self) -> np.ndarray:
        return np.asarray(self.parent.encode_all())[self.parent_indices]

    def _tokens_all(self) -> np.ndarray:
        return np.asarray(self.parent.tokens_all())[self.parent_indices]

    @property
    def decisions(self):
        return self.parent.decisions

    def tokens(self, arch):
        return self.parent.tokens(arch)

    def from_tokens(self, tokens):
        arch = self.parent.from_tokens(tokens)
        self.index(arch)
        return arch

    def to_string(self, arch) -> str:
        return self.parent.to_string(arch)

    def parse(self, text: str):
        arch = self.parent.parse(text)
        self.index(arch)
        return arch

    def describe(self):
        d = self.parent.describe()
        d.update(name=self.name, size=self.size, parent_size=self.parent.size)
        return d

    def __getattr__(self, item):
        # parent-specific helpers (e.g. ConvNetSpace.action_space) stay reachable
        if item.startswith("_") or item == "parent":
            raise AttributeError(item)
        return getattr(self.parent, item)
