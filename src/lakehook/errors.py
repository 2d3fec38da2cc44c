"""Errors shared across lakehook's parts."""

from __future__ import annotations


class LakehookError(RuntimeError):
    """Base of lakehook's own errors."""


class ConfigurationError(LakehookError):
    """The settings cannot serve what was asked (e.g. a provider route without a secret)."""


class MissingExtraError(LakehookError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, what: str, extra: str) -> None:
        super().__init__(f"{what} needs the '{extra}' extra: pip install 'lakehook[{extra}]'")
