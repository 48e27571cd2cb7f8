"""Run every benchmark script in bench/ in a fixed order and print their tables (``make bench``).

Scripts listed in ORDER run first, in that order; any other ``bench/*.py`` follows, sorted by
name, so a new benchmark is picked up without editing this file. A failing script is reported
and the others still run; the exit code is 1 if any failed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["validate.py", "codec.py", "serve.py"]
SKIP = {"run_all.py", "__init__.py"}


def scripts() -> list[Path]:
    found = {
        p.name: p for p in HERE.glob("*.py") if p.name not in SKIP and not p.name.startswith("_")
    }
    first = [found.pop(name) for name in ORDER if name in found]
    return first + [found[name] for name in sorted(found)]


def main() -> int:
    failed = []
    for script in scripts():
        print(f"\n# bench/{script.name}\n", flush=True)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, str(script)], cwd=HERE.parent, check=False)
        print(
            f"\n(bench/{script.name}: {time.perf_counter() - start:.0f} s, exit {done.returncode})",
            flush=True,
        )
        if done.returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
