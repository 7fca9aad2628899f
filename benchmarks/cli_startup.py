"""How fast the command line answers: ``geonb --version`` and ``geonb --help``, median of 10 process runs.

    python benchmarks/cli_startup.py [--runs 10]

Each run is a fresh process (the installed ``geonb`` script beside this Python), so the time includes
the interpreter's start and every import the answer needs; the target is ``--version`` < 1 s.
Results: ``benchmarks/results/cli_startup.md``.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = Path(sys.executable).with_name("geonb")


def seconds(args: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([str(SCRIPT), *args], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    rows = []
    for command in (["--version"], ["--help"]):
        times = seconds(command, args.runs)
        rows.append(f"| `geonb {' '.join(command)}` | {statistics.median(times):.3f} | {min(times):.3f} | "
                    f"{max(times):.3f} |")
    text = "\n".join([f"# CLI start-up ({platform.processor() or platform.machine()}, Python "
                      f"{platform.python_version()}, {args.runs} runs each)", "",
                      "| command | median s | min s | max s |", "| --- | --- | --- | --- |", *rows, ""])
    out = Path(__file__).parent / "results" / "cli_startup.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
