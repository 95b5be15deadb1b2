"""An example search-algorithm plugin for nas-harness: :class:`HillClimber` (hill climbing
with restarts), registered as ``hillclimb`` by the ``nas_harness.algorithms`` entry point in
this package's ``pyproject.toml``."""

from .climber import HillClimber

__all__ = ["HillClimber"]
