"""Optional dependencies: which extra brings which module, and a clear message when one is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from bsarec.errors import MissingExtra

EXTRAS = {
    "serve": ("fastapi", "uvicorn", "prometheus_client"),
    "export": ("onnx", "onnxruntime", "onnxscript"),
    "analysis": ("matplotlib", "optuna"),
    "track": ("tensorboard", "mlflow"),
}


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import `module`, or raise MissingExtra naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(
            f"{purpose} needs {module.split('.')[0]}, which is not installed: pip install 'bsarec[{extra}]'"
            " (or 'bsarec[all]')"
        ) from None


def require_extra(extra: str, purpose: str) -> None:
    """Check that every module of `extra` imports."""
    for module in EXTRAS[extra]:
        require(module, extra, purpose)
