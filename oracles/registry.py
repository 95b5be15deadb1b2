"""Oracle names -> oracles.

Tables live in the data directory (``$NAS_HARNESS_DATA``, default ``~/.cache/nas-harness``),
one sub-directory per imported table, plus tables shipped inside the package
(``oracles/embedded/``). Each table's metadata declares the oracles it serves
(``meta["oracles"]``: name, search/report metrics, fidelity, cost/train metrics) and the
kind of search space its rows form (``meta["space"]["kind"]``), so an importer is the
only place that knows a source's layout and the registry stays generic. A table stored in a
compact form (a space kind of :data:`EXPANDERS`) is expanded once, when it is loaded.

Oracles that are not tables (networks trained on demand, supernets) come from factories:
:data:`FACTORIES` maps a name's family (the part before the first ``/``) to a
``"module:function"`` building the oracle from ``(name, options, shared)``. Installed
packages add families (``nas_harness.oracles`` entry points) and space kinds
(``nas_harness.spaces``) the same way (:mod:`oracles.plugins`); built-in names win.

An oracle is named ``NAME[:key=value,...]``; options override the table's defaults:
``runs=mean|random``, ``search=METRIC``, ``report=METRIC``, ``fidelity=EPOCHS`` (the one a
query without a fidelity gets), ``fidelities=all`` or ``fidelities=12+200`` (the fidelities
multi-fidelity algorithms may ask for; by default only ``fidelity`` is served, so the
oracle's checksum names exactly the data a run can see). A table declares per oracle its
``direction`` (``max`` or ``min``) and ``fidelity_kind`` (``restart`` or ``prefix``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import CorruptData, MissingData, UserError
from .oracle import TabularOracle
from .space import FiniteSpace
from .table import Table, load_table, read_manifest

EMBEDDED_DIR = Path(__file__).parent / "embedded"


def data_dir() -> Path:
    """Where imported tables live: ``$NAS_HARNESS_DATA`` or ``~/.cache/nas-harness``."""
    env = os.environ.get("NAS_HARNESS_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "nas-harness"


# --- search spaces a table's rows can form -------------------------------------------------
def _nb201_space(table: Table) -> FiniteSpace:
    from .nb201_space import NB201Space
    space = NB201Space(order=[str(s) for s in table.archs])
    # a table of our own (the NB201 cells trained on digits) lists the cells in product order,
    # not NB201's official index order; its metadata says which
    space.official_order = str(table.meta.get("space", {}).get("order", "official")).startswith("official")
    return space


def _nb101_space(table: Table) -> FiniteSpace:
    from .errors import CorruptData
    from .nb101_space import NB101TableSpace
    if "bits" not in table.columns or "ops" not in table.columns:
        raise CorruptData(f"NB101 table {table.name!r} lacks its 'bits'/'ops' columns; re-import it")
    return NB101TableSpace(table.archs, table.columns["bits"], table.columns["ops"])


def _product_space(table: Table) -> FiniteSpace:
    from .errors import CorruptData
    from .product_space import ProductSpace
    spec = table.meta.get("space", {})
    if "codes" not in table.columns or not isinstance(spec.get("categories"), dict) \
            or set(spec.get("columns", [])) - set(spec["categories"]):
        raise CorruptData(f"table {table.name!r} lacks its product-space codes or categories; re-import it")
    return ProductSpace.from_table(table)


def _convnet_space(table: Table) -> FiniteSpace:
    from .convnet_space import space_from_table
    return space_from_table(table)


def _recurrent_space(table: Table) -> FiniteSpace:
    from .recurrent_space import space_from_table
    return space_from_table(table)


def _mlp_space(table: Table) -> FiniteSpace:
    from .mlp_space import space_from_table
    return space_from_table(table)


def _nbnlp_space(table: Table) -> FiniteSpace:
    from .nbnlp_space import space_from_table
    return space_from_table(table)


def _nb201_cells_space(table: Table) -> FiniteSpace:
    from .collectors.nb201 import space_from_table
    return space_from_table(table)


#: space kind -> builder(table). Importers of new benchmark families add theirs here.
SPACE_BUILDERS: dict[str, Callable[[Table], FiniteSpace]] = {
    "nb201": _nb201_space,
    "nb101": _nb101_space,
    "product": _product_space,
    "convnet": _convnet_space,
    "recurrent": _recurrent_space,
    "mlp": _mlp_space,          # a table a live MLP oracle exported (oracles.live)
    "nbnlp": _nbnlp_space,      # NAS-Bench-NLP's tabulated recurrent cells
    "nb201-cells": _nb201_cells_space,  # our NB201 ground truth, expanded from its classes
}

#: stored space kind -> "module:function" turning such a compact table into the table its
#: oracles serve, once per loaded table (the NB201 ground truth stores one row per class of
#: equal cells and is expanded to the cells: oracles.collectors.nb201)
EXPANDERS: dict[str, str] = {"nb201-classes": "oracles.collectors.nb201:expand_table"}


def _expand(table: Table) -> Table:
    target = EXPANDERS.get(table.meta.get("space", {}).get("kind"))
    if target is None:
        return table
    import importlib
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)(table)


# --- oracles known before their data exists (so the CLI can say how to get the data) -----
@dataclass(frozen=True)
class KnownTable:
    table: str
    oracles: tuple[str, ...]
    how: str  #: the command that installs it


KNOWN_TABLES: tuple[KnownTable, ...] = (
    KnownTable("nb201", tuple(f"{p}/{d}" for p in ("nb201", "nb201-12ep")
                              for d in ("cifar10", "cifar100", "imagenet16")),
               "nas-harness oracles import nb201 PATH (the folder with nb201_200ep.csv and nb201_12ep.csv, "
               "or the NATS-tss-v1_0-3ffb9-simple folder, or a NAS-Bench-201-v1_*.pth file)"),
    KnownTable("nb201-curves", ("nb201-curves/cifar10",),
               "nas-harness oracles import nb201 FOLDER --curves (the official NATS-tss-v1_0-3ffb9-simple "
               "fast-mode folder: every epoch of the 200-epoch schedule as prefix fidelities)"),
    KnownTable("nb201-12ep-curves", tuple(f"nb201-12ep-curves/{d}" for d in ("cifar10", "cifar100", "imagenet16")),
               "nas-harness oracles import nb201 FOLDER --curves 12 (the official fast-mode folder: every "
               "epoch of the 12-epoch schedule)"),
    KnownTable("nb101", ("nb101", "nb101/test-search"),
               "nas-harness oracles import nb101 nasbench_only108.tfrecord (the official NAS-Bench-101 "
               "file; no TensorFlow needed)"),
    KnownTable("nb101-full", ("nb101-full", "nb101-full/test-search"),
               "nas-harness oracles import nb101 nasbench_full.tfrecord (fidelities 4/12/36/108 epochs)"),
    KnownTable("nbnlp", ("nbnlp", "nbnlp/test-search"),
               "nas-harness oracles import nbnlp PATH (NAS-Bench-NLP's nbnlp_ptb.csv.gz or its folder)"),
)


#: oracle families that are not tables: family (before the first "/") -> "module:function",
#: the function taking (name, options, shared) and returning the oracle. Executors ship the
#: driver's entry with each task, so a family registered at run time (a plugin, a test)
#: works in worker processes and on Ray too.
FACTORIES: dict[str, str] = {
    "supernet": "supernets.oracle:build_oracle",   # supernet/NAME: a trained weight-sharing supernet
    "live": "oracles.live:build_oracle",           # live/mlp-DATA, live/convnet-DATA: trained on demand
}


def factory_of(spec: str) -> str | None:
    """The ``"module:function"`` that builds ``spec``, or None for a table-backed oracle."""
    return _factory(parse_name(spec)[0].split("/")[0])


def _factory(family: str) -> str | None:
    """:data:`FACTORIES`' entry for ``family``, else an installed plugin's; a plugin never
    takes the name of a table's oracles (built-ins win)."""
    target = FACTORIES.get(family)
    if target is None:
        plugin = _oracle_plugin(family)
        if plugin is not None:
            target = plugin.value
    return target


def _oracle_plugin(family: str):
    from .plugins import GROUPS, discover, find
    if family in FACTORIES or family not in discover(GROUPS["oracles"]) or family in _table_families():
        return None
    return find(GROUPS["oracles"], family)


def _table_families() -> set[str]:
    return {n.split("/")[0] for n in (*available(), *(o for kt in KNOWN_TABLES for o in kt.oracles))}


def oracle_source(spec: str) -> dict[str, Any] | None:
    """What a run records about the code behind oracle ``spec`` when a plugin provides it
    (its factory, or the builder of its table's space kind): distribution, version, entry
    point; None for the harness's own oracles."""
    family = parse_name(spec)[0].split("/")[0]
    plugin = _oracle_plugin(family) if family not in FACTORIES else None
    if plugin is not None:
        return plugin.source()
    entry = available().get(parse_name(spec)[0])
    if entry is None:
        return None
    try:
        kind = read_manifest(entry[0]).get("meta", {}).get("space", {}).get("kind")
    except UserError:
        return None
    if not isinstance(kind, str) or kind in SPACE_BUILDERS or kind in EXPANDERS:
        return None
    from .plugins import GROUPS, find
    space = find(GROUPS["spaces"], kind)
    return None if space is None else space.source()


def _from_factory(target: str, name: str, options: dict[str, str], shared: Any):
    import importlib
    module, _, function = target.partition(":")
    try:
        build = getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError) as exc:
        plugin = _oracle_plugin(name.split("/")[0])
        what = f"the plugin from {plugin.origin}" if plugin is not None and plugin.value == target \
            else f"its factory {target}"
        raise UserError(f"oracle {name}: {what} cannot be loaded ({exc})") from None
    return build(name, options, shared)


def _table_dirs() -> list[Path]:
    dirs = []
    for root in (EMBEDDED_DIR, data_dir()):
        if root.is_dir():
            dirs.extend(sorted(p for p in root.iterdir()
                               if p.is_dir() and not p.name.startswith(".") and (p / "manifest.json").is_file()))
    return dirs


def available() -> dict[str, tuple[Path, dict[str, Any]]]:
    """Installed oracle name -> (table directory, its oracle declaration)."""
    out: dict[str, tuple[Path, dict[str, Any]]] = {}
    for d in _table_dirs():
        try:
            manifest = read_manifest(d)
        except UserError:
            continue  # a damaged table is reported when someone asks for it by name
        decls = manifest.get("meta", {}).get("oracles", [])
        for decl in decls if isinstance(decls, list) else []:
            # a hand-edited declaration without the fields the loader needs is not offered
            if isinstance(decl, dict) and isinstance(decl.get("name"), str) \
                    and isinstance(decl.get("search"), str) and isinstance(decl.get("report"), str):
                out.setdefault(decl["name"], (d, decl))
    return out


def _damaged_tables() -> list[tuple[Path, str]]:
    """Table directories whose manifest cannot be used, with the reason."""
    out = []
    for d in _table_dirs():
        try:
            read_manifest(d)
        except UserError as exc:
            out.append((d, str(exc)))
    return out


def list_oracles() -> list[dict[str, Any]]:
    """Every oracle the project knows: installed ones, known ones still to import, and the
    families built by factories."""
    rows = [{"name": f"{family}/...", "installed": True, "table": None,
             "description": f"built on demand by {target}"} for family, target in sorted(FACTORIES.items())]
    from .plugins import GROUPS, discover
    for family in sorted(discover(GROUPS["oracles"])):
        plugin = _oracle_plugin(family)
        if plugin is not None:
            rows.append({"name": f"{family}/...", "installed": True, "table": None,
                         "description": f"built on demand by the plugin from {plugin.origin}"})
    avail = available()
    for name, (d, decl) in sorted(avail.items()):
        rows.append({"name": name, "installed": True, "table": str(d),
                     "description": decl.get("description", "")})
    for kt in KNOWN_TABLES:
        for name in kt.oracles:
            if name not in avail:
                rows.append({"name": name, "installed": False, "table": None,
                             "description": f"not imported: {kt.how}"})
    return rows


def parse_name(spec: str) -> tuple[str, dict[str, str]]:
    """``"nb101:runs=random"`` -> ``("nb101", {"runs": "random"})``."""
    name, _, opts = spec.strip().partition(":")
    options = {}
    if opts.strip():   # "nb201/cifar10: " has no options, as for algorithms (parse_spec)
        for part in opts.split(","):
            key, eq, value = part.partition("=")
            if not eq or not key.strip():
                raise UserError(f"bad oracle option {part!r} in {spec!r}: write key=value")
            options[key.strip()] = value.strip()
    return name.strip(), options


_OPTION_KEYS = {"runs", "search", "report", "fidelity", "fidelities"}
_CACHE: dict[tuple[str, float], Table] = {}


def _load_cached(directory: Path) -> Table:
    key = (str(directory), (directory / "manifest.json").stat().st_mtime)
    table = _CACHE.get(key)
    if table is None:
        table = _expand(load_table(directory))
        _CACHE[key] = table
    return table


def load_oracle(spec: str, shared: Any = None):
    """Build the oracle ``spec`` names: from its factory (:data:`FACTORIES`), or from its
    table, loaded (and verified) once per process.

    ``shared``: what the oracle's :meth:`~oracles.oracle.Oracle.shared` gave in another
    process (for a table oracle, the table: its ``meta["oracles"]`` must declare the name).
    Distributed executors use it to build oracles in workers from one shipped copy instead
    of each worker reading the data directory.
    """
    name, options = parse_name(spec)
    target = _factory(name.split("/")[0])
    if target is not None:
        return _from_factory(target, name, options, shared)
    table = None if shared is None else _expand(shared)
    unknown = set(options) - _OPTION_KEYS
    if unknown:
        raise UserError(f"unknown oracle option(s) {', '.join(sorted(unknown))} in {spec!r}; "
                        f"allowed: {', '.join(sorted(_OPTION_KEYS))}")
    if table is not None:
        decls = {d["name"]: d for d in table.meta.get("oracles", [])}
        if name not in decls:
            raise UserError(f"table {table.name!r} does not serve oracle {name!r}")
        avail = {name: (Path(f"<table {table.name}>"), decls[name])}
    else:
        avail = available()
    if name not in avail and table is None:
        for d, why in _damaged_tables():
            raise CorruptData(f"oracle {name} is not available, and the table at {d} cannot be used: {why}")
    if name not in avail:
        for kt in KNOWN_TABLES:
            if name in kt.oracles:
                if (data_dir() / kt.table / "manifest.json").is_file():
                    raise MissingData(f"oracle {name} is not served by the {kt.table} table in {data_dir()} "
                                      f"(its source lacks that data); run: {kt.how}")
                raise MissingData(f"oracle {name} needs the {kt.table} table, which is not in "
                                  f"{data_dir()}; run: {kt.how}")
        known = sorted(set(avail) | {n for kt in KNOWN_TABLES for n in kt.oracles})
        raise UserError(f"unknown oracle {name!r}; known oracles: {', '.join(known)} "
                        "(see `nas-harness oracles list`)")
    directory, decl = avail[name]
    if table is None:
        table = _load_cached(directory)
    kind = table.meta.get("space", {}).get("kind")
    builder = SPACE_BUILDERS.get(kind)
    if builder is None and isinstance(kind, str):
        from .plugins import GROUPS, find
        plugin = find(GROUPS["spaces"], kind)     # a space kind an installed package provides
        builder = plugin.load() if plugin is not None else None
    if builder is None:
        raise UserError(f"table {directory} declares unknown space kind {kind!r}; upgrade nas-harness, "
                        "install the package that provides it, or re-import the table")
    space = builder(table)
    fidelity = options.get("fidelity", decl.get("fidelity"))
    search = options.get("search", decl["search"])
    report = options.get("report", decl["report"])
    for metric in (search, report):
        if metric not in table.metrics:
            raise UserError(f"oracle {name}: no metric {metric!r}; the table has {', '.join(table.metrics)}")
    try:
        fid = None if fidelity is None else int(fidelity)
    except ValueError:
        raise UserError(f"oracle {name}: fidelity must be an integer number of epochs, got {fidelity!r}") from None
    if fid is not None and fid not in table.fidelities:
        raise UserError(f"oracle {name}: no fidelity {fid}; the table has {list(table.fidelities)}")
    fids = _served_fidelities(name, options.get("fidelities"), table)
    if fids is not None and fid is None:
        fid = fids[-1]
    oracle = TabularOracle(spec if options else name, table, space, search=search, report=report,
                           fidelity=fid, cost=decl.get("cost"), train=decl.get("train"),
                           runs=options.get("runs", decl.get("runs", "mean")), fidelities=fids,
                           fidelity_kind=decl.get("fidelity_kind", table.meta.get("fidelity_kind", "restart")),
                           direction=decl.get("direction", "max"))
    return oracle


def _served_fidelities(name: str, text: str | None, table: Table) -> list[int] | None:
    """The ``fidelities=`` option: ``all`` or epochs joined by ``+`` (``12+200``)."""
    if text is None:
        return None
    if text == "all":
        return list(table.fidelities)
    try:
        fids = sorted({int(x) for x in text.split("+")})
    except ValueError:
        raise UserError(f"oracle {name}: fidelities must be 'all' or epochs joined by '+' (e.g. 12+200), "
                        f"got {text!r}") from None
    missing = [f for f in fids if f not in table.fidelities]
    if missing:
        raise UserError(f"oracle {name}: no fidelity {missing[0]}; the table has {list(table.fidelities)}")
    return fids
