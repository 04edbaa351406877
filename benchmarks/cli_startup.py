"""Time the command line's start-up: ``--help`` of every command, and ``list``.

Each command runs in a fresh process (``python -m merc_bench.cli …`` through the installed
``merc-bench`` script), several times in rotation, so a noisy neighbour hits every command alike;
the median wall time is reported, with the heavy libraries the process imported (read from a
``-X importtime`` run of the same command). Targets (issue 13): ``--help`` and ``<cmd> --help``
under 1 s, ``list`` under 3 s on the 2-core machine. Appends a Markdown block to
benchmarks/RESULTS.md.

    python benchmarks/cli_startup.py                 # 5 rounds
    python benchmarks/cli_startup.py --rounds 3 --no-record
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine import append_results, git_commit, machine_facts  # benchmarks/machine.py, beside this script

HEAVY = ("torch", "mlflow", "optuna", "sklearn", "matplotlib", "pandas", "scipy")
COMMANDS = [
    ["--help"], ["run", "--help"], ["compare", "--help"], ["ablate", "--help"], ["tune", "--help"],
    ["validate", "--help"], ["list", "--help"], ["data", "--help"], ["data", "prepare", "--help"],
    ["list"],
]
TARGETS = {"list": 3.0}  # seconds; every --help: 1.0


def _script() -> list[str]:
    found = shutil.which("merc-bench", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "merc_bench.cli"]


def _heavy_imports(argv: list[str]) -> list[str]:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "merc_bench.cli", *argv],
                          capture_output=True, text=True)
    names = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    return [name for name in HEAVY if name in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to RESULTS.md")
    args = parser.parse_args()

    script = _script()
    times: dict[str, list[float]] = {" ".join(argv): [] for argv in COMMANDS}
    for _ in range(args.rounds):
        for argv in COMMANDS:
            start = time.perf_counter()
            done = subprocess.run([*script, *argv], capture_output=True, text=True)
            elapsed = time.perf_counter() - start
            if done.returncode != 0:
                sys.exit(f"merc-bench {' '.join(argv)} exited {done.returncode}:\n{done.stderr}")
            times[" ".join(argv)].append(elapsed)

    rows = []
    for argv in COMMANDS:
        name = " ".join(argv)
        median = statistics.median(times[name])
        target = TARGETS.get(name, 1.0)
        heavy = ", ".join(_heavy_imports(argv)) or "none"
        rows.append(f"| `merc-bench {name}` | {median:.2f} | {min(times[name]):.2f}–{max(times[name]):.2f} | "
                    f"{target:.0f} | {'yes' if median < target else '**no**'} | {heavy} |")
    block = "\n".join([
        f"### CLI start-up — {dt.date.today().isoformat()}",
        f"Machine: {machine_facts()}. Commit {git_commit()}. Command: `python benchmarks/cli_startup.py "
        f"--rounds {args.rounds}` (each command a fresh process, commands in rotation, median of the rounds).",
        "",
        "| command | median s | range s | target s | met | heavy libraries imported |",
        "|---|---|---|---|---|---|",
        *rows,
    ])
    print(block)
    if not args.no_record:
        append_results(block)


if __name__ == "__main__":
    main()
