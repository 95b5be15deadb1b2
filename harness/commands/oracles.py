"""``nas-harness oracles list|info|import``."""

from __future__ import annotations

import argparse
import importlib
import json
import time

from oracles.errors import UserError
from oracles.importers import IMPORTERS
from oracles.registry import data_dir, list_oracles, load_oracle
from oracles.table import save_table


def register(sub) -> None:
    p = sub.add_parser("oracles", help="list, inspect and import oracles")
    osub = p.add_subparsers(dest="oracles_command", metavar="ACTION", parser_class=type(p))
    ls = osub.add_parser("list", help="every known oracle and whether its data is installed")
    ls.set_defaults(func=cmd_list)
    info = osub.add_parser("info", help="size, metrics, optimum and spread of an oracle")
    info.add_argument("name")
    info.add_argument("--format", choices=("text", "json"), default="text")
    info.set_defaults(func=cmd_info)
    q = osub.add_parser("query", help="what an oracle answers for one architecture")
    q.add_argument("name")
    q.add_argument("arch", help="architecture in the space's string form")
    q.add_argument("--fidelity", type=int, help="training budget to ask at (default: the oracle's highest)")
    q.add_argument("--seed", type=int, default=0,
                   help="seed of the query's random stream (oracles that draw a training run, or train one)")
    q.set_defaults(func=cmd_query)
    imp = osub.add_parser("import", help="convert a benchmark source into the data directory")
    isub = imp.add_subparsers(dest="source_kind", metavar="KIND", parser_class=type(p))
    for name, module in IMPORTERS.items():
        mod = importlib.import_module(module)
        ip = isub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(ip)
        ip.set_defaults(func=cmd_import, importer=mod)
    p.set_defaults(func=lambda a: p.print_help() or 2)


def cmd_list(args: argparse.Namespace) -> int:
    rows = list_oracles()
    width = max(len(r["name"]) for r in rows)
    print(f"data directory: {data_dir()}")
    for r in rows:
        mark = "installed" if r["installed"] else "missing  "
        print(f"{r['name'].ljust(width)}  {mark}  {r['description']}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    oracle = load_oracle(args.name)
    d = oracle.describe()
    if args.format == "json":
        print(json.dumps(d, indent=1, default=str))
        return 0
    lines = [f"oracle        {d['name']}",
             f"space         {d['space']['name']}, "
             + (f"{d['space']['size']:,} architectures" if d["space"].get("size") else "infinite")
             + (f" ({d['space'].get('order')})" if d["space"].get("order") else "")]
    if "table" in d:
        lines.append(f"table         {d['table']} at fidelity {d['fidelity']}, seeds {', '.join(d['seeds'])} ({d['runs']})")
        lines.append(f"source        {json.dumps(d['source'])}")
    lines.append(f"search/report {d['search_metric']} / {d['report_metric']}"
                 + (f"; cost {d['cost_metric']}" if d.get("cost_metric") else "; no training cost")
                 + (f"; train {d['train_metric']}" if d.get("train_metric") else ""))
    direction = d.get("direction", "max")
    if "fidelities" in d:
        lines.append(f"direction     {'maximised' if direction == 'max' else 'minimised (lower is better)'}; "
                     f"fidelities {_ranges(d['fidelities'])} ({d['fidelity_kind']})")
    opt, q = d.get("optimum"), d.get("search_quantiles")
    if opt and q:
        # accuracies (maximised, within [0, 1]) in percent; perplexity, loss... as they are
        pct = direction == "max" and 0.0 <= q["0"] and q["1"] <= 1.0
        f = (lambda v, n=4: f"{100 * v:.{n}f}%") if pct else (lambda v, n=4: f"{v:.{n + 2}g}")
        lines += [f"optimum       {f(opt['search'])} search, {opt['n_tied']} architecture(s) tied, "
                  f"report {f(opt['report_of_optimum'])}: {', '.join(opt['architectures'])}",
                  f"best report   {f(d['best_report'])}",
                  f"search spread min {f(q['0'], 2)}, quartiles {f(q['0.25'], 2)} / {f(q['0.5'], 2)} / "
                  f"{f(q['0.75'], 2)}, max {f(q['1'], 2)}"]
    else:
        lines.append("optimum       not known (not a table)")
    lines.append(f"checksum      {d.get('checksum') or oracle.checksum or '-'}")
    table_meta = getattr(getattr(oracle, "table", None), "meta", {})
    for key in ("preset", "recipe", "dataset"):
        if key in table_meta:
            lines.append(f"{key:<13} {json.dumps(table_meta[key], default=str)}")
    print("\n".join(lines))
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    import numpy as np
    oracle = load_oracle(args.name)
    space = oracle.space
    arch = space.parse(args.arch)
    fids = oracle.fidelities
    if args.fidelity is not None and (fids is None or args.fidelity not in fids.values):
        raise UserError(f"oracle {oracle.name} serves fidelities "
                        f"{'none' if fids is None else _ranges(fids.values)}, not {args.fidelity}"
                        + ("" if fids is None or len(fids.values) > 1 else
                           f" (add :fidelities=all to the name for every fidelity of its table)"))
    rng = np.random.default_rng(args.seed)
    ev = oracle.query(arch, rng) if args.fidelity is None else oracle.query(arch, rng, args.fidelity)
    obs, opt = ev.observation, oracle.optimum
    out = {"arch": space.to_string(arch), "identity": space.identity(arch)}
    if space.is_finite:
        out["index"] = space.index(arch)
    out.update({"fidelity": args.fidelity if args.fidelity is not None else (fids.max if fids else None),
                oracle.search_metric: obs.value, oracle.report_metric: ev.report, "cost_s": obs.cost,
                "train": obs.train, "direction": oracle.direction,
                "is_optimum": None if opt is None else space.identity(arch) in opt.identities})
    print(json.dumps(out, indent=1))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    table = args.importer.build(args)
    target = data_dir() / table.name
    try:
        manifest = save_table(table, target)
    except OSError as exc:
        raise UserError(f"cannot write {target}: {exc.strerror or exc} (set NAS_HARNESS_DATA to a "
                        "writable folder with free space)") from None
    names = [o["name"] for o in table.meta.get("oracles", [])]
    print(f"imported {table.n_archs:,} architectures ({len(table.seeds)} seed column(s), fidelities "
          f"{_ranges(table.fidelities)}) into {target} in {time.perf_counter() - t0:.1f}s")
    if names:
        print(f"oracles: {', '.join(names)}")
    space, source = table.meta.get("space", {}), table.meta.get("source", {})
    if "numeric" in space:
        print(f"columns: numeric {', '.join(space['numeric']) or '-'}; "
              f"categorical {', '.join(space.get('categorical', [])) or '-'}")
    if "units" in source:
        how = "detected" if source.get("units_detected") else "as given"
        print(f"metric units: {source['units']} ({how}); stored as "
              f"{'fractions' if source['units'] != 'fraction' else 'they are'}")
    return 0


def _ranges(values) -> str:
    """``1, 2, 3, 5`` -> ``1..3, 5``: a table of per-epoch curves has hundreds of fidelities."""
    out, run = [], []
    for v in list(values) + [None]:
        if run and (v is None or v != run[-1] + 1):
            out.append(f"{run[0]}..{run[-1]}" if len(run) > 2 else ", ".join(map(str, run)))
            run = []
        if v is not None:
            run.append(v)
    return ", ".join(out)
