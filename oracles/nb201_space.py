"""The NAS-Bench-201 cell space (Dong & Yang, ICLR 2020): 6 edges x 5 operations.

A cell has 4 nodes; edge ``j<-i`` carries one of five operations. The official string
lists the edges node by node, ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``, i.e. in the order
1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2; an architecture here is the tuple of the six operation
indices in that order.

The official index order (row ``i`` of every NAS-Bench-201 / NATS-Bench file) is neither
lexicographic in the strings nor in the tuples, so it is not computed: the space is built
from the list of official strings that ships with the data (see ``from_strings``). Without
that list the space falls back to the product order of :data:`OPS` and says so in
``describe()``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import InvalidArchitecture
from .space import FiniteSpace, check_tokens

#: The five operations, in the order NAS-Bench-201's code lists them.
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: The six edges as (to_node, from_node), in string order.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
N_OPS = len(OPS)
N_EDGES = len(EDGES)
SIZE = N_OPS ** N_EDGES  # 15,625
_OP_INDEX = {op: i for i, op in enumerate(OPS)}
_PLACE = N_OPS ** np.arange(N_EDGES - 1, -1, -1)  # base-5 digit weights, edge 0 most significant


def arch_to_string(ops: Sequence[int]) -> str:
    o = [OPS[i] for i in ops]
    return f"|{o[0]}~0|+|{o[1]}~0|{o[2]}~1|+|{o[3]}~0|{o[4]}~1|{o[5]}~2|"


def string_to_arch(text: str) -> tuple[int, ...]:
    """Parse an official string; raise :class:`InvalidArchitecture` naming the problem."""
    if not isinstance(text, str):
        raise InvalidArchitecture(f"NB201 architecture must be a string, got {type(text).__name__}")
    nodes = text.strip().split("+")
    if len(nodes) != 3:
        raise InvalidArchitecture(
            f"bad NB201 string {text!r}: expected 3 nodes separated by '+', "
            "like |nor_conv_3x3~0|+|none~0|skip_connect~1|+|...~0|...~1|...~2|")
    ops: list[int] = []
    for node, part in enumerate(nodes, start=1):
        if len(part) < 2 or not (part.startswith("|") and part.endswith("|")):
            raise InvalidArchitecture(f"bad NB201 string {text!r}: node {node} must be enclosed in '|'")
        edges = part[1:-1].split("|")
        if len(edges) != node:
            raise InvalidArchitecture(
                f"bad NB201 string {text!r}: node {node} needs {node} inputs, got {len(edges)}")
        for src, edge in enumerate(edges):
            op, sep, frm = edge.partition("~")
            if not sep or frm != str(src):
                raise InvalidArchitecture(
                    f"bad NB201 string {text!r}: edge {edge!r} of node {node} must read 'op~{src}'")
            if op not in _OP_INDEX:
                raise InvalidArchitecture(
                    f"bad NB201 string {text!r}: unknown operation {op!r} (choose from {', '.join(OPS)})")
            ops.append(_OP_INDEX[op])
    return tuple(ops)


class NB201Space(FiniteSpace):
    """All 15,625 NAS-Bench-201 cells, enumerated in the official index order.

    Parameters
    ----------
    order:
        The official architecture strings, ``order[i]`` being architecture ``i``. ``None``
        uses the product order of :data:`OPS` (edge 1<-0 most significant); oracles always
        pass the order stored with their table.
    """

    name = "nb201"

    def __init__(self, order: Sequence[str] | None = None):
        if order is None:
            codes = np.arange(SIZE, dtype=np.int64)
            self.official_order = False
        else:
            if len(order) != SIZE:
                raise InvalidArchitecture(f"NB201 order must list {SIZE} architectures, got {len(order)}")
            codes = np.array([_code(string_to_arch(s)) for s in order], dtype=np.int64)
            if len(np.unique(codes)) != SIZE:
                raise InvalidArchitecture("NB201 order lists an architecture twice")
            self.official_order = True
        self._index_to_code = codes
        self._code_to_index = np.empty(SIZE, dtype=np.int64)
        self._code_to_index[codes] = np.arange(SIZE)
        # digits[i] = the op tuple of architecture i
        self._digits = (codes[:, None] // _PLACE[None, :]) % N_OPS
        self._digits.setflags(write=False)

    # --- enumeration -------------------------------------------------------------
    @property
    def size(self) -> int:
        return SIZE

    def arch(self, index: int) -> tuple[int, ...]:
        # tolist: Python ints in one call (a generator of int() costs 8x more; random search
        # asks one architecture per query)
        return tuple(self._digits[index].tolist())

    def index(self, arch: Sequence[int]) -> int:
        return int(self._code_to_index[_code(arch)])

    def indices(self, archs: Sequence[Sequence[int]]) -> np.ndarray:
        """Vectorised :meth:`index` for many architectures."""
        a = np.asarray(archs, dtype=np.int64).reshape(-1, N_EDGES)
        return self._code_to_index[a @ _PLACE]

    # --- random moves ------------------------------------------------------------
    def mutate(self, arch, rng):
        # NB201 paper / regularized evolution: pick one edge, give it a different operation.
        edge = int(rng.integers(N_EDGES))
        new = int(rng.integers(N_OPS - 1))
        if new >= arch[edge]:
            new += 1
        out = list(arch)
        out[edge] = new
        return tuple(out)

    def neighbours(self, arch):
        out = []
        for e in range(N_EDGES):
            for op in range(N_OPS):
                if op != arch[e]:
                    out.append(arch[:e] + (op,) + arch[e + 1:])
        return out

    # --- representations ---------------------------------------------------------
    def identity(self, arch) -> str:
        return arch_to_string(arch)

    @property
    def encoding_size(self) -> int:
        return N_EDGES * N_OPS

    def encode(self, arch) -> np.ndarray:
        v = np.zeros(N_EDGES * N_OPS)
        v[np.arange(N_EDGES) * N_OPS + np.asarray(arch)] = 1.0
        return v

    def _encode_all(self) -> np.ndarray:
        out = np.zeros((SIZE, N_EDGES * N_OPS))
        cols = np.arange(N_EDGES) * N_OPS + self._digits
        out[np.arange(SIZE)[:, None], cols] = 1.0
        return out

    def _tokens_all(self) -> np.ndarray:
        return self._digits

    @property
    def decisions(self) -> tuple[int, ...]:
        return (N_OPS,) * N_EDGES

    def tokens(self, arch) -> tuple[int, ...]:
        return tuple(arch)

    def from_tokens(self, tokens):
        return check_tokens(tokens, self.decisions)

    #: the string form is the identity (NB201's canonical ``|op~i|+...`` string): one method,
    #: so the runner computes it once per architecture (harness.runner's text_is_identity)
    to_string = identity

    def parse(self, text: str):
        return string_to_arch(text)

    def describe(self):
        d = super().describe()
        d["order"] = "official NB201 index" if self.official_order else "product of OPS (not official)"
        d["ops"] = list(OPS)
        return d


def _code(arch: Sequence[int]) -> int:
    if len(arch) != N_EDGES:
        raise InvalidArchitecture(f"NB201 architecture needs {N_EDGES} operations, got {len(arch)}")
    c = 0
    for op in arch:
        op = int(op)
        if not 0 <= op < N_OPS:
            raise InvalidArchitecture(f"NB201 operation index {op} out of range 0..{N_OPS - 1}")
        c = c * N_OPS + op
    return c
