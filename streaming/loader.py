"""Import user code named in a config or on the command line: ``package.module:Name``."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any


def import_object(path: str) -> Any:
    """``pkg.mod:attr`` or ``pkg.mod.attr``; a module not installed is looked up under the
    current directory too (as uvicorn and gunicorn do), so a clone's ``examples/`` works
    without PYTHONPATH. Failures are ``ValueError`` naming the path."""
    if ":" in path:
        module_name, _, attr = path.partition(":")
    else:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"import path {path!r} must look like 'package.module:Name'")
    try:
        obj: Any = _import(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r} for {path!r}: {exc}") from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ValueError(f"{module_name!r} has no {attr!r} (from {path!r})") from None
    return obj


def _import(module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        top = module_name.split(".")[0]
        cwd = os.getcwd()
        if exc.name not in (top, module_name) and not module_name.startswith(f"{exc.name}."):
            raise  # the module exists but one of its own imports is missing
        if cwd in sys.path or not os.path.exists(os.path.join(cwd, top)) and \
                not os.path.exists(os.path.join(cwd, f"{top}.py")):
            raise
        sys.path.append(cwd)
        return importlib.import_module(module_name)
