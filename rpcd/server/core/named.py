"""JSON-RPC by-name params: an object mapped onto a method's declared parameter names.

A method declares the names of its params in ``services.d`` (``params = ["first", "last"]``,
one per parameter type of ``signature``); a call may then send ``"params": {"first": …,
"last": …}``. The object becomes the positional list in the declared order, and the usual
signature check runs on it. An empty object is no params at all, like ``[]``. Otherwise a
method without declared names, an unknown name, or a gap (a later name given while an
earlier one is missing) is -32602.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rpcd.errors import INVALID_PARAMS, Fault
from rpcd.server.core.loading import MethodEntry

__all__ = ["by_name"]


def _shown(names: Any) -> str:
    listed = ", ".join(str(n)[:40] for n in list(names)[:10])
    return listed + (", ..." if len(names) > 10 else "")


def by_name(entry: MethodEntry, params: Mapping[str, Any]) -> list[Any]:
    """``params`` in the order of ``entry``'s declared names; -32602 when they do not fit."""
    names = entry.method.params
    if not params:
        return []  # ``{}``: no params, like ``[]`` (a function that takes none)
    if names is None:
        raise Fault(
            INVALID_PARAMS,
            f"{entry.name} takes its params as an array: it declares no parameter names "
            "(services.d: params = [...])",
        )
    unknown = [key for key in params if key not in names]
    if unknown:
        raise Fault(
            INVALID_PARAMS,
            f"{entry.name} has no param named {_shown(unknown)}; its params are "
            f"{_shown(names) or 'none'}",
        )
    values: list[Any] = []
    for i, name in enumerate(names):
        if name not in params:
            later = [n for n in names[i + 1 :] if n in params]
            if later:
                raise Fault(
                    INVALID_PARAMS, f"{entry.name}: param {name!r} is missing (before {later[0]!r})"
                )
            break
        values.append(params[name])
    return values
