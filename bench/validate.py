"""How fast is `rpcd validate`, beside the floor of reading and parsing the same files?

Generates config trees of 1,000 and 10,000 connections (REST / XML-RPC / SOAP, every auth,
100 classes, up to 100 institutions, about 10 % of the connections broken in some realistic way),
in two layouts: one connection per file (under ``connections.d/<institution>/``) and many per
file (one file per class). For each tree, in interleaved rounds:

* ``rpcd validate`` cold, as a subprocess (what CI runs): seconds, µs per connection, peak RSS
  (``os.wait4`` rusage of that child); it forks one worker per further CPU on a big tree, so
  it also runs as ``rpcd validate -j 1`` (one process);
* the floor: a subprocess of the same interpreter that reads every ``*.toml`` of the tree and
  parses it with ``tomllib`` — nothing else;
* a second floor, the same with compiled ``tomli`` (the parser rpcd uses where installed: the
  upstream of ``tomllib``, mypyc-compiled, about 1.8x faster): rpcd's ratio against the
  ``tomllib`` floor is the goal the issue names, and part of it is the faster parser, so the
  ratio against this floor says how much of rpcd's own work is left;
* the ratios (goal: ≤ 1.5 at 10,000 connections, against the ``tomllib`` floor), in wall time
  and in CPU time (user + system of every process, the workers included: the honest one when
  rpcd uses two CPUs);

then, in process, the catalog rebuild after one file of 10,000 changed (``build(root,
previous=cache)``, goal < 100 ms; also on an all-valid tree, where the catalog is assembled),
the import time of the CLI, and a profile of one cold serial build: where the time goes.

Run: ``python bench/validate.py [--rounds N] [--quick]`` (``make bench`` runs it).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rpcd.config import build, pool  # noqa: E402

TYPES = [("REST", 60), ("XML-RPC", 25), ("SOAP", 15)]
AUTHS = {
    "REST": ["token", "token", "userpass", "oauth1"],
    "XML-RPC": ["userpass", "cert", "token"],
    "SOAP": ["wsse", "wsse", "userpass", "token"],
}
CREDS = {
    "token": ["token"],
    "userpass": ["username", "password"],
    "oauth1": ["consumer_key", "consumer_secret"],
    "wsse": ["username", "password"],
    "cert": ["certificate", "private_key"],
}
N_CLASSES = 100


def secret(rng: random.Random, name: str) -> str:
    form = rng.choice(["env", "file", "credential"])
    # ``name`` starts with the institution: inside its secret scope (rule secret-scope).
    value = {
        "env": name.upper().replace("-", "_"),
        "file": f"/etc/rpcd/secrets/{name.split('-')[0]}/{name}",
        "credential": name,
    }[form]
    return f'{{ {form} = "{value}" }}'


def class_of(i: int) -> tuple[str, str]:
    weights = [t for t, w in TYPES for _ in range(w)]
    return f"app{i % 10}_svc{i}", weights[(i * 37) % len(weights)]


def class_toml(i: int) -> str:
    class_id, kind = class_of(i)
    lines = [
        "[class]",
        f'id = "{class_id}"',
        f'plugin = "app{i % 10}"',
        f'name = "Service {i}"',
        f'fixed = {{ type = "{kind}" }}',
        'probe = { function = "ping" }',
    ]
    if kind == "REST":
        lines.append('function_param = "wsfunction"')
    lines += [
        "",
        "[class.config_fields]",
        'page_size = { type = "integer", help = "page size" }',
        "",
    ]
    return "\n".join(lines)


def connection_toml(
    rng: random.Random, n: int, class_index: int, inst: str, with_class: bool, broken_share: bool
) -> tuple[str, bool]:
    """One [[connection]]; about 10 % are broken (returns whether it is)."""
    class_id, kind = class_of(class_index)
    auth = rng.choice(AUTHS[kind])
    name = f"{inst}-{class_id}"
    fields: list[tuple[str, str]] = [("id", f'"{inst}"')]
    if with_class:
        fields.append(("class", f'"{class_id}"'))
    fields += [
        ("name", f'"{class_id} for {inst}"'),
        ("enabled", rng.choice(["true", "true", "false"])),
        ("priority", str(rng.randint(1, 5))),
        ("institutions", f'["{inst}"]'),
        ("type", f'"{kind}"'),
        ("auth", f'"{auth}"'),
        ("endpoint", f'"https://{inst}.example.org/{kind.lower()}/server.php"'),
        ("timeout", str(rng.choice([10, 15, 30, 60]))),
        (
            "credentials",
            "{ " + ", ".join(f"{k} = {secret(rng, f'{name}-{k}')}" for k in CREDS[auth]) + " }",
        ),
    ]
    if kind == "REST":
        fields += [("parameters", '{ moodlewsrestformat = "json" }'), ("http_method", '"POST"')]
    if kind == "SOAP":
        fields.append(("soap_namespace", f'"urn:{class_id}"'))
    if auth == "cert":
        fields.append(("ca_bundle", '"/etc/rpcd/ca/partner.pem"'))
    fields.append(("config", f"{{ page_size = {rng.choice([20, 50, 100])} }}"))
    broken = broken_share and n % 10 == 7
    if broken:
        how = rng.randrange(6)
        if how == 0:
            fields.append(("prioritty", "2"))  # unknown key
        elif how == 1:
            fields = [
                (
                    k,
                    '"oauth1"'
                    if k == "auth" and kind != "REST"
                    else ('"cert"' if k == "auth" else v),
                )
                for k, v in fields
            ]  # auth not valid for the type
        elif how == 2:
            fields = [
                (k, '{ token = "hunter2-literal" }' if k == "credentials" else v) for k, v in fields
            ]
        elif how == 3:
            fields = [(k, v) for k, v in fields if k != "endpoint"]  # missing key
        elif how == 4:
            fields = [
                (k, '["nowhere"]' if k == "institutions" else v) for k, v in fields
            ]  # unknown inst.
        else:
            fields = [(k, "0" if k == "priority" else v) for k, v in fields]  # out of range
    body = "[[connection]]\n" + "".join(f"{k} = {v}\n" for k, v in fields)
    return body, broken


def generate(root: Path, n: int, layout: str, seed: int = 2, broken_share: bool = True) -> int:
    """Write a tree of ``n`` connections; return how many are broken."""
    rng = random.Random(seed)
    n_inst = -(-n // N_CLASSES)
    institutions = [f"inst{j:03d}" for j in range(n_inst)]
    (root / "connections.d").mkdir(parents=True)
    (root / "services.d").mkdir()
    site = [
        "#:schema ./schemas/v1/rpcd.schema.json",
        "version = 1",
        "",
        "[connections]",
        "enabled = true",
        "",
    ]
    for inst in institutions:
        site += ["[[institution]]", f'id = "{inst}"', f'name = "Institution {inst}"', ""]
    (root / "rpcd.toml").write_text("\n".join(site), encoding="utf-8")
    broken = 0
    per_class: dict[int, list[str]] = {}
    for k in range(n):
        class_index, inst = k % N_CLASSES, institutions[k // N_CLASSES]
        if layout == "one-per-file":
            text, bad = connection_toml(
                rng, k, class_index, inst, with_class=True, broken_share=broken_share
            )
            folder = root / "connections.d" / inst
            folder.mkdir(exist_ok=True)
            (folder / f"{class_of(class_index)[0]}.toml").write_text(
                "#:schema ../../schemas/v1/connections.schema.json\nversion = 1\n\n" + text,
                encoding="utf-8",
            )
        else:
            text, bad = connection_toml(
                rng, k, class_index, inst, with_class=False, broken_share=broken_share
            )
            per_class.setdefault(class_index, []).append(text)
        broken += bad
    for i in range(N_CLASSES):
        head = (
            "#:schema ../schemas/v1/connections.schema.json\nversion = 1\n\n" + class_toml(i) + "\n"
        )
        (root / "connections.d" / f"{class_of(i)[0]}.toml").write_text(
            head + "\n".join(per_class.get(i, [])), encoding="utf-8"
        )
    services = [
        "version = 1",
        "",
        "[service]",
        'name = "directory"',
        'grant = { peers = ["gateway"] }',
        "",
    ]
    for i in range(20):
        services += [
            "[[service.method]]",
            f'name = "lookup{i}"',
            f'proxy = {{ class = "{class_of(i)[0]}", function = "lookup" }}',
            "",
        ]
    services += [
        "[[peer]]",
        'id = "gateway"',
        f'institutions = ["{institutions[0]}"]',
        'auth = "token"',
        f'token_sha256 = "{"ab" * 32}"',
    ]
    (root / "services.d" / "directory.toml").write_text(
        "\n".join(services) + "\n", encoding="utf-8"
    )
    return broken


# --- measuring --------------------------------------------------------------------------------

FLOOR = """
import os, sys, PARSER as tomllib
root = sys.argv[1]
n = 0
for base, dirs, files in os.walk(root):
    dirs.sort()
    for name in sorted(files):
        if name.endswith(".toml"):
            with open(os.path.join(base, name), "rb") as fh:
                tomllib.loads(fh.read().decode("utf-8"))
            n += 1
"""


CPU: dict[tuple[str, ...], list[float]] = {}
# The children run as an installed program does: with byte-code caching (in a temporary
# PYTHONPYCACHEPREFIX, so the checkout stays clean), even where PYTHONDONTWRITEBYTECODE is set;
# otherwise every run would compile rpcd from source, which no installed copy does.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_child(argv: list[str]) -> tuple[float, int, int]:
    """Wall seconds, peak RSS (KiB) and exit code of one child process.

    Its CPU seconds (user + system, from the same rusage) go to ``CPU[argv]``: on a machine
    shared with other work, CPU time moves much less than wall time. The rusage of a child
    counts the processes it waited for too: ``rpcd validate``'s forked workers are included.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, env=CHILD_ENV
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    CPU.setdefault(tuple(argv), []).append(usage.ru_utime + usage.ru_stime)
    return elapsed, usage.ru_maxrss, proc.returncode


def validate_argv(root: Path, jobs: int | None = None) -> list[str]:
    """``rpcd validate``: one process per CPU (its default), or ``jobs`` processes."""
    argv = [sys.executable, "-m", "rpcd", "validate", str(root), "--format", "json"]
    return argv if jobs is None else [*argv, "--jobs", str(jobs)]


def floor_argv(root: Path, parser: str = "tomllib") -> list[str]:
    """The floor: read and parse every file with ``parser`` (``tomllib`` or ``tomli``)."""
    return [sys.executable, "-c", FLOOR.replace("PARSER", parser), str(root)]


def tomli_floor_argv(root: Path) -> list[str]:
    return floor_argv(root, "tomli")


def spread(values: list[float], scale: float = 1.0, fmt: str = "{:.3f}") -> str:
    med = statistics.median(values) * scale
    return (
        f"{fmt.format(med)} ({fmt.format(min(values) * scale)}-{fmt.format(max(values) * scale)})"
    )


def incremental(root: Path, rounds: int) -> tuple[list[float], list[float], list[float]]:
    """Cold in-process builds, and rebuilds after one file changed: seconds, and the
    rebuilds' CPU seconds (a serial build, as the daemon's reload runs it)."""
    cold, warm, warm_cpu = [], [], []
    target = sorted((root / "connections.d").rglob("*.toml"))[
        len(list((root / "connections.d").rglob("*.toml"))) // 2
    ]
    original = target.read_text(encoding="utf-8")
    result = build(root)
    try:
        for r in range(rounds):
            start = time.perf_counter()
            result = build(root)
            cold.append(time.perf_counter() - start)
            target.write_text(original + f"# edit {r}\n", encoding="utf-8")
            start, start_cpu = time.perf_counter(), time.process_time()
            rebuilt = build(root, previous=result.cache)
            warm.append(time.perf_counter() - start)
            warm_cpu.append(time.process_time() - start_cpu)
            assert [f.as_text() for f in rebuilt.report] == [
                f.as_text() for f in build(root).report
            ]
            result = rebuilt
    finally:
        target.write_text(original, encoding="utf-8")
    return cold, warm, warm_cpu


BUCKETS: list[tuple[str, Callable[[str, str], bool]]] = [
    ("TOML parser (tomli, compiled, or tomllib)", lambda f, n: "tomllib" in f or "tomli" in n),
    (
        "jsonschema on the refused parts (detailed findings)",
        lambda f, n: "jsonschema" in f or "referencing" in f,
    ),
    ("pydantic (models)", lambda f, n: "pydantic" in f or "SchemaValidator" in n),
    ("findings: key positions", lambda f, n: f.endswith("config/parse.py")),
    ("findings: messages", lambda f, n: f.endswith("config/schema.py") or "difflib" in f),
    ("rules across files", lambda f, n: f.endswith("config/rules.py")),
    ("catalog assembly", lambda f, n: f.endswith("config/catalog.py")),
    ("check_file, pruning", lambda f, n: f.endswith(("config/document.py", "config/pool.py"))),
    (
        "discovery, reading, hashing",
        lambda f, n: (
            f.endswith("config/sources.py")
            or n in ("read", "open", "stat", "<method 'stat' of 'posix.DirEntry' objects>")
        ),
    ),
]


def profile(root: Path) -> list[str]:
    build(root)  # warm the validators (the CLI pays this once too; it is in the subprocess numbers)
    prof = cProfile.Profile()
    prof.enable()
    build(root)
    prof.disable()
    stats = pstats.Stats(prof)
    totals: dict[str, float] = {}
    raw = stats.stats  # type: ignore[attr-defined]
    for (filename, _, name), (_, _, tottime, _, _) in raw.items():
        bucket = next(
            (b for b, match in BUCKETS if match(filename, name)), "other (stdlib, builtins)"
        )
        totals[bucket] = totals.get(bucket, 0.0) + tottime
    whole = sum(totals.values()) or 1.0
    lines = ["| where (cProfile, own time) | s | share |", "| --- | --- | --- |"]
    for bucket, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {bucket} | {seconds:.3f} | {100 * seconds / whole:.0f} % |")
    lines += ["", "Top functions by own time:", ""]
    stats.sort_stats("tottime")
    top = sorted(raw.items(), key=lambda kv: -kv[1][2])[:8]
    for (filename, line, name), (_, calls, tottime, _, _) in top:
        short = "/".join(Path(filename).parts[-2:]) if filename != "~" else "builtin"
        lines.append(f"- {tottime:.3f} s  {name}  ({short}:{line}, {calls} calls)")
    return lines


def import_time(rounds: int) -> tuple[list[float], list[float]]:
    bare, cli = [], []
    for _ in range(rounds):
        bare.append(run_child([sys.executable, "-c", "pass"])[0])
        cli.append(run_child([sys.executable, "-c", "import rpcd.cli"])[0])
    return bare, cli


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1,000 connections only, 2 rounds")
    args = parser.parse_args()
    sizes = [1000] if args.quick else [1000, 10000]
    rounds = 2 if args.quick else args.rounds
    tmp = Path(tempfile.mkdtemp(prefix="rpcd-bench-"))
    try:
        trees: list[tuple[str, Path, int, int]] = []
        for n in sizes:
            for layout in ("one-per-file", "many-per-file"):
                root = tmp / f"{n}-{layout}"
                broken = generate(root, n, layout)
                trees.append((layout, root, n, broken))
        CHILD_ENV["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
        programs = {
            "v": validate_argv,
            "s": lambda root: validate_argv(root, 1),
            "f": floor_argv,
            "t": tomli_floor_argv,
        }
        for _, root, _, _ in trees[:1]:  # warm-up: byte-code and compiled-schema caches
            for argv_of in programs.values():
                run_child(argv_of(root))
        CPU.clear()
        results: dict[Path, dict[str, list[float]]] = {
            t[1]: {key: [] for key in ("v", "s", "f", "t", "rss", "srss", "frss", "trss")}
            for t in trees
        }
        for _ in range(rounds):  # interleaved: every tree, every program, each round
            for _, root, _, _ in trees:
                for key, argv_of in programs.items():
                    seconds, rss, code = run_child(argv_of(root))
                    expected = 0 if key in "ft" else 1  # the trees have errors
                    assert code == expected, f"{argv_of(root)} exited {code}, not {expected}"
                    results[root][key].append(seconds)
                    results[root][key + "rss" if key != "v" else "rss"].append(rss / 1024)
        cpus = pool.available_cpus()
        print(
            f"## rpcd validate, cold (subprocess), {rounds} interleaved rounds: median (min-max)\n"
        )
        print(
            f"`rpcd validate` parses and checks the files of a big tree in {cpus} processes "
            "(one per CPU it may use, forked); `-j 1` is the same command in one process. The "
            "floors are one process each: reading and parsing with stdlib `tomllib` (the "
            "reference the goal names), and with compiled `tomli` (the parser rpcd itself uses, "
            "about 1.8x faster: the ratio against it is what rpcd's own work costs). Wall "
            "seconds:\n"
        )
        print(
            "| connections | layout | files | broken | rpcd validate s | µs / connection | "
            "-j 1 s | tomllib floor s | ratio | ratio -j 1 | tomli (compiled) floor s | "
            "ratio vs tomli floor | ratio -j 1 vs tomli floor | peak RSS MiB (-j 1; floor) |"
        )
        print("| --- " * 14 + "|")
        for layout, root, n, broken in trees:
            r = results[root]
            files = sum(1 for _ in root.rglob("*.toml"))
            ratios = [v / f for v, f in zip(r["v"], r["f"], strict=True)]
            serial = [v / f for v, f in zip(r["s"], r["f"], strict=True)]
            vs_tomli = [v / f for v, f in zip(r["v"], r["t"], strict=True)]
            serial_vs_tomli = [v / f for v, f in zip(r["s"], r["t"], strict=True)]
            print(
                f"| {n:,} | {layout} | {files:,} | {broken:,} | {spread(r['v'])} | "
                f"{spread(r['v'], 1e6 / n, '{:.0f}')} | {spread(r['s'])} | {spread(r['f'])} | "
                f"{spread(ratios, fmt='{:.2f}')} | {spread(serial, fmt='{:.2f}')} | "
                f"{spread(r['t'])} | {spread(vs_tomli, fmt='{:.2f}')} | "
                f"{spread(serial_vs_tomli, fmt='{:.2f}')} | "
                f"{statistics.median(r['rss']):.0f} ({statistics.median(r['srss']):.0f}; "
                f"{statistics.median(r['frss']):.0f}) |"
            )
        print(
            "\nGoal: ratio (against the tomllib floor) ≤ 1.5 at 10,000 connections. Every "
            "column includes interpreter start-up (the floors pay it too); byte-code caching is "
            "on for all, as installed.\n"
        )
        print(
            "Same runs, CPU seconds (user + system) of each command, its forked workers "
            "included: median (min-max). This is the honest ratio: the workers' time counts.\n"
        )
        print(
            "| connections | layout | rpcd validate CPU s | -j 1 CPU s | tomllib floor CPU s | "
            "CPU ratio | CPU ratio -j 1 | tomli (compiled) floor CPU s | CPU ratio vs tomli "
            "floor | CPU ratio -j 1 vs tomli floor |"
        )
        print("| --- " * 10 + "|")
        for layout, root, n, _ in trees:
            v, sv, f, tf = (CPU[tuple(argv_of(root))] for argv_of in programs.values())
            ratios = [a / b for a, b in zip(v, f, strict=True)]
            serial = [a / b for a, b in zip(sv, f, strict=True)]
            ratios_t = [a / b for a, b in zip(v, tf, strict=True)]
            serial_t = [a / b for a, b in zip(sv, tf, strict=True)]
            print(
                f"| {n:,} | {layout} | {spread(v)} | {spread(sv)} | {spread(f)} | "
                f"{spread(ratios, fmt='{:.2f}')} | {spread(serial, fmt='{:.2f}')} | "
                f"{spread(tf)} | {spread(ratios_t, fmt='{:.2f}')} | "
                f"{spread(serial_t, fmt='{:.2f}')} |"
            )
        print()
        print("## Catalog rebuild after one file changed (in process)\n")
        print(
            "On the trees above (about 10 % broken: no catalog is assembled), and on the same "
            "trees without the broken connections (valid: the catalog is assembled too).\n"
        )
        print("| connections | layout | tree | cold build s | rebuild ms | rebuild CPU ms |")
        print("| --- | --- | --- | --- | --- | --- |")
        big = [t for t in trees if t[2] == max(sizes)]
        for layout, root, n, _ in big:
            valid_root = tmp / f"{n}-{layout}-valid"
            generate(valid_root, n, layout, broken_share=False)
            for label, tree in (("10 % broken", root), ("valid", valid_root)):
                cold, warm, warm_cpu = incremental(tree, max(rounds, 3))
                print(
                    f"| {n:,} | {layout} | {label} | {spread(cold)} | "
                    f"{spread(warm, 1000, '{:.1f}')} | {spread(warm_cpu, 1000, '{:.1f}')} |"
                )
        print("\nGoal: rebuild < 100 ms at 10,000 connections.\n")
        bare, cli = import_time(rounds)
        print("## Start-up\n")
        print("| program | s |")
        print("| --- | --- |")
        print(f"| python -c pass | {spread(bare)} |")
        print(f"| python -c 'import rpcd.cli' | {spread(cli)} |")
        for layout, root, n, _ in big:
            print(
                f"\n## Where the time goes: one in-process cold serial build, {n:,} "
                f"connections, {layout}\n"
            )
            print(
                "cProfile's own time per part. It charges every Python call extra, so "
                "jsonschema (many small calls) looks bigger than it is, and the parser (one "
                "call per file) smaller.\n"
            )
            print("\n".join(profile(root)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
