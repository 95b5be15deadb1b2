"""The ask/tell surface every search algorithm implements (after Optuna's samplers).

The runner owns the loop; an algorithm owns only its own state::

    algo = RandomSearch()                # constructor stores configuration only
    algo.start(space, rng)               # fresh state for one run
    for _ in range(budget):
        arch = algo.ask()
        algo.tell(arch, observation)     # an Observation: search metric, cost, train acc.

Algorithms see the search space and :class:`~oracles.oracle.Observation` objects, never the
oracle, so they cannot read test metrics. Every source of randomness must come from the
``rng`` given to :meth:`start` (torch-based algorithms seed their generators from it), so
that a (configuration, seed) pair gives the same trajectory on any executor.

Hyper-parameters are keyword arguments of ``__init__`` whose defaults are the published
values (or, where a printed value does not reproduce the paper's own results, the value
that does, with the printed one kept as a named preset); :meth:`get_params` reads them back
for the run's metadata (as scikit-learn does).

Each algorithm also describes itself for ``nas-harness algorithms list|info``: ``summary``
(one line), ``paper`` (authors, title and the sections implemented; full references in
docs/bibliography.md), ``presets`` (named sets of parameter values, chosen with the
constructor's ``preset`` parameter) and ``extra`` (the optional dependency group it needs).
Parameter meanings come from the numpy-style "Parameters" section of the class docstring
(:func:`param_docs`), so the documentation users read and the one ``info`` prints are one.
"""

from __future__ import annotations

import inspect
import re
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from oracles.oracle import Observation
from oracles.space import Arch, SearchSpace


class SearchAlgorithm(ABC):
    #: name used on the command line and in results
    name: ClassVar[str] = ""
    #: True if the algorithm needs an enumerable space
    needs_finite_space: ClassVar[bool] = False
    #: one line for ``nas-harness algorithms list`` (default: the class docstring's first line)
    summary: ClassVar[str] = ""
    #: the paper behind the algorithm and its defaults: authors, title, sections
    paper: ClassVar[str] = ""
    #: named presets, preset name -> {parameter: value}; the constructor's ``preset``
    #: parameter picks one, and parameters given explicitly override it
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    #: optional dependency group (``pip install 'nas-harness[EXTRA]'``) the algorithm needs
    extra: ClassVar[str | None] = None

    # -- configuration ------------------------------------------------------------------
    @classmethod
    def param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    @classmethod
    def default_params(cls) -> dict[str, Any]:
        sig = inspect.signature(cls.__init__)
        return {n: sig.parameters[n].default for n in cls.param_names()}

    @classmethod
    def param_docs(cls) -> dict[str, str]:
        """Parameter name -> meaning, from the class docstring's "Parameters" section."""
        return param_docs(cls.__doc__ or "")

    @classmethod
    def one_line(cls) -> str:
        """:attr:`summary`, or the first line of the class docstring."""
        if cls.summary:
            return cls.summary
        doc = inspect.cleandoc(cls.__doc__ or "")
        return doc.split("\n\n")[0].replace("\n", " ").strip()

    def get_params(self) -> dict[str, Any]:
        return {n: getattr(self, n) for n in self.param_names()}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    # -- the search -----------------------------------------------------------------
    @abstractmethod
    def start(self, space: SearchSpace, rng: np.random.Generator) -> None:
        """Reset all state for a new run on ``space``; ``rng`` is the run's only randomness."""

    @abstractmethod
    def ask(self) -> Arch:
        """The next architecture to evaluate."""

    @abstractmethod
    def tell(self, arch: Arch, observation: Observation) -> None:
        """The result of evaluating ``arch`` (also called for repeats answered from cache)."""

    def diagnostics(self) -> dict[str, Any]:
        """Optional JSON-able facts about the finished run (stored in its metadata)."""
        return {}


_SECTION_RULE = re.compile(r"^-{3,}\s*$")
_ENTRY = re.compile(r"^(\w+(?:\s*,\s*\w+)*)\s*:(?!:)\s*(.*)$")


def param_docs(doc: str) -> dict[str, str]:
    """Parse a numpy-style "Parameters" section into {name: meaning}.

    Accepts ``name:`` (meaning on the indented lines below), ``name: meaning`` on one line,
    ``name : type`` (numpydoc; the type is kept as the first words of the meaning) and
    several names sharing one meaning (``a, b: ...``). The section ends at the next section
    heading or at a line back at the left margin that is not an entry.
    """
    lines = inspect.cleandoc(doc).splitlines()
    try:
        start = next(i for i in range(len(lines) - 1)
                     if lines[i].strip() == "Parameters" and _SECTION_RULE.match(lines[i + 1].strip()))
    except StopIteration:
        return {}
    base = len(lines[start]) - len(lines[start].lstrip())
    out: dict[str, list[str]] = {}
    current: list[str] = []
    for i in range(start + 2, len(lines)):
        line = lines[i]
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent <= base:
            if i + 1 < len(lines) and _SECTION_RULE.match(lines[i + 1].strip()):
                break           # the next section's heading
            m = _ENTRY.match(line.strip())
            if not m:
                break
            current = [m.group(2).strip()] if m.group(2).strip() else []
            for name in m.group(1).split(","):
                out[name.strip()] = current    # names sharing one meaning share the list
        elif current is not None:
            current.append(line.strip())
    return {k: " ".join(v).strip() for k, v in out.items()}


def torch_seed(rng: np.random.Generator) -> int:
    """A torch seed derived from the run's generator (keeps torch draws reproducible)."""
    return int(rng.integers(2**62))
