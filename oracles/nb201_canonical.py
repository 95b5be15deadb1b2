"""Canonical identities of NAS-Bench-201 cells: which of the 15,625 cells compute the same thing.

The rule (``rule="nb201"``, the default; 6,466 classes)
--------------------------------------------------------
This is the rule of Dong & Yang's own code (``CellStructure.to_unique_str(consider_zero=
True)`` in the NAS-Bench-201 / NATS-Bench API; "NAS-Bench-201: Extending the Scope of
Reproducible Neural Architecture Search", ICLR 2020), which is where the count of 6,466
"unique" cells quoted across the NB201 literature comes from. In words:

1. Each node is an expression of the cell input ``x`` (node 0).
2. Every edge into a node contributes one term:
   *zero* when its operation is ``none`` or when the node it leaves is itself zero;
   the source node's expression unchanged when its operation is ``skip_connect``;
   otherwise the operation wrapped around the source's expression, ``op(source)``.
3. A node is the unordered sum of its incoming terms.
4. Two cells are the same when their output expressions (node 3) are equal.

Three details of that code decide the count, and this module keeps them so that the count
is NB201's: (a) a zero term stays in its sum as a placeholder (node j always has j terms),
so a node is zero only when all of its terms are zero *and* it has one term: only node 1
can be zero; node 2 with two zero terms is ``0+0``, and an operation on it is a term of its
own. That is what the network computes with affine batch norm: ReLU-Conv-BN of an all-zero
tensor is BN's learned shift, a constant, not zero (average pooling and skip of zero are
zero, so the code's rule is conservative there). (b) A sum is written by sorting its terms'
strings, and a skip connection splices its source's string into the next sum. (c) Operations
are named only by their kind, not by the weights they carry (below).

Without the zero rule (``rule="nb201-nozero"``: ``none`` is an operation like any other,
``consider_zero=False`` in that code) there are 12,751 classes; an exact algebra
(``rule="algebraic"``: zero terms dropped, a node whose terms are all zero is zero whatever
their number, an operation on a zero node is zero, a skip of a sum is flattened into the
next sum) gives 4,930. Every ``nb201`` class lies inside one ``algebraic`` class.

What an expression does not see: weight sharing
-----------------------------------------------
A node reached from the output along two paths is one set of weights counted twice in the
expression. ``|nor_conv_1x1~0|+|none~0|skip_connect~1|+|none~0|skip_connect~1|skip_connect~2|``
(one 1x1 convolution, reached twice) has the output expression of
``|none~0|+|nor_conv_1x1~0|none~1|+|nor_conv_1x1~0|none~1|skip_connect~2|`` (two 1x1
convolutions), so they are one class although their parameter counts differ. Under the
``nb201`` rule 430 of the 6,466 classes (1,786 cells) mix such cells; every other class, and
every cell in which each live operation reaches the output along a single path, has one
parameter count (``tests/test_nb201_canonical.py``).

The representative of a class
-----------------------------
The **lowest operation tuple** in the class (:mod:`oracles.nb201_space` order: edges
1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2, the first most significant; operations in the order
``none < skip_connect < nor_conv_1x1 < nor_conv_3x3 < avg_pool_3x3``). Not the lowest
official index, for two reasons: it needs no list of official strings (it exists offline),
and because ``none`` is the lowest operation, the representative carries ``none`` on every
edge whose operation does not change the class (edges leaving a dead node 1, edges into a
node the output never reads), so the network trained for the class has no dead
convolutions that would add batch-norm shifts or parameters the expression does not show.
The ground-truth table trains the representative; a supernet is scored on the class by the
same representative's sub-network (the cell that was trained stand-alone), never by the
mean over the class's members. Classes are numbered in the order of their representatives,
so class 0 is the class of the all-``none`` cell.

Arrays are indexed by the product code of a cell (its tuple read as a base-5 number, the
enumeration of ``NB201Space()`` without an official order); pass ``space`` to get them in an
official space's index order.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from .nb201_space import EDGES, N_EDGES, N_OPS, OPS, SIZE

RULES = ("nb201", "nb201-nozero", "algebraic")
#: class counts of the rules, as Dong & Yang's code and this module's tests compute them
EXPECTED_CLASSES = {"nb201": 6466, "nb201-nozero": 12751, "algebraic": 4930}

_NONE, _SKIP = OPS.index("none"), OPS.index("skip_connect")
_ZERO = "#"


def _check_rule(rule: str) -> None:
    if rule not in RULES:
        raise ValueError(f"unknown canonicalisation rule {rule!r}; choose from {', '.join(RULES)}")


def expression(arch: Sequence[int], rule: str = "nb201") -> str:
    """The output expression of cell ``arch`` (six operation indices) under ``rule``.

    For ``nb201`` and ``nb201-nozero`` the string is exactly what Dong & Yang's
    ``to_unique_str`` returns (``0`` is the cell input, ``#`` a zero term,
    ``(e)@op`` an operation on ``e``, ``+`` a sum); ``algebraic`` returns its own form.
    """
    _check_rule(rule)
    arch = [int(a) for a in arch]
    if len(arch) != N_EDGES or not all(0 <= a < N_OPS for a in arch):
        raise ValueError(f"an NB201 cell is {N_EDGES} operation indices in 0..{N_OPS - 1}, got {arch}")
    if rule == "algebraic":
        return _algebraic(arch)
    zero_rule = rule == "nb201"
    nodes = ["0"]
    for j in (1, 2, 3):
        terms = []
        for e, (to, frm) in enumerate(EDGES):
            if to != j:
                continue
            op, src = arch[e], nodes[frm]
            if zero_rule and (op == _NONE or src == _ZERO):
                terms.append(_ZERO)
            elif op == _SKIP:
                terms.append(src)
            else:
                terms.append(f"({src})@{OPS[op]}")
        nodes.append("+".join(sorted(terms)))
    return nodes[3]


def _algebraic(arch: list[int]) -> str:
    # a node is None (zero) or a sorted tuple of terms; a term is (op name, node)
    nodes: list = [(("x",),)]
    for j in (1, 2, 3):
        terms: list = []
        for e, (to, frm) in enumerate(EDGES):
            if to != j or arch[e] == _NONE or nodes[frm] is None:
                continue
            if arch[e] == _SKIP:
                terms.extend(nodes[frm])
            else:
                terms.append((OPS[arch[e]], nodes[frm]))
        nodes.append(tuple(sorted(terms, key=repr)) if terms else None)
    return "0" if nodes[3] is None else repr(nodes[3])


def all_archs() -> np.ndarray:
    """The 15,625 cells' operation tuples in product-code order, shape ``(15625, 6)``."""
    place = N_OPS ** np.arange(N_EDGES - 1, -1, -1)
    return (np.arange(SIZE)[:, None] // place[None, :]) % N_OPS


@functools.lru_cache(maxsize=None)
def _classes(rule: str) -> tuple[np.ndarray, np.ndarray]:
    """(class id per product code, representative product code per class), read-only."""
    _check_rule(rule)
    strings = [expression(a, rule) for a in all_archs().tolist()]
    # first occurrence in product order = lowest tuple; classes numbered by representative
    _, first, inverse = np.unique(np.array(strings, dtype=object), return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    renumber = np.empty_like(order)
    renumber[order] = np.arange(len(order))
    class_of = renumber[inverse.reshape(-1)].astype(np.int64)
    reps = first[order].astype(np.int64)
    class_of.setflags(write=False)
    reps.setflags(write=False)
    return class_of, reps


def _codes(space) -> np.ndarray:
    """Product code of each index of ``space`` (identity without a space)."""
    if space is None:
        return np.arange(SIZE, dtype=np.int64)
    return np.asarray(space.indices(all_archs()), dtype=np.int64).argsort(kind="stable")


def num_classes(rule: str = "nb201") -> int:
    """How many classes ``rule`` makes of the 15,625 cells (:data:`EXPECTED_CLASSES`)."""
    return len(_classes(rule)[1])


def class_ids(rule: str = "nb201", space=None) -> np.ndarray:
    """Class id of every cell: ``out[i]`` for index ``i`` of ``space`` (product code without one).

    ``space``: an :class:`oracles.nb201_space.NB201Space`, whose index order (official when
    built from the official strings) the answer follows.
    """
    class_of, _ = _classes(rule)
    return class_of[_codes(space)]


def representatives(rule: str = "nb201", space=None) -> np.ndarray:
    """Per class, the index (in ``space``, else the product code) of its representative:
    the lowest operation tuple of the class (module doc)."""
    _, reps = _classes(rule)
    if space is None:
        return reps.copy()
    return np.asarray(space.indices(all_archs()[reps]), dtype=np.int64)


def representative_archs(rule: str = "nb201") -> np.ndarray:
    """Per class, the representative's six operation indices, shape ``(classes, 6)``."""
    return all_archs()[_classes(rule)[1]]


def class_of(arch: Sequence[int], rule: str = "nb201") -> int:
    """The class id of one cell (operation indices)."""
    code = 0
    for a in arch:
        code = code * N_OPS + int(a)
    return int(_classes(rule)[0][code])


def representative_of(arch: Sequence[int], rule: str = "nb201") -> tuple[int, ...]:
    """The representative of ``arch``'s class, as operation indices."""
    return tuple(int(v) for v in representative_archs(rule)[class_of(arch, rule)])


def class_sizes(rule: str = "nb201") -> np.ndarray:
    """Number of cells in each class."""
    return np.bincount(_classes(rule)[0], minlength=num_classes(rule))


__all__ = ["EXPECTED_CLASSES", "RULES", "all_archs", "class_ids", "class_of", "class_sizes", "expression",
           "num_classes", "representative_archs", "representative_of", "representatives"]
