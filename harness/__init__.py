"""nas-harness: run NAS algorithms against oracles for many seeds and analyse the results."""

__version__ = "0.1.0"
