"""Figures for the analyses and the tuner: a headless pyplot and an atomic PNG writer."""

from __future__ import annotations

from pathlib import Path

from bsarec.extras import require


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    matplotlib = require("matplotlib", "analysis", "figures")
    matplotlib.use("Agg")
    plt = require("matplotlib.pyplot", "analysis", "figures")

    return plt


def save_figure(fig, path: Path) -> Path:
    """Write `fig` as PNG through a temporary file and a rename, then close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    pyplot().close(fig)
    tmp.replace(path)
    return path
