"""Memory for ``rpcd serve``: glibc malloc tuning, and the catalog out of the collector's sight.

With glibc's defaults, a request that builds and drops a big parse tree (a 10,000-int array,
a 50-member struct: lxml's tree, the params, the encoded answer) frees enough at the top of
the heap for ``free`` to give it back to the kernel (the trim threshold, 128 KiB), and
allocations from 128 KiB up are separate ``mmap``s unmapped again on ``free``; the next
request faults the same pages back in, zero-filled. Measured (one thread, decoding the
10,000-int call on the lxml path and encoding the answer, 150 rounds, medians): 1,316 page
faults and 11.6 ms a round with glibc's defaults, 10 faults and 9.0 ms tuned. In the daemon
under wrk the effect depends on the heap's layout (what else sits at the top): with an older
codec the sum call went from 72 to 168 requests/s; with the current one (flat documents skip
lxml) there were no page faults per request either way and the difference was in the noise.

``tune_malloc`` calls ``mallopt`` once at start-up:

- ``M_TRIM_THRESHOLD`` (setting ``malloc_trim_threshold``): glibc gives the free top of the
  heap back only once it reaches this size (then all of it but a 128 KiB pad), so up to this
  much freed memory stays in the process for the next request. Setting it also switches off
  glibc's dynamic mmap threshold (which otherwise rises after big frees), so
- ``M_MMAP_THRESHOLD`` (setting ``malloc_mmap_threshold``) is raised with it: without that,
  every allocation of 128 KiB or more would be mmapped and unmapped each time (measured:
  the trim threshold alone took the sum call's system time from 35 us to 2.5 ms a request).

The trade: the daemon keeps up to ``malloc_trim_threshold`` bytes of freed heap (per malloc
arena; the handler threads' arenas too) instead of returning them, so its resident size stays
near its high-water mark between bursts. ``release`` (``malloc_trim(0)``) gives back what is
free after loading a catalog and after each reload swap, whose build garbage would otherwise
be kept.

``settle`` runs after the catalog is loaded and after each reload swap: a collection (the
build's cyclic garbage), then ``gc.freeze()``, then ``release``. Frozen objects are never
scanned again by the cyclic collector: a full collection of the daemon at start-up (59,000
objects: the catalog, pydantic models, aiohttp, lxml) took 53 ms, a stall of every request
in flight, and about 0 ms frozen. A replaced catalog is still freed by reference counting
(checked: dropping a loaded catalog leaves no cyclic garbage). On a reload the collection
runs on the event loop and stalls it once, about as long as one full collection (tens of ms
for the example tree): the same pause the collector would take later anyway, taken once.
The hot paths barely collect at all (0 to 5 gen-0 collections per 10,000 add, echo or sum
calls under wrk: a request's containers die before the next allocation count is reached),
so the gen-0 threshold is left at 700: raising it measured no difference.

Only on glibc (``gnu_get_libc_version`` present): elsewhere (musl, macOS) these are no-ops.
``M_ARENA_MAX`` was measured too (2 arenas for the 8 handler threads) and did not pay beyond
the noise, so it is left to glibc (``MALLOC_ARENA_MAX`` in the environment still works).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
from functools import cache
from typing import Any

__all__ = [
    "MAX_MMAP_THRESHOLD",
    "M_MMAP_THRESHOLD",
    "M_TRIM_THRESHOLD",
    "release",
    "settle",
    "tune_malloc",
]

log = logging.getLogger("rpcd.server")

#: glibc's ``mallopt`` parameter numbers (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: glibc refuses an mmap threshold above HEAP_MAX_SIZE / 2: 32 MiB on 64-bit.
MAX_MMAP_THRESHOLD = 32 * 1024 * 1024


@cache
def _glibc() -> Any | None:
    """The C library when it is glibc, else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.malloc_trim.restype = ctypes.c_int
    return libc


def tune_malloc(trim_threshold: int, mmap_threshold: int) -> bool:
    """Set glibc's trim and mmap thresholds (0 leaves each as glibc has it). True if glibc
    took every non-zero one; False on another libc or when ``mallopt`` refused."""
    if not trim_threshold and not mmap_threshold:
        return True
    libc = _glibc()
    if libc is None:
        log.debug("not glibc: malloc tuning skipped")
        return False
    ok = True
    for param, value in ((M_TRIM_THRESHOLD, trim_threshold), (M_MMAP_THRESHOLD, mmap_threshold)):
        if value and libc.mallopt(param, min(value, 2**31 - 1)) != 1:
            log.warning("mallopt(%d, %d) refused: glibc's default kept", param, value)
            ok = False
    return ok


def release() -> None:
    """Give the heap's free memory back to the kernel now (glibc's ``malloc_trim(0)``)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def settle() -> None:
    """After a catalog load or swap: collect, freeze what is left (``gc.freeze``), and give the
    heap's free memory back (``release``)."""
    gc.collect()
    gc.freeze()
    release()
