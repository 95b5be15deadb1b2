"""``nas-harness algorithms list|info``: the registered search algorithms, their papers,
presets and parameters.

Everything printed comes from the algorithm classes themselves (``summary``, ``paper``,
``presets``, ``extra`` and the "Parameters" section of the class docstring, see
:mod:`algorithms.base`), so the help cannot drift from the code. Importing an algorithm's
module does not import torch, so both commands work on an install without the ``learned``
extra and say which algorithms need it.

``list`` shows the plugins of installed packages (``nas_harness.algorithms`` entry points,
:mod:`algorithms.plugins`) after the built-ins, each with the package and version it comes
from; a plugin that cannot be loaded is one warning line on stderr and the list goes on.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import textwrap
from typing import Any

WIDTH = max(60, min(100, shutil.get_terminal_size((88, 24)).columns))


def register(sub) -> None:
    p = sub.add_parser("algorithms", help="list the search algorithms; parameters, presets and paper of one",
                       description="The registered search algorithms (use them with run --algorithm "
                                   "NAME[:key=value,...]).")
    asub = p.add_subparsers(dest="algorithms_command", metavar="COMMAND")
    ls = asub.add_parser("list", help="every algorithm with a one-line description and its paper")
    ls.add_argument("--format", choices=("text", "json"), default="text")
    ls.set_defaults(func=list_main)
    info = asub.add_parser("info", help="every parameter of one algorithm with its default and meaning, "
                                        "its presets, paper and sections")
    info.add_argument("name", help="algorithm name, as in run --algorithm (e.g. lanas, a plugin's name, or "
                                   "a class's import path package.module.Class)")
    info.add_argument("--format", choices=("text", "json"), default="text")
    info.set_defaults(func=info_main)


def plain(text: str) -> str:
    """Docstring markup as plain text: ``x`` and `x` -> x, :role:`x` -> x."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"\1", text)
    text = re.sub(r"``([^`]+)``", r"\1", text)
    return re.sub(r"`([^`]+)`", r"\1", text)


def torch_installed() -> bool:
    return importlib.util.find_spec("torch") is not None


def _needs(cls) -> str | None:
    if not cls.extra:
        return None
    state = "" if torch_installed() else "; not installed here"
    return f"the '{cls.extra}' extra (pip install 'nas-harness[{cls.extra}]'{state})"


def _describe_one_shot(name: str) -> dict[str, Any]:
    """``info`` of a weight-sharing method (:mod:`algorithms.one_shot`): its own parameters'
    meanings from its docstring, the supernet parameters' from :class:`OneShotMethod`'s."""
    from algorithms.base import param_docs
    from algorithms.one_shot import OneShotMethod, one_shot_class
    cls = one_shot_class(name)
    docs = {**param_docs(OneShotMethod.__doc__ or ""), **param_docs(cls.__doc__ or "")}
    params = [{"name": k, "default": v, "meaning": plain(docs.get(k, ""))} for k, v in cls.default_params().items()]
    return {"name": name, "class": f"{cls.__module__}.{cls.__name__}", "kind": "one-shot",
            "summary": plain(cls.summary), "paper": cls.paper, "needs": _needs(OneShotMethod),
            "needs_finite_space": False, "default_preset": None, "presets": {}, "parameters": params,
            "plugin": None}


def describe(name: str) -> dict[str, Any]:
    """Everything ``info`` shows about algorithm ``name``, as JSON-able data."""
    from algorithms import algorithm_class, algorithm_source
    from algorithms.one_shot import is_one_shot
    if is_one_shot(name):
        return _describe_one_shot(name)
    cls = algorithm_class(name)
    defaults = cls.default_params()
    docs = cls.param_docs()
    presets = {k: dict(v) for k, v in cls.presets.items()}
    default_preset = defaults.get("preset") if presets else None
    params = []
    for key, default in defaults.items():
        entry = {"name": key, "default": default, "meaning": plain(docs.get(key, ""))}
        from_presets = {p: v[key] for p, v in presets.items() if key in v}
        if from_presets:
            entry["presets"] = from_presets
        params.append(entry)
    return {"name": name, "class": f"{cls.__module__}.{cls.__name__}", "summary": plain(cls.one_line()),
            "paper": cls.paper, "needs": _needs(cls), "needs_finite_space": bool(cls.needs_finite_space),
            "default_preset": default_preset, "presets": presets, "parameters": params,
            "plugin": algorithm_source(name)}


def _row(name: str, cls, plugin: dict[str, Any] | None) -> dict[str, Any]:
    return {"name": name, "summary": plain(cls.one_line()), "paper": cls.paper,
            "presets": list(cls.presets), "needs": _needs(cls), "plugin": plugin}


def _origin(plugin: dict[str, Any]) -> str:
    """``from nas-harness-hillclimb 0.1.0 (nas_hillclimb.climber:HillClimber)``"""
    where = plugin.get("entry_point", "").rpartition(" = ")[2] or plugin.get("import_path", "")
    who = f"{plugin['distribution']} {plugin['version']}" if plugin.get("distribution") else "no installed package"
    text = f"from {who} ({where})"
    return f"{text}; {plugin['note']}" if plugin.get("note") else text


def rows() -> list[dict[str, Any]]:
    """Every algorithm ``list`` shows: the built-ins, then the plugins that load (the others
    are one warning line each on stderr)."""
    from algorithms import REGISTRY, algorithm_class
    from algorithms.plugins import load_for_listing, plugins
    from oracles.plugins import PluginError, warn
    from algorithms.one_shot import ONE_SHOT_REGISTRY
    out = [_row(name, algorithm_class(name), None) for name in REGISTRY]
    # weight-sharing methods train a supernet instead of querying an oracle (docs/one-shot-loop.md)
    for name in ONE_SHOT_REGISTRY:
        if torch_installed():
            d = _describe_one_shot(name)
        else:   # their modules are torch through and through: named, with what they need
            from algorithms.one_shot import OneShotMethod
            d = {"name": name, "summary": "weight-sharing search on the NB201 supernet", "paper": "",
                 "needs": _needs(OneShotMethod), "plugin": None}
        out.append({k: d[k] for k in ("name", "summary", "paper", "needs", "plugin")}
                   | {"presets": [], "kind": "one-shot"})
    for found in plugins().values():
        for plugin in found:
            try:
                name, cls, note = load_for_listing(plugin, set(REGISTRY))
            except PluginError as exc:
                warn(f"{exc}; the other algorithms are listed")
                continue
            source = {**plugin.source(), "import_path": plugin.import_path}
            if note:
                source["note"] = f"{note}: use it as {name}"
            out.append(_row(name, cls, source))
    return out


def _value(v: Any) -> str:
    if isinstance(v, tuple):
        return "/".join(str(x) for x in v)       # as written on the command line
    return repr(v) if isinstance(v, str) else str(v)


def _wrap(text: str, indent: str) -> str:
    return textwrap.fill(text, WIDTH, initial_indent=indent, subsequent_indent=indent,
                         break_on_hyphens=False)


def list_main(args: argparse.Namespace) -> int:
    listed = rows()
    if args.format == "json":
        print(json.dumps(listed, indent=1))
        return 0
    # an import path as long as a sentence would push every summary off the screen
    width = max(len(r["name"]) for r in listed if len(r["name"]) <= 24)
    for r in listed:
        pad = " " * (width + 2)
        if len(r["name"]) > width:
            print(r["name"])
            print(_wrap(r["summary"], pad))
        else:
            print(f"{r['name'].ljust(width)}  {r['summary']}")
        if r["plugin"]:
            print(_wrap(_origin(r["plugin"]), pad))
        if r["paper"]:
            print(_wrap(f"paper: {r['paper']}", pad))
        if r["presets"]:
            print(f"{pad}presets: {', '.join(r['presets'])}")
        if r["needs"]:
            print(_wrap(f"needs {r['needs']}", pad))
    print("\nnas-harness algorithms info NAME: parameters, defaults and presets of one algorithm")
    return 0


def info_main(args: argparse.Namespace) -> int:
    d = describe(args.name)
    if args.format == "json":
        print(json.dumps(d, indent=1, default=str))
        return 0
    print(f"{d['name']}: {d['summary']}")
    if d["plugin"]:
        print(_wrap(_origin(d["plugin"]), ""))
    if d["paper"]:
        print(_wrap(f"paper: {d['paper']}", ""))
    if d["needs"]:
        print(f"needs: {d['needs']}")
    if d["needs_finite_space"]:
        print("needs: an enumerable (finite) search space")
    if d["presets"]:
        print("\npresets (NAME:preset=P; parameters given explicitly override the preset):")
        for p, values in d["presets"].items():
            mark = " (default)" if p == d["default_preset"] else ""
            body = ", ".join(f"{k}={_value(v)}" for k, v in values.items())
            print(_wrap(f"{p}{mark}: {body}", "  "))
    print("\nparameters (NAME:key=value,...), with their defaults:")
    params = d["parameters"]
    for i, prm in enumerate(params):
        default = _value(prm["default"])
        if prm["default"] is None and "presets" in prm:
            default = "from the preset (" + ", ".join(f"{p}: {_value(v)}" for p, v in prm["presets"].items()) + ")"
        print(f"  {prm['name']} = {default}")
        # parameters documented together ("a, b: ...") share one text: print it once, after the last
        if prm["meaning"] and (i + 1 == len(params) or params[i + 1]["meaning"] != prm["meaning"]):
            print(_wrap(prm["meaning"], "      "))
    example = next((f"preset={p}" for p in d["presets"] if p != d["default_preset"]), None)
    if example is None and d["parameters"]:
        first = d["parameters"][0]
        example = f"{first['name']}={_value(first['default']).strip(chr(39))}"
    suffix = f":{example}" if example else ""
    print(f"\nexample: nas-harness run --oracle nb201/cifar10 --algorithm {d['name']}{suffix}")
    return 0
