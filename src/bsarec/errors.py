"""Errors that carry the place (file, line, field) and what was expected."""

from __future__ import annotations


class DataError(ValueError):
    """Malformed or unusable input data; the message names the file, line or field."""


class ConfigError(ValueError):
    """An unknown or badly typed setting."""


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class NonFiniteError(ArithmeticError):
    """A training loss, weights or scores that are NaN or infinite: a diverged run or damaged weights. Metrics
    computed from them would be meaningless (NaN scores rank every target first), so they are refused."""
