"""Search algorithms from other packages: ``nas_harness.algorithms`` entry points and classes
named by their import path (discovery, naming rules and provenance: :mod:`oracles.plugins`).

A plugin algorithm is used exactly like a built-in one: ``--algorithm hillclimb:restarts=3``
(the entry point's name) or ``--algorithm nas_hillclimb.HillClimber:restarts=3`` (the class's
dotted import path, which needs no entry point). Its parameters, presets, ``algorithms
info`` and recorded configuration come from the class, as for built-ins, because the same
:class:`~algorithms.base.SearchAlgorithm` machinery reads them. What a run records about the
plugin's code is :func:`source`.

A class is checked against the interface when it is loaded (:func:`interface_problems`), so
a plugin that does not follow it fails at once, in one line, instead of deep inside a run.
"""

from __future__ import annotations

import inspect
from typing import Any

from oracles.errors import UserError
from oracles.plugins import (GROUPS, Plugin, PluginError, discover, find, import_object, is_import_path,
                             module_source, one_line)

from .base import SearchAlgorithm

#: the entry-point group of algorithms
GROUP = GROUPS["algorithms"]


def interface_problems(obj: Any) -> list[str]:
    """What keeps ``obj`` from being used as a search algorithm (empty: nothing).

    The harness builds algorithms from keyword arguments with defaults (the published values),
    reads them back with ``get_params`` and calls ``start``/``ask``/``tell``; so the class must
    subclass :class:`~algorithms.base.SearchAlgorithm`, implement its abstract methods, give
    every ``__init__`` parameter a default, name only its own parameters in ``presets`` (and
    then take a ``preset`` parameter), and, if it ``uses_fidelities``, accept them in ``start``.
    """
    if not isinstance(obj, type):
        return [f"{obj!r} is not a class"]
    if not issubclass(obj, SearchAlgorithm):
        return [f"{obj.__module__}.{obj.__qualname__} does not subclass algorithms.base.SearchAlgorithm"]
    problems = []
    if inspect.isabstract(obj):
        problems.append("does not implement " + ", ".join(sorted(obj.__abstractmethods__)))
    try:
        sig = inspect.signature(obj.__init__)
    except (TypeError, ValueError):
        return problems + ["its __init__ has no readable signature"]
    missing = [p.name for p in sig.parameters.values() if p.name != "self"
               and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.default is p.empty]
    if missing:
        problems.append(f"__init__ parameter(s) {', '.join(missing)} have no default (every "
                        "hyper-parameter needs one: its published value)")
    presets = getattr(obj, "presets", {})
    if not isinstance(presets, dict) or not all(isinstance(v, dict) for v in presets.values()):
        problems.append("presets must map a preset name to {parameter: value}")
    elif presets:
        names = set(obj.param_names())
        if "preset" not in names:
            problems.append("has presets but no 'preset' parameter to choose one")
        for preset, values in presets.items():
            unknown = sorted(set(values) - names)
            if unknown:
                problems.append(f"preset {preset!r} sets unknown parameter(s) {', '.join(unknown)}")
    if getattr(obj, "uses_fidelities", False):
        try:
            inspect.signature(obj.start).bind(None, None, None, None)
        except TypeError:
            problems.append("uses_fidelities is set but start() does not take the fidelities "
                            "(start(self, space, rng, fidelities))")
        except ValueError:
            pass
    return problems


def _checked(obj: Any, who: str) -> type[SearchAlgorithm]:
    problems = interface_problems(obj)
    if problems:
        raise PluginError(f"{who} does not follow the algorithm interface: {'; '.join(problems)}")
    return obj


def algorithm_class(name: str) -> type[SearchAlgorithm] | None:
    """The class a name that is not a built-in's names: an import path or a plugin's name;
    None when it is neither. A plugin that cannot be used raises :class:`PluginError`."""
    if is_import_path(name):
        try:
            obj = import_object(name)
        except ModuleNotFoundError as exc:
            if exc.name != name.partition(".")[0]:
                raise PluginError(f"algorithm {name}: cannot import it ({one_line(exc)})") from None
            # not even its package exists: most likely a mistyped name
            raise UserError(f"unknown algorithm {name!r}: {one_line(exc)} (an import path is "
                            "package.module.Class)") from None
        except Exception as exc:  # noqa: BLE001 -- whatever the import raises, in one line
            raise PluginError(f"algorithm {name}: cannot import it ({one_line(exc)})") from None
        return _checked(obj, f"algorithm {name}")
    plugin = find(GROUP, name)
    if plugin is None:
        return None
    return _checked(plugin.load(), f"plugin algorithm {name!r} from {plugin.origin}")


def source(name: str, builtin: bool) -> dict[str, Any] | None:
    """What a run records about the code of algorithm ``name``: None for a built-in (the
    harness's own version covers it), else the distribution and version it comes from and
    the entry point or import path (:func:`oracles.plugins.module_source`)."""
    if builtin:
        return None
    if is_import_path(name):
        cls = algorithm_class(name)
        return module_source(cls)
    plugin = find(GROUP, name)
    return None if plugin is None else plugin.source()


def plugins() -> dict[str, list[Plugin]]:
    """Installed algorithm plugins by name (metadata only: nothing is imported)."""
    return discover(GROUP)


def load_for_listing(plugin: Plugin, builtins: set[str]) -> tuple[str, type[SearchAlgorithm], str | None]:
    """(the name to use it by, its class, a note) for ``algorithms list``. A plugin whose name
    is a built-in's is used by its import path; two packages claiming one name likewise."""
    cls = _checked(plugin.load(), f"plugin algorithm {plugin.name!r} from {plugin.origin}")
    if plugin.name in builtins:
        return plugin.import_path, cls, f"its name {plugin.name!r} is a built-in's, which wins"
    if len(plugins().get(plugin.name, [])) > 1:
        return plugin.import_path, cls, f"its name {plugin.name!r} is claimed by another package too"
    return plugin.name, cls, None
