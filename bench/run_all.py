"""Run every benchmark once and print its figures (``make bench``).

Each benchmark is its own script under bench/<area>/ and prints its own figures;
this runs them in turn with the project's interpreter and reports failures.
``--write docs/benchmarks.md`` also writes the figures of this one run into that
page, with the machine, the commit and the command that reproduces them.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: (script, what it measures), in the order they run.
BENCHES = [
    ("bench/protocol/bench_protocol.py", "Protocol: host decode rate and link efficiency"),
    ("bench/firmware/bench_firmware.py", "Firmware core inside MicroPython: heap, tick cost, "
     "request flood"),
    ("bench/flash/bench_flash.py", "Flashing: verified deploy against mpremote"),
    ("bench/host/bench_store.py", "Host store and policy over a 5-year history"),
    ("bench/host/bench_sync.py", "Log sync over the virtual BLE link"),
    ("bench/host/bench_clinic.py", "Clinic: one database, four laptops, SQLite and PostgreSQL"),
    ("bench/twin/bench_twin.py", "The twin: the firmware bundle in MicroPython, beside the "
     "in-process pen"),
    ("bench/twin/bench_battery_life.py", "Battery life of an idle pen with the auto "
     "power-off"),
    ("bench/twin/bench_update.py", "Firmware update over SMP: upload rate, protocol overhead, "
     "signature check"),
    ("bench/fuzz/fuzz_decoders.py", "Fuzzing the firmware and host decoders"),
]


@dataclass
class Result:
    script: str
    title: str
    code: int
    seconds: float
    output: str


def run_one(rel: str, title: str) -> Result:
    """Run one benchmark, echoing its output as it comes."""
    print(f"\n=== {rel} ===", flush=True)
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(ROOT / rel)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        print(line, end="", flush=True)
        lines.append(line)
    code = proc.wait()
    seconds = time.monotonic() - t0
    print(f"--- {rel}: exit {code} in {seconds:.1f} s", flush=True)
    return Result(rel, title, code, seconds, "".join(lines))


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
        return out + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def render(results: list[Result], started: datetime) -> str:
    """The benchmarks page: every figure of this run, as the scripts printed them."""
    total = sum(r.seconds for r in results)
    out = [
        "# Benchmarks",
        "",
        "Every figure below comes from one run of all benchmarks, written by the run",
        "itself. Reproduce it with:",
        "",
        "```",
        "make bench                                   # prints the figures",
        ".venv/bin/python bench/run_all.py --write docs/benchmarks.md   # and rewrites this page",
        "```",
        "",
        "Each section also names its own script, which runs alone with",
        "`.venv/bin/python <script>`. Speed and memory targets are judged here, not by",
        "timed tests. Figures in the MicroPython VM are relative: the ESP32-S3 itself",
        "is to be measured on silicon.",
        "",
        "| | |",
        "|---|---|",
        f"| run | {started:%Y-%m-%d %H:%M} UTC, {total:.0f} s in all |",
        f"| commit | {_commit()} |",
        f"| machine | {_cpu()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()} |",
        f"| Python | {platform.python_version()} |",
        "",
        "| benchmark | script | result | time |",
        "|---|---|---|---|",
    ]
    for r in results:
        verdict = "ok" if r.code == 0 else f"FAILED (exit {r.code})"
        out.append(f"| {r.title} | `{r.script}` | {verdict} | {r.seconds:.1f} s |")
    for r in results:
        out += ["", f"## {r.title}", "", f"`.venv/bin/python {r.script}`", "", "```",
                r.output.rstrip(), "```"]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", metavar="PAGE", type=Path,
                        help="also write the figures of this run to PAGE (markdown)")
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    results = [run_one(rel, title) for rel, title in BENCHES if (ROOT / rel).exists()]
    failed = [r.script for r in results if r.code]
    if args.write is not None:
        args.write.write_text(render(results, started))
        print(f"wrote {args.write}")
    if failed:
        print("failed: " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
