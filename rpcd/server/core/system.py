"""The ``system.*`` methods: introspection, multicall, capabilities, services, sessions.

Introspection only ever shows what the caller may call: a method it may not call is
indistinguishable from one that does not exist (-32601).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rpcd.errors import INVALID_PARAMS, INVALID_REQUEST, Fault
from rpcd.server.core import grants
from rpcd.server.core.auth import AuthRequired
from rpcd.server.core.budget import check_budget
from rpcd.server.core.calls import ANONYMOUS_METHODS, CallState, allowed, canonical, not_found
from rpcd.server.core.loading import MethodEntry

if TYPE_CHECKING:
    from rpcd.server.core.dispatch import Dispatcher

__all__ = ["CAPABILITIES", "SYSTEM_METHODS", "SystemMethod"]

SystemFunc = Callable[["Dispatcher", CallState, list[Any]], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class SystemMethod:
    func: SystemFunc
    help: str
    signatures: tuple[tuple[str, ...], ...]


CAPABILITIES: dict[str, dict[str, Any]] = {
    "faults_interop": {
        "specUrl": "http://xmlrpc-epi.sourceforge.net/specs/rfc.fault_codes.php",
        "specVersion": 20010516,
    },
    "introspection": {
        "specUrl": "http://xmlrpc-c.sourceforge.net/introspection.html",
        "specVersion": 1,
    },
    "multicall": {"specUrl": "http://www.xmlrpc.com/discuss/msgReader$1208", "specVersion": 1},
    "nil": {"specUrl": "http://ontosys.com/xml-rpc/extensions.php", "specVersion": 20010518},
    "i8": {"specUrl": "http://ws.apache.org/xmlrpc/types.html", "specVersion": 1},
    "json-rpc": {"specUrl": "https://www.jsonrpc.org/specification", "specVersion": 2},
}


def _params(name: str, params: list[Any], *kinds: type) -> None:
    if len(params) != len(kinds) or not all(
        isinstance(p, k) for p, k in zip(params, kinds, strict=True)
    ):
        shown = ", ".join(k.__name__ for k in kinds) or "no params"
        raise Fault(INVALID_PARAMS, f"{name} takes {shown}")


def _visible(ctx: CallState) -> list[str]:
    """Every method name the caller may call, sorted."""
    published = sorted(n for n, e in ctx.loaded.methods.items() if allowed(ctx, e))
    if ctx.principal is None:
        return published + sorted(ANONYMOUS_METHODS)
    return published + sorted(SYSTEM_METHODS)


def _entry(ctx: CallState, name: str) -> MethodEntry | SystemMethod:
    name = canonical(name)
    if name in SYSTEM_METHODS and (ctx.principal is not None or name in ANONYMOUS_METHODS):
        return SYSTEM_METHODS[name]
    entry = ctx.loaded.methods.get(name)
    if entry is None or not allowed(ctx, entry):
        raise not_found(name)
    return entry


async def list_methods(d: Dispatcher, ctx: CallState, params: list[Any]) -> Any:
    _params("system.listMethods", params)
    return _visible(ctx)


async def method_help(d: Dispatcher, ctx: CallState, params: list[Any]) -> Any:
    _params("system.methodHelp", params, str)
    entry = _entry(ctx, params[0])
    return entry.help if isinstance(entry, SystemMethod) else entry.method.help


async def method_signature(d: Dispatcher, ctx: CallState, params: list[Any]) -> Any:
    """A list of signatures ([return, param...]), or "undef" when none is declared."""
    _params("system.methodSignature", params, str)
    entry = _entry(ctx, params[0])
    if isinstance(entry, SystemMethod):
        return [list(s) for s in entry.signatures]
    sig = entry.method.signature
    return [list(sig)] if sig is not None else "undef"


async def get_capabilities(d: Dispatcher, ctx: CallState, params: list[Any]) -> Any:
    _params("system.getCapabilities", params)
    return CAPABILITIES


async def list_services(d: Dispatcher, ctx: CallState, params: list[Any]) -> Any:
    _params("system.listServices", params)
    assert ctx.principal is not None
    peer, acting = ctx.principal.peer, ctx.principal.institutions
    found = []
    for s in sorted(ctx.loaded.catalog.services.values(), key=lambda s: s.name):
        methods = [f"{s.name}.{m.name}" for m in s.method if grants.may_call(peer, s, m, acting)]
        if methods:
            found.append(
                {
                    "name": s.name,
                    "apiversion": s.apiversion,
                    "description": s.description,
                    "methods": methods,
                }
            )
    return found


async def multicall(d: Dispatcher, ctx: CallState, params: list[Any]) -> Any:
    """Each call's result as ``[value]``, each failure as its own fault struct."""
    if ctx.in_multicall:
        raise Fault(INVALID_REQUEST, "system.multicall cannot be nested")
    _params("system.multicall", params, list)
    calls = params[0]
    limit = d.settings.max_multicall
    if len(calls) > limit:
        raise Fault(
            INVALID_REQUEST, f"system.multicall takes at most {limit} calls, got {len(calls)}"
        )
    check_budget((len(calls),), d.settings.max_calls_per_request)  # before any call runs
    inner = ctx.nested()
    results: list[Any] = []
    for call in calls:
        try:
            if not isinstance(call, dict) or not isinstance(call.get("methodName"), str):
                raise Fault(INVALID_REQUEST, "each call is a struct with methodName and params")
            name, args = call["methodName"], call.get("params", [])
            if not isinstance(args, list):
                raise Fault(INVALID_REQUEST, "params of a multicall entry must be an array")
            if canonical(name) == "system.multicall":
                raise Fault(INVALID_REQUEST, "system.multicall cannot be nested")
            results.append([await d.call(inner, name, args)])
        except AuthRequired:
            raise
        except Fault as fault:
            results.append({"faultCode": fault.code, "faultString": fault.message})
    return results


#: eGroupWare's name for its only instance: a ``domain`` that narrows nothing.
DEFAULT_DOMAINS = frozenset({"", "default"})


def _credentials(params: list[Any]) -> tuple[str, str, str | None]:
    domain: Any = None
    if len(params) == 1 and isinstance(params[0], dict):
        user, password = params[0].get("username"), params[0].get("password")
        domain = params[0].get("domain")
    elif len(params) == 2:
        user, password = params
    else:
        user = password = None
    if not isinstance(user, str) or not isinstance(password, str):
        raise Fault(
            INVALID_PARAMS, "system.login takes {username, password[, domain]} or two strings"
        )
    if domain is not None and not isinstance(domain, str):
        raise Fault(INVALID_PARAMS, "system.login: domain is an institution id (a string)")
    return user, password, None if domain in DEFAULT_DOMAINS else domain


async def login(d: Dispatcher, ctx: CallState, params: list[Any]) -> Any:
    """A session for a userpass peer; wrong credentials are HTTP 401 (as in eGroupWare).
    ``domain`` (eGroupWare's) names the one institution the session acts for; one the peer
    does not act for fails like a wrong password."""
    metrics = d.metrics
    try:
        user, password, domain = _credentials(params)
        peer = await d.authenticator.check_password(ctx.loaded.peers, user, password, ctx.request)
        if peer is None or (domain is not None and domain not in peer.institutions):
            raise AuthRequired("login failed")
    except Fault:
        if metrics is not None:
            metrics.login(False)
        raise
    sessions = d.authenticator.sessions
    sessionid, kp3 = sessions.issue(peer.id, domain)
    if metrics is not None:  # rpcd_sessions_active counts this replica's live sessions
        claims = sessions.verify(sessionid, kp3)
        if claims is None:
            metrics.login(True)
        else:
            metrics.login(True, claims.nonce, claims.expires)
    return {"sessionid": sessionid, "kp3": kp3}


async def logout(d: Dispatcher, ctx: CallState, params: list[Any]) -> Any:
    """Ends the session given as params ({sessionid, kp3}), else the caller's own session."""
    assert ctx.principal is not None
    claims = ctx.principal.session
    if params:
        arg = params[0] if len(params) == 1 else None
        sid = arg.get("sessionid") if isinstance(arg, dict) else None
        kp3 = arg.get("kp3") if isinstance(arg, dict) else None
        if not isinstance(sid, str) or not isinstance(kp3, str):
            raise Fault(INVALID_PARAMS, "system.logout takes no params or {sessionid, kp3}")
        given = d.authenticator.check_session(ctx.loaded.peers, sid, kp3)
        if given is None or given.peer.id != ctx.principal.peer.id:
            raise Fault(INVALID_PARAMS, "no such session")
        claims = given.session
    if claims is None:
        raise Fault(INVALID_PARAMS, "not logged in with a session")
    d.authenticator.sessions.revoke(claims)
    if d.metrics is not None:
        d.metrics.logout(claims.nonce)
    return {"GOODBYE": "XOXO"}


SYSTEM_METHODS: dict[str, SystemMethod] = {
    "system.listMethods": SystemMethod(
        list_methods, "Lists the methods you may call.", (("array",),)
    ),
    "system.methodHelp": SystemMethod(
        method_help, "Returns the help text of a method.", (("string", "string"),)
    ),
    "system.methodSignature": SystemMethod(
        method_signature,
        'Returns the signatures of a method ([return type, param types...]) or "undef".',
        (("array", "string"),),
    ),
    "system.multicall": SystemMethod(
        multicall,
        "Runs several calls in one request; each result is [value] or a fault struct.",
        (("array", "array"),),
    ),
    "system.getCapabilities": SystemMethod(
        get_capabilities, "Lists the specifications this server implements.", (("struct",),)
    ),
    "system.listServices": SystemMethod(
        list_services, "Lists the services you may call: name, apiversion, methods.", (("array",),)
    ),
    "system.login": SystemMethod(
        login,
        "Starts a session: {username, password[, domain]} -> {sessionid, kp3}; send "
        "Basic base64(sessionid:kp3) (or the cookies it sets) on later calls. domain "
        "narrows the session to one of your institutions.",
        (("struct", "struct"), ("struct", "string", "string")),
    ),
    "system.logout": SystemMethod(
        logout,
        "Ends a session (yours, or the {sessionid, kp3} given).",
        (("struct",), ("struct", "struct")),
    ),
}
