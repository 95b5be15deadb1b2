"""Conversion recipes: one module per source format, each turning a source into a :class:`Table`.

``IMPORTERS`` maps the name used in ``nas-harness oracles import NAME ...`` to a module that
defines ``HELP`` (one line), ``add_arguments(parser)`` and ``build(args) -> Table``. The
command saves the table into the data directory under ``table.name``.
"""

IMPORTERS: dict[str, str] = {
    "nb201": "oracles.importers.nb201",
    "nb101": "oracles.importers.nb101",
    "table": "oracles.importers.table",
    "nbnlp": "oracles.importers.nbnlp",
}
