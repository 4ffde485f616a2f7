"""Placeholder."""

from collections.abc import Callable
from typing import Any


def operations(context: Callable[[], Any]) -> list[Any]:
    return []
