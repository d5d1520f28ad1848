"""Installed package versions, recorded in every result's protocol."""

from __future__ import annotations

import importlib.metadata


def package_version(dist: str, missing: str | None = "unknown") -> str | None:
    """The installed version of distribution `dist`, or `missing` when it is not installed."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return missing
