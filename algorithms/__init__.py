"""Search algorithms, one module each, behind the ask/tell surface of :mod:`algorithms.base`.

``REGISTRY`` maps the command-line name to ``"module:Class"``; modules are imported on
first use so that torch-based algorithms cost nothing to the ones that do not need torch.

Names that are not in ``REGISTRY`` are looked up among plugins (:mod:`algorithms.plugins`):
a class's dotted import path (``mypkg.module.Class``) or the name of a
``nas_harness.algorithms`` entry point of an installed package. Built-in names win.
"""

from __future__ import annotations

import importlib
import inspect
import math
from typing import Any

from oracles.errors import UserError

from .base import SearchAlgorithm

REGISTRY: dict[str, str] = {
    "random": "algorithms.random_search:RandomSearch",
    "evolution": "algorithms.regularized_evolution:RegularizedEvolution",
    "mcts": "algorithms.mcts:MCTS",
    "lanas": "algorithms.lanas:LaNAS",
    "reinforce": "algorithms.reinforce:Reinforce",
    "mlpnas": "algorithms.mlpnas:MLPNAS",
    "cadam": "algorithms.cadam:Cadam",
    "nao": "algorithms.nao:NAO",
    "nases": "algorithms.nases:NASES",
    "successive-halving": "algorithms.successive_halving:SuccessiveHalving",
    "hyperband": "algorithms.hyperband:Hyperband",
    "asha": "algorithms.asha:ASHA",
    "bohb": "algorithms.bohb:BOHB",
    "tpe": "algorithms.tpe:TPE",
}


def algorithm_class(name: str) -> type[SearchAlgorithm]:
    """The class behind ``name``: a built-in's, a plugin's (entry point) or the class at a
    dotted import path. A plugin that does not import or does not follow the interface is a
    one-line :class:`~oracles.plugins.PluginError`."""
    target = REGISTRY.get(name)
    if target is None:
        from . import plugins
        cls = plugins.algorithm_class(name)
        if cls is None:
            found = sorted(plugins.plugins())
            extra = f"; plugins: {', '.join(found)}" if found else ""
            raise UserError(f"unknown algorithm {name!r}; choose from {', '.join(sorted(REGISTRY))}{extra} "
                            "(or a class by its import path, package.module.Class)")
        return cls
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)


def algorithm_source(name: str) -> dict[str, Any] | None:
    """What a run records about the code behind algorithm ``name``: None for a built-in (the
    harness's own code version covers it); for a plugin, its distribution, version and entry
    point or import path (:func:`algorithms.plugins.source`)."""
    from . import plugins
    return plugins.source(name, builtin=name in REGISTRY)


def _annotated_type(annotation: Any) -> type | None:
    """``bool`` / ``int`` / ``float`` / ``str`` named by a parameter's annotation (``"float | None"``)."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    words = {w.strip() for w in str(text).replace("Optional[", "").replace("]", "").split("|")}
    for t in (bool, int, float, str):
        if t.__name__ in words:
            return t
    return None


def _coerce(name: str, key: str, text: str, default: Any, annotation: Any = None) -> Any:
    """Turn a command-line value into the type of the parameter's default (for a ``None``
    default, the type its annotation names, e.g. ``float | None``)."""
    if default is None and text is None:
        return None       # an optional parameter left at None (as stored in a run's configuration)
    if default is None and annotation is not None:
        kind = _annotated_type(annotation)
        if kind is not None and not (isinstance(text, str) and text.strip().lower() in ("none", "null")):
            return _coerce(name, key, text, kind(), None)
    if isinstance(text, str):
        low = text.strip().lower()
        if isinstance(default, bool):
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise UserError(f"{name}: parameter {key} must be true or false, got {text!r}")
        try:
            if isinstance(default, int):
                return int(text)
            if isinstance(default, float):
                return float(text)
            if isinstance(default, tuple):
                return tuple(type(default[0])(x) if default else int(x) for x in text.split("/"))
        except ValueError:
            raise UserError(f"{name}: parameter {key} must be a {type(default).__name__}, got {text!r}") from None
        if default is None and low in ("none", "null"):
            return None
        if default is None:
            for conv in (int, float):
                try:
                    return conv(text)
                except ValueError:
                    pass
        return text
    if isinstance(default, bool) and not isinstance(text, bool):
        raise UserError(f"{name}: parameter {key} must be true or false, got {text!r}")
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        if isinstance(text, bool) or not isinstance(text, (int, float)):
            raise UserError(f"{name}: parameter {key} must be a number, got {text!r}")
        if isinstance(default, int) and isinstance(text, float) and not text.is_integer():
            raise UserError(f"{name}: parameter {key} must be an integer, got {text!r}")
        return type(default)(text)
    if isinstance(default, tuple) and isinstance(text, list):
        return tuple(text)
    return text


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``"lanas:preset=paper,c=0.5"`` -> ``("lanas", {"preset": "paper", "c": "0.5"})``."""
    name, _, opts = spec.strip().partition(":")
    params: dict[str, str] = {}
    if opts:
        for part in opts.split(","):
            key, eq, value = part.partition("=")
            if not eq or not key.strip():
                raise UserError(f"bad algorithm parameter {part!r} in {spec!r}: write key=value")
            params[key.strip()] = value.strip()
    return name.strip(), params


def make_algorithm(name: str, params: dict[str, Any] | None = None) -> SearchAlgorithm:
    """Instantiate algorithm ``name`` with ``params`` (strings are coerced to the defaults' types)."""
    cls = algorithm_class(name)
    defaults = cls.default_params()
    params = dict(params or {})
    unknown = set(params) - set(defaults)
    if unknown:
        raise UserError(f"{name}: unknown parameter(s) {', '.join(sorted(unknown))}; "
                        f"it has {', '.join(defaults) or 'none'}")
    sig = inspect.signature(cls.__init__)
    kwargs = {k: _coerce(name, k, v, defaults[k], sig.parameters[k].annotation) for k, v in params.items()}
    for k, v in kwargs.items():
        # nan/inf parse as floats but no published hyper-parameter is non-finite; letting
        # them through only moves the failure deep into a run (e.g. torch's optimisers)
        if isinstance(v, float) and not math.isfinite(v):
            raise UserError(f"{name}: parameter {k} must be a finite number, got {v!r}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{name}: {exc}") from None
