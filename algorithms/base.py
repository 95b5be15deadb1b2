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
values; :meth:`get_params` reads them back for the run's metadata (as scikit-learn does).
"""

from __future__ import annotations

import inspect
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


def torch_seed(rng: np.random.Generator) -> int:
    """A torch seed derived from the run's generator (keeps torch draws reproducible)."""
    return int(rng.integers(2**62))
