"""What each XML-RPC signature type accepts as a param: one check per declared type.

``loading.build_methods`` turns a method's declared ``signature`` into a tuple of these checks
once per catalog, so the dispatcher's per-call check is a loop over ready functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

__all__ = ["TYPE_CHECKS", "param_checks"]

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
