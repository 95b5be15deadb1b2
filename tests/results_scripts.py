"""Import a stand-alone script of results/ (they are not a package) so its functions can be tested."""

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_results_script(relative: str, name: str) -> ModuleType:
    """The module at ``results/<relative>``, imported under ``name``."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "results" / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
