"""What each XML-RPC signature type accepts as a param: one check per declared type.

``loading.build_methods`` turns a method's declared ``signature`` into a tuple of these checks
once per catalog, so the dispatcher's per-call check is a loop over ready functions.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

__all__ = ["TYPE_CHECKS", "TYPICAL_TYPES", "arity", "param_checks", "param_types"]

Check = Callable[[Any], bool]

TYPE_CHECKS: dict[str, Check] = {
    "int": lambda v: type(v) is int,
    "i4": lambda v: type(v) is int,
    "i8": lambda v: type(v) is int,
    "boolean": lambda v: type(v) is bool,
    "string": lambda v: isinstance(v, str),
    "double": lambda v: type(v) in (float, int),
    # JSON has no date or bytes type: the JSON codec hands them over as strings.
    "dateTime.iso8601": lambda v: isinstance(v, datetime | str),
    "base64": lambda v: isinstance(v, bytes | str),
    "struct": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "nil": lambda v: v is None,
}


def param_checks(signature: Sequence[str] | None) -> tuple[Check, ...] | None:
    """The checks of a declared ``[return, param...]`` signature's params (None: undeclared)."""
    if signature is None:
        return None
    return tuple(TYPE_CHECKS[kind] for kind in signature[1:])


#: The type a codec hands over for each signature type (what the check always accepts): a
#: call whose params have exactly these types fits without running the checks.
TYPICAL_TYPES: dict[str, type] = {
    "int": int,
    "i4": int,
    "i8": int,
    "boolean": bool,
    "string": str,
    "double": float,
    "dateTime.iso8601": datetime,
    "base64": bytes,
    "struct": dict,
    "array": list,
    "nil": type(None),
}


def param_types(signature: Sequence[str] | None) -> tuple[type, ...] | None:
    """The typical param types of a declared signature (None: undeclared).

    ``dispatch.check_signature``'s shortcut: ``tuple(map(type, params)) == types`` is one C
    loop where the checks are a Python call per param; any other params (a subclass, an int
    for a double, a string for a date) still go through the checks."""
    if signature is None:
        return None
    return tuple(TYPICAL_TYPES[kind] for kind in signature[1:])


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def arity(sig: inspect.Signature | None) -> tuple[int, int] | None:
    """``(least, most)`` positional params a function takes (``most`` is a large number with
    ``*args``), or None when ``sig.bind(*params)`` is not just a count (a required
    keyword-only param: then nothing binds) or there is no signature.

    For a method without a declared signature the dispatcher checks the count against these
    instead of ``Signature.bind`` (a Python-level bind per call):
    ``least <= len(params) <= most`` is exactly when ``bind(*params)`` succeeds.
    """
    if sig is None:
        return None
    least = most = 0
    for param in sig.parameters.values():
        if param.kind in _POSITIONAL:
            most += 1
            if param.default is inspect.Parameter.empty:
                least += 1
        elif param.kind is inspect.Parameter.VAR_POSITIONAL:
            most = 1 << 62
        elif (
            param.kind is inspect.Parameter.KEYWORD_ONLY
            and param.default is inspect.Parameter.empty
        ):
            return None
    return least, most
