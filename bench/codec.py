"""Micro benchmark of the XML-RPC codec against the standard library (and defusedxml).

Run: ``.venv/bin/python bench/codec.py`` (about 25 s). Prints, per payload, the best-of-N CPU
time (``time.process_time``, steadier than wall time on a shared machine) of each direction
the daemon and the client use, in µs, and the ratio to the stdlib (``< 1`` is faster), then
the server's share per request (loads of the call + dumps of the response). "rpcd" is the
public function (these payloads all take the lxml-free fast path of
``rpcd/codecs/_xmlrpc_fast.py``); "lxml path only" is the general path every other document
takes. A second table measures the parser alternatives considered for
``rpcd/codecs/xmlrpc.py`` on the 10,000-int array.
"""

from __future__ import annotations

import pyexpat
import sys
import time
import timeit
import xmlrpc.client as xc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from defusedxml.xmlrpc import DefusedExpatParser
from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rpcd.codecs import xmlrpc as ours

REPEAT = 5
TARGET_SECONDS = 0.08  # per repeat


def best_us(fn: Callable[[], Any]) -> float:
    """Best time per call in µs: calibrate ``number`` to ~TARGET_SECONDS, take the min."""
    timer = timeit.Timer(fn, timer=time.process_time)
    number = 1
    while True:
        if timer.timeit(number) >= TARGET_SECONDS / 4:
            break
        number *= 4
    number = max(1, int(number * (TARGET_SECONDS / max(timer.timeit(number), 1e-9))))
    return min(timer.repeat(REPEAT, number)) / number * 1e6


def stdlib_loads(data: bytes) -> Any:
    return xc.loads(data, use_builtin_types=True)


def defused_loads(data: bytes) -> Any:
    """The stdlib unmarshaller behind defusedxml's expat parser (what monkey_patch installs)."""
    target = xc.Unmarshaller(use_builtin_types=True)
    parser = DefusedExpatParser(target)
    parser.feed(data)
    parser.close()
    return target.close(), target.getmethodname()


def stdlib_dumps(value: Any) -> bytes:
    return xc.dumps((value,), methodresponse=True, allow_none=True).encode("utf-8")


PAYLOADS: dict[str, tuple[str, list[Any]]] = {
    "add(2 ints)": ("calc.add", [2, 3]),
    "struct(50)": (
        "echo.struct",
        [{f"field_{i}": (i if i % 3 else f"value {i} & <more>") for i in range(50)}],
    ),
    "array(10k int)": ("echo.array", [list(range(10_000))]),
}


def stdlib_dumps_call(method: str, params: list[Any]) -> bytes:
    return xc.dumps(tuple(params), method, allow_none=True).encode("utf-8")


def main() -> None:
    rows: list[tuple[str, str, str, float, float]] = []
    server: list[tuple[str, float, float]] = []
    for name, (method, params) in PAYLOADS.items():
        value = params[0] if len(params) == 1 else params
        call = xc.dumps(tuple(params), method).encode()
        response = xc.dumps((value,), methodresponse=True).encode()
        assert ours.loads_call(call) == (method, params)
        assert ours.loads_response(response) == value

        base = best_us(lambda call=call: stdlib_loads(call))  # type: ignore[misc]
        rows.append((name, "loads call", "stdlib xmlrpc.client", base, 1.0))
        t = best_us(lambda call=call: defused_loads(call))  # type: ignore[misc]
        rows.append((name, "loads call", "stdlib + defusedxml", t, t / base))
        t = best_us(lambda call=call: ours.loads_call(call))  # type: ignore[misc]
        rows.append((name, "loads call", "rpcd", t, t / base))
        server_base, server_ours = base, t
        t = best_us(lambda call=call: ours._loads_call_tree(call, 64))  # type: ignore[misc]
        rows.append((name, "loads call", "rpcd, lxml path only", t, t / base))

        base = best_us(lambda v=value: stdlib_dumps(v))  # type: ignore[misc]
        rows.append((name, "dumps response", "stdlib xmlrpc.client", base, 1.0))
        t = best_us(lambda v=value: ours.dumps_response(v))  # type: ignore[misc]
        rows.append((name, "dumps response", "rpcd", t, t / base))
        server.append((name, server_base + base, server_ours + t))

        base = best_us(lambda r=response: stdlib_loads(r))  # type: ignore[misc]
        rows.append((name, "loads response", "stdlib xmlrpc.client", base, 1.0))
        t = best_us(lambda r=response: ours.loads_response(r))  # type: ignore[misc]
        rows.append((name, "loads response", "rpcd", t, t / base))
        t = best_us(lambda r=response: ours._loads_response_tree(r, 64))  # type: ignore[misc]
        rows.append((name, "loads response", "rpcd, lxml path only", t, t / base))

        base = best_us(lambda m=method, p=params: stdlib_dumps_call(m, p))  # type: ignore[misc]
        rows.append((name, "dumps call", "stdlib xmlrpc.client", base, 1.0))
        t = best_us(lambda m=method, p=params: ours.dumps_call(m, p))  # type: ignore[misc]
        rows.append((name, "dumps call", "rpcd", t, t / base))

    print(f"{'payload':<16} {'operation':<15} {'implementation':<22} {'µs':>10} {'ratio':>7}")
    print("-" * 74)
    last = ""
    for payload, op, impl, us, ratio in rows:
        shown = payload if payload != last else ""
        last = payload
        print(f"{shown:<16} {op:<15} {impl:<22} {us:>10.1f} {ratio:>7.2f}")

    print()
    print("server share per request (loads call + dumps response):")
    for payload, stdlib_us, ours_us in server:
        print(
            f"  {payload:<16} stdlib {stdlib_us:>10.1f} µs   rpcd {ours_us:>10.1f} µs"
            f"   ratio {ours_us / stdlib_us:.2f}"
        )

    print()
    print("parser alternatives, 10,000-int array call (lower bounds unless 'full'):")
    big = xc.dumps((list(range(10_000)),), "echo.array").encode()
    parser = ours._parser()

    def feed_close(data: bytes) -> Any:
        parser.feed(data)
        return parser.close()

    def expat_noop() -> None:
        p = pyexpat.ParserCreate()
        p.buffer_text = True
        p.StartElementHandler = lambda tag, attrs: None
        p.EndElementHandler = lambda tag: None
        p.CharacterDataHandler = lambda text: None
        p.Parse(big, True)

    def expat_ints() -> list[int]:
        out: list[int] = []
        buf: list[str] = []
        p = pyexpat.ParserCreate()
        p.buffer_text = True

        def end(tag: str) -> None:
            if tag == "int":
                out.append(int("".join(buf)))
            buf.clear()

        p.StartElementHandler = lambda tag, attrs: buf.clear()
        p.EndElementHandler = end
        p.CharacterDataHandler = buf.append
        p.Parse(big, True)
        return out

    def lxml_iterparse() -> int:
        import io

        n = 0
        for _event, _el in etree.iterparse(
            io.BytesIO(big), events=("start", "end"), resolve_entities=False, no_network=True
        ):
            n += 1
        return n

    alternatives: list[tuple[str, Callable[[], Any]]] = [
        ("stdlib expat + Unmarshaller (full)", lambda: stdlib_loads(big)),
        ("expat, no-op handlers", expat_noop),
        ("expat, minimal int handlers (full)", expat_ints),
        ("lxml iterparse start/end, no work", lxml_iterparse),
        ("lxml fromstring only (tree build)", lambda: etree.fromstring(big, parser)),
        ("lxml feed + close (reused parser)", lambda: feed_close(big)),
        ("lxml feed + close + walk (full)", lambda: ours._loads_call_tree(big, 64)),
        ("rpcd fast path, no lxml (full)", lambda: ours.loads_call(big)),
    ]
    base = 0.0
    for label, fn in alternatives:
        t = best_us(fn)
        base = base or t
        print(f"  {label:<40} {t:>10.1f} µs {t / base:>6.2f}")


if __name__ == "__main__":
    main()
