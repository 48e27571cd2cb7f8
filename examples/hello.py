"""Handlers published by services.d/hello.toml: plain functions, sync or async."""

from __future__ import annotations

import asyncio
from typing import Any

from rpcd.errors import Fault


def hello_world(first_name: str, surname: str) -> str:
    return f"Hello, {first_name} {surname}!"


def add(a: int, b: int) -> int:
    return a + b


def echo(value: Any) -> Any:
    return value


def total(numbers: list[float]) -> float:
    if not all(isinstance(n, int | float) and not isinstance(n, bool) for n in numbers):
        raise Fault(4001, "sum takes an array of numbers")
    return float(sum(numbers))


async def slow_echo(seconds: float, value: Any = None) -> Any:
    await asyncio.sleep(min(float(seconds), 60.0))
    return value


def people_count() -> int:
    return 42
