"""Argument types shared by the argparse commands (``omar collect``, ``omar datasets``, ``omar evaluate``)."""

from __future__ import annotations

import argparse
from typing import Any


def positive_int(text: str) -> int:
    """An integer >= 1 (``1_000_000`` accepted); argparse's one-line error otherwise."""
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def key_values(items: list[str] | None, option: str = "--env-kwarg") -> dict[str, Any]:
    """``KEY=VALUE`` items (``option``, given several times) as a dict, each value read as YAML."""
    import yaml

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"{option} takes KEY=VALUE, got {item!r}")
        out[key] = yaml.safe_load(value)
    return out
