"""The third-party packages of the ``[controller]`` extra are optional: a
board-only install (``pip install 'edgebench[onnx]'``) runs the controller's
local commands without them. Each is looked up here, never imported at
startup, and a command that cannot do without one says so in one line."""

from __future__ import annotations

import importlib.util

from agent.errors import BadInput

INSTALL_HINT = "pip install 'edgebench[controller]'"
# the import names of the [controller] and [postgres] extras (pyproject.toml)
CONTROLLER_PACKAGES = frozenset(
    {"sqlalchemy", "rich", "matplotlib", "platformdirs", "onnx", "flatbuffers", "psycopg", "pycocotools"}
)


def have(module: str) -> bool:
    """True when the third-party ``module`` can be imported (it is not imported here)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a broken install
        return False


def need(module: str, what: str) -> None:
    """BadInput (exit 2, one line) when ``module`` is missing: ``what`` needs it."""
    if not have(module):
        raise BadInput(f"{what} needs {module}, not installed here: {INSTALL_HINT}")
