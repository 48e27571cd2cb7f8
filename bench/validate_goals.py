"""The two goals of `rpcd validate`, measured for one or more checkouts side by side.

* a 20-connection tree (valid, one connection per file): wall seconds of ``python -m rpcd
  validate`` including interpreter start; goal ≤ 0.3 s;
* 10,000 connections, many per file, about 10 % broken (bench/validate.py's tree): wall and
  CPU seconds of ``rpcd validate`` (its default: one process per CPU) against the floor, a
  process that only reads and parses the same files with ``tomllib``; goal ratio ≤ 2.

Every checkout runs from its own folder (``python -m rpcd`` imports the checkout's rpcd) with
byte-code caching on, in interleaved rounds, so a before/after comparison comes from one run:
``git archive <commit> | tar -x -C /tmp/before`` then
``python bench/validate_goals.py --checkout /tmp/before --checkout . --rounds 5``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from validate import FLOOR, generate

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run(argv: list[str], cwd: Path, cache: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (children included) and exit code of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**ENV, "PYTHONPYCACHEPREFIX": str(cache)},
    )
    _, status, usage = os.wait4(proc.pid, 0)
    return (
        time.perf_counter() - start,
        usage.ru_utime + usage.ru_stime,
        os.waitstatus_to_exitcode(status),
    )


def spread(values: list[float], fmt: str = "{:.3f}") -> str:
    return (
        f"{fmt.format(statistics.median(values))} "
        f"({fmt.format(min(values))}-{fmt.format(max(values))})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--checkout", action="append", type=Path, help="default: this one")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    checkouts = [c.resolve() for c in args.checkout or [Path(__file__).resolve().parent.parent]]
    tmp = Path(tempfile.mkdtemp(prefix="rpcd-goals-"))
    try:
        small, big = tmp / "20", tmp / "10000"
        generate(small, 20, "one-per-file", broken_share=False)
        broken = generate(big, 10_000, "many-per-file")
        floor = [sys.executable, "-c", FLOOR.replace("PARSER", "tomllib"), str(big)]
        programs = {
            (c, name): ([sys.executable, "-m", "rpcd", "validate", str(tree)], c, code)
            for c in checkouts
            for name, tree, code in (("20", small, 0), ("10000", big, 1))
        }
        programs[Path("floor"), "10000"] = (floor, tmp, 0)
        walls: dict[tuple[Path, str], list[float]] = {key: [] for key in programs}
        cpus: dict[tuple[Path, str], list[float]] = {key: [] for key in programs}
        for round_ in range(args.rounds + 1):  # round 0 warms the byte-code caches
            for key, (argv, cwd, expected) in programs.items():
                wall, cpu, code = run(argv, cwd, tmp / f"pycache-{abs(hash(cwd))}")
                assert code == expected, f"{argv} in {cwd} exited {code}, not {expected}"
                if round_:
                    walls[key].append(wall)
                    cpus[key].append(cpu)
        floor_wall, floor_cpu = walls[Path("floor"), "10000"], cpus[Path("floor"), "10000"]
        print(f"## rpcd validate goals: {args.rounds} interleaved rounds, median (min-max)\n")
        print(f"10,000-connection tree: {broken:,} broken connections, many per file.\n")
        print(
            "| checkout | 20 connections s (goal ≤ 0.3) | 10,000 s | tomllib floor s | "
            "ratio (goal ≤ 2) | 10,000 CPU s | floor CPU s | CPU ratio |"
        )
        print("| --- " * 8 + "|")
        for c in checkouts:
            big_wall, big_cpu = walls[c, "10000"], cpus[c, "10000"]
            ratio = [a / b for a, b in zip(big_wall, floor_wall, strict=True)]
            cpu_ratio = [a / b for a, b in zip(big_cpu, floor_cpu, strict=True)]
            print(
                f"| {c} | {spread(walls[c, '20'])} | {spread(big_wall)} | "
                f"{spread(floor_wall)} | {spread(ratio, '{:.2f}')} | {spread(big_cpu)} | "
                f"{spread(floor_cpu)} | {spread(cpu_ratio, '{:.2f}')} |"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
