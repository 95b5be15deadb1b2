"""Plugins: algorithms, oracle factories and search spaces from other installed packages.

A package adds to the harness without editing it by declaring entry points (the packaging
mechanism pytest and Optuna plugins use) in its ``pyproject.toml``::

    [project.entry-points."nas_harness.algorithms"]
    hillclimb = "nas_hillclimb:HillClimber"          # --algorithm hillclimb
    [project.entry-points."nas_harness.oracles"]
    mybench = "my_bench.oracle:build"                 # --oracle mybench/...: build(name, options, shared)
    [project.entry-points."nas_harness.spaces"]
    mygraph = "my_bench.space:from_table"             # tables whose meta says space kind "mygraph"

Discovery reads the installed packages' metadata only; a plugin's module is imported when
it is listed or used, never when the harness starts, so a plugin that fails to import
costs nothing to a command that does not name it, and one that is named fails with one
line (:class:`PluginError`, a :class:`~oracles.errors.UserError`) that names the plugin,
its package and the reason.

Names. Built-in names win: a plugin that claims a built-in's name is still reachable by its
import path (below), and ``nas-harness algorithms list`` says so. A name claimed by two
installed packages is ambiguous and refused with both named. Plugin names are words like the
built-ins' (letters, digits, ``_`` and ``-``): a ``.`` would read as an import path, and
``:``, ``,`` and ``=`` are the option syntax of ``NAME:key=value,...``.

Import paths. An object can also be named by its dotted import path,
``package.module.Object`` (:func:`import_object`), the spelling of Python's own ``import``
statements. Not ``module:Object`` (setuptools' entry-point spelling): on the command line
the first ``:`` starts the options, so ``mypkg.algo.Climber:restarts=3`` stays readable,
and no built-in or plugin name contains a dot, so the two kinds of name never overlap.

Provenance. :meth:`Plugin.source` and :func:`module_source` say which distribution (and
version) a plugin's code came from; the harness stores it with a run's configuration, as
it stores its own code version, so a results folder says which code produced it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata as metadata
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .errors import UserError

#: the entry-point groups, by what they provide
GROUPS = {
    "algorithms": "nas_harness.algorithms",   # a SearchAlgorithm subclass
    "oracles": "nas_harness.oracles",         # factory(name, options, shared) -> Oracle, per family
    "spaces": "nas_harness.spaces",           # builder(table) -> FiniteSpace, per space kind
}

#: what a plugin name may look like: a word, as the built-ins' names are
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")


class PluginError(UserError):
    """A plugin that cannot be used: it does not import, or what it names does not follow
    the interface. The message is one line naming the plugin and its package."""


@dataclass(frozen=True)
class Plugin:
    """One entry point of one installed distribution."""

    group: str          #: e.g. ``"nas_harness.algorithms"``
    name: str           #: the entry point's name, used on the command line
    value: str          #: ``"module:attr"`` as the package declares it
    distribution: str | None
    version: str | None

    @property
    def module(self) -> str:
        return self.value.partition(":")[0].strip()

    @property
    def import_path(self) -> str:
        """The dotted path of the object (``module.attr``), by which it is reachable even
        when its name is a built-in's."""
        # "module:attr [extra1,extra2]": the extras say what to install, not what to import
        attr = self.value.partition(":")[2].partition("[")[0].strip()
        return f"{self.module}.{attr}" if attr else self.module

    @property
    def origin(self) -> str:
        """Where it comes from, in words: ``"nas-hillclimb 0.1.0 (nas_hillclimb:HillClimber)"``."""
        who = f"{self.distribution} {self.version}" if self.distribution else "an unnamed distribution"
        return f"{who} ({self.value})"

    def source(self) -> dict[str, Any]:
        """What a run records about the code: distribution, version and entry point."""
        return {"distribution": self.distribution, "version": self.version,
                "entry_point": f"{self.group}: {self.name} = {self.value}"}

    def load(self) -> Any:
        """Import the module and return the object; any failure is one :class:`PluginError`
        line (the plugin's own traceback helps its author, not the user of the CLI)."""
        kind = self.group.rpartition(".")[2].rstrip("s")
        if not NAME.match(self.name):
            raise PluginError(f"plugin {kind} {self.name!r} from {self.origin}: not a usable name "
                              "(letters, digits, '_' and '-' only); reach it as " + self.import_path)
        try:
            return import_object(self.import_path, strict_module=self.module)
        except Exception as exc:  # noqa: BLE001 -- whatever a plugin's import raises is its failure
            raise PluginError(f"plugin {kind} {self.name!r} from {self.origin} cannot be loaded: "
                              f"{one_line(exc)}") from None


def one_line(exc: BaseException) -> str:
    """``Type: message`` on one line (a message with line breaks is joined)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@lru_cache(maxsize=None)
def _discover(group: str) -> tuple[Plugin, ...]:
    seen: set[tuple[str, str, str | None]] = set()
    out = []
    for ep in metadata.entry_points(group=group):
        dist = getattr(ep, "dist", None)
        dname = dist.metadata["Name"] if dist is not None else None
        key = (ep.name, ep.value, dname)
        if key in seen:       # one distribution found twice on sys.path (e.g. an editable install)
            continue
        seen.add(key)
        out.append(Plugin(group, ep.name, ep.value, dname, dist.version if dist is not None else None))
    return tuple(sorted(out, key=lambda p: (p.name, p.distribution or "")))


def discover(group: str) -> dict[str, list[Plugin]]:
    """Installed plugins of ``group`` by name (a list: two packages may claim one name).
    Reads metadata only; cached per process (:func:`refresh` forgets it)."""
    out: dict[str, list[Plugin]] = {}
    for p in _discover(group):
        out.setdefault(p.name, []).append(p)
    return out


def refresh() -> None:
    """Forget what :func:`discover` found (after installing a package in this process)."""
    _discover.cache_clear()
    _packages_distributions.cache_clear()
    importlib.invalidate_caches()


def find(group: str, name: str) -> Plugin | None:
    """The plugin called ``name`` in ``group``, None if there is none; two packages claiming
    the name is a :class:`PluginError` naming both."""
    found = discover(group).get(name, [])
    if len(found) > 1:
        kind = group.rpartition(".")[2].rstrip("s")
        raise PluginError(f"plugin {kind} name {name!r} is claimed by {' and '.join(p.origin for p in found)}; "
                          f"name one by its import path ({', '.join(p.import_path for p in found)})")
    return found[0] if found else None


def is_import_path(name: str) -> bool:
    """Whether a name is a dotted import path: two or more Python identifiers joined by dots
    (no registry name contains a dot; ``../x`` is no path, just an unknown name)."""
    parts = name.split(".")
    return len(parts) > 1 and all(p.isidentifier() for p in parts)


def import_object(path: str, strict_module: str | None = None) -> Any:
    """The object a dotted path names: ``pkg.module.Class`` (or ``pkg.module.Outer.Inner``).

    The module is the longest prefix that imports; a module that exists but fails to import
    (a missing dependency, a syntax error) raises its own error instead of being taken for
    an attribute. ``strict_module``: the module part is known (an entry point's ``module``),
    so no prefix is guessed.
    """
    parts = path.split(".")
    if not all(p.isidentifier() for p in parts):
        raise ImportError(f"{path!r} is not a dotted import path (package.module.Object)")
    cuts = [len(strict_module.split("."))] if strict_module else range(len(parts) - 1, 0, -1)
    last: Exception | None = None
    for cut in cuts:
        module_name = ".".join(parts[:cut])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # only "this very module does not exist" means: try a shorter prefix
            if exc.name is not None and module_name != exc.name and not module_name.startswith(exc.name + "."):
                raise
            last = exc
            continue
        for attr in parts[cut:]:
            try:
                obj = getattr(obj, attr)
            except AttributeError:
                raise ImportError(f"module {module_name} has no {'.'.join(parts[cut:])}") from None
        return obj
    raise last if last is not None else ImportError(f"cannot import {path!r}")


def module_source(obj: Any) -> dict[str, Any]:
    """Where the code of ``obj`` (a class or function) comes from: the installed
    distribution that provides its top-level package, with its version; for a module that
    no distribution provides (a file on ``PYTHONPATH``), the SHA-256 of the module's file,
    which names that code as exactly as a version would."""
    module_name = getattr(obj, "__module__", None) or ""
    top = module_name.partition(".")[0]
    out: dict[str, Any] = {"import_path": f"{module_name}.{getattr(obj, '__qualname__', '')}"}
    # a package that declares plugins: its entry points name its distribution even where the
    # installed files do not (an editable install lists no package files); the plugin that
    # names this very object first, then one from the same top-level package
    declared = [p for group in GROUPS.values() for p in _discover(group) if p.distribution]
    for p in sorted(declared, key=lambda p: p.import_path != out["import_path"]):
        if p.module.partition(".")[0] == top:
            return {**out, "distribution": p.distribution, "version": p.version}
    dists = _packages_distributions().get(top, [])
    if dists:
        return {**out, "distribution": dists[0], "version": metadata.version(dists[0])}
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if path:
        try:
            with open(path, "rb") as fh:
                out["module_sha256"] = hashlib.sha256(fh.read()).hexdigest()
        except OSError:
            pass
    return {**out, "distribution": None, "version": None}


@lru_cache(maxsize=1)
def _packages_distributions() -> dict[str, list[str]]:
    return metadata.packages_distributions()


def warn(message: str) -> None:
    """The one line a broken plugin gets where the command goes on without it."""
    print(f"nas-harness: warning: {message}", file=sys.stderr)
