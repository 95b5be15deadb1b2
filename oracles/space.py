"""The search-space interface every space implements.

An *architecture* is whatever immutable, hashable Python value the space chooses (a tuple
for NAS-Bench-201, a spec for NAS-Bench-101). Algorithms only manipulate architectures
through these methods, so an algorithm written once works on every space.

Representations a space offers, and who uses them:

* ``identity(arch)`` -- a string; two architectures are "the same" (de-duplication, the
  optimum set) exactly when their identities are equal.
* ``encode(arch)`` -- a fixed-length float vector (linear models, MLPs, LaNAS).
* ``tokens(arch)`` -- a fixed-length sequence of categorical decisions; ``decisions[i]``
  is the number of choices at position ``i`` (LSTM controllers, NAO, MCTS).
* ``to_string`` / ``parse`` -- the human form used on the command line and in records.

Finite spaces also enumerate: ``arch(i)`` / ``index(arch)`` map between architectures and
the space's fixed enumeration order (for a tabular benchmark this is the table's row
order), and ``encode_all()`` gives every encoding as one array for vectorised algorithms.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Hashable, Iterator, Sequence

import numpy as np

from .errors import InvalidArchitecture

Arch = Hashable


class SearchSpace(ABC):
    """A set of architectures with the operations search algorithms need."""

    #: short name, e.g. ``"nb201"``
    name: str = "space"

    # --- random moves -------------------------------------------------------------
    #: whether :meth:`mutate` draws among :meth:`neighbours` (False where the space follows
    #: its paper's mutation operator, which may change several decisions at once)
    mutates_to_neighbours: bool = True

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> Arch:
        """One architecture drawn uniformly at random (uniform over the space)."""

    @abstractmethod
    def mutate(self, arch: Arch, rng: np.random.Generator) -> Arch:
        """A random mutation of ``arch`` (never ``arch`` itself): one of :meth:`neighbours`,
        unless the space's own paper defines another operator (then
        :attr:`mutates_to_neighbours` is False and the class docstring gives the operator)."""

    @abstractmethod
    def neighbours(self, arch: Arch) -> list[Arch]:
        """Every architecture one mutation away from ``arch``."""

    # --- representations ----------------------------------------------------------
    @abstractmethod
    def identity(self, arch: Arch) -> str:
        """Canonical identity string: equal exactly for architectures that are the same."""

    @property
    @abstractmethod
    def encoding_size(self) -> int:
        """Length of :meth:`encode`'s vector."""

    @abstractmethod
    def encode(self, arch: Arch) -> np.ndarray:
        """Fixed-length float64 vector describing ``arch``."""

    @property
    @abstractmethod
    def decisions(self) -> tuple[int, ...]:
        """Number of choices at each token position."""

    @abstractmethod
    def tokens(self, arch: Arch) -> tuple[int, ...]:
        """``arch`` as categorical decisions, ``tokens[i] in range(decisions[i])``."""

    @abstractmethod
    def from_tokens(self, tokens: Sequence[int]) -> Arch:
        """Inverse of :meth:`tokens`; raises :class:`InvalidArchitecture` if invalid."""

    @abstractmethod
    def to_string(self, arch: Arch) -> str:
        """Human-readable form, accepted back by :meth:`parse`."""

    @abstractmethod
    def parse(self, text: str) -> Arch:
        """Architecture from its string form; raises :class:`InvalidArchitecture`."""

    # --- size ---------------------------------------------------------------------
    @property
    def size(self) -> int | None:
        """Number of architectures, or ``None`` when the space is not enumerable."""
        return None

    @property
    def is_finite(self) -> bool:
        return self.size is not None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "encoding_size": self.encoding_size,
                "decisions": list(self.decisions)}


class FiniteSpace(SearchSpace):
    """A space small enough to enumerate; architectures have a fixed index order."""

    @property
    @abstractmethod
    def size(self) -> int: ...

    @abstractmethod
    def arch(self, index: int) -> Arch:
        """Architecture at position ``index`` of the enumeration."""

    @abstractmethod
    def index(self, arch: Arch) -> int:
        """Position of ``arch`` in the enumeration (inverse of :meth:`arch`)."""

    def enumerate(self) -> Iterator[Arch]:
        for i in range(self.size):
            yield self.arch(i)

    def sample(self, rng: np.random.Generator) -> Arch:
        return self.arch(int(rng.integers(self.size)))

    def encode_all(self) -> np.ndarray:
        """``(size, encoding_size)`` array, row ``i`` = ``encode(arch(i))``; computed once."""
        return self._cached("_encode_all_cache", self._encode_all)

    def tokens_all(self) -> np.ndarray:
        """``(size, len(decisions))`` int array of every architecture's tokens; computed once."""
        return self._cached("_tokens_all_cache", self._tokens_all)

    def identities_all(self) -> np.ndarray:
        """Unicode array of every architecture's :meth:`identity`, in enumeration order."""
        return self._cached("_identities_all_cache", self._identities_all)

    # Subclasses vectorise these two; the loops here are the reference they must agree with.
    def _encode_all(self) -> np.ndarray:
        return np.stack([self.encode(self.arch(i)) for i in range(self.size)])

    def _tokens_all(self) -> np.ndarray:
        return np.array([self.tokens(self.arch(i)) for i in range(self.size)],
                        dtype=np.int64).reshape(self.size, len(self.decisions))

    def _identities_all(self) -> np.ndarray:
        return np.array([self.identity(self.arch(i)) for i in range(self.size)], dtype=str)

    def _cached(self, attr: str, compute) -> np.ndarray:
        arr = self.__dict__.get(attr)
        if arr is None:
            arr = np.asarray(compute())
            arr.setflags(write=False)  # shared by every caller: nobody may edit it in place
            setattr(self, attr, arr)
        return arr


def check_tokens(tokens: Sequence[int], decisions: Sequence[int]) -> tuple[int, ...]:
    """Validate a token sequence against ``decisions``; return it as a tuple of ints."""
    if len(tokens) != len(decisions):
        raise InvalidArchitecture(
            f"expected {len(decisions)} tokens, got {len(tokens)}")
    out = []
    for pos, (tok, n) in enumerate(zip(tokens, decisions)):
        t = int(tok)
        if not 0 <= t < n:
            raise InvalidArchitecture(f"token {pos} is {t}, must be in 0..{n - 1}")
        out.append(t)
    return tuple(out)
