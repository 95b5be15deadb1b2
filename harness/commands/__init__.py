"""One module per ``nas-harness`` sub-command; each exposes ``register(subparsers)``."""
