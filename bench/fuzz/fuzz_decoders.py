"""Decoder fuzzing, the long run: every target of tests/fuzz/targets.py under hypothesis.

Run: ``.venv/bin/python bench/fuzz/fuzz_decoders.py`` (100,000 examples per target,
the targets spread over the CPUs), ``--quick`` (2,000), ``--examples N``,
``--targets wire_decode,handler``, ``--jobs N``, ``--seed N`` (to repeat a run).

Targets that take the same input layout share the generated inputs (each of them
runs every example), and the examples are drawn in fresh hypothesis runs of
10,000 (one long run slows down as hypothesis's record of what it tried grows).
Per target it prints the examples run (counted in the test body), the crashes (a
property broken or an unexpected exception: hypothesis shrinks it and the minimal
input is printed), the slowest single example in ms (timed with the garbage collector paused, so a
collection over hypothesis's heap is not charged to it) and the time spent in the
target; per group, the wall time. A target
fails on a crash or when one example takes longer than ``--hang-ms`` (1,000 ms);
an example still running after ``--kill-s`` is interrupted as a hang. The exit code
is 1 when any target failed. The outcome counts show how deep the inputs reach
(e.g. the handler's NACK codes behind the permit's tag).
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import random
import signal
import sys
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "protocol"), str(ROOT / "firmware")]

DEFAULT_EXAMPLES = 100_000
BATCH = 10_000
QUICK_EXAMPLES = 2_000


class Hang(Exception):
    """One example ran past the kill limit."""


def _alarm(signum: int, frame: Any) -> None:
    raise Hang("example still running after the kill limit")


# Targets with the same input layout share the generated inputs: every target of a
# group runs every example (so each gets the full count), hypothesis's per-example
# cost is paid once per group.
GROUPS = {  # the longest first, so two jobs finish together
    "handler": ("handler",),
    "serial": ("fw_deframer", "host_deframer"),
    "frames": ("wire_decode", "host_decode", "differential"),
    "fragments": ("fw_reassembler", "host_reassembler"),
}


_LAST_RAISER: list[str | None] = [None]


def _new_stats(name: str, seed: int) -> dict[str, Any]:
    return {"name": name, "examples": 0, "slowest_ms": 0.0, "crash": None,
            "outcomes": Counter(), "seed": seed, "seconds": 0.0}


def _run_one(fn: Any, data: bytes, s: dict[str, Any], kill_s: float) -> None:
    s["examples"] += 1
    signal.setitimer(signal.ITIMER_REAL, kill_s)
    gc.disable()  # a collection over hypothesis's heap is not the target's time
    t0 = time.perf_counter()
    try:
        label = fn(data)
    except BaseException:
        _LAST_RAISER[0] = s["name"]  # the final replay of the minimal example sets it last
        raise
    finally:
        dt = time.perf_counter() - t0
        gc.enable()
        signal.setitimer(signal.ITIMER_REAL, 0)
        s["seconds"] += dt
        s["slowest_ms"] = max(s["slowest_ms"], dt * 1000)
    s["outcomes"][label] += 1


def _fuzz(names: list[str], examples: int, seed: int, kill_s: float,
          stats: list[dict[str, Any]]) -> None:
    # In batches, each a fresh hypothesis run with its own seed: one run of 100,000
    # examples slows down as hypothesis's record of what it tried grows.
    done = 0
    while done < examples:
        n = min(BATCH, examples - done)
        _fuzz_batch(names, n, seed + done, kill_s, stats)
        done += n
        gc.collect()


def _fuzz_batch(names: list[str], examples: int, seed: int, kill_s: float,
                stats: list[dict[str, Any]]) -> None:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed
    from tests.fuzz.strategies import INPUTS
    from tests.fuzz.targets import TARGETS

    fns = [TARGETS[n] for n in names]

    @hseed(seed)
    @settings(max_examples=examples, database=None, deadline=None, derandomize=False,
              phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck),
              print_blob=True)
    @given(INPUTS[names[0]])
    def fuzz(data: bytes) -> None:
        for fn, s in zip(fns, stats, strict=True):
            _run_one(fn, data, s, kill_s)

    fuzz()


def run_group(job: tuple[list[str], int, int, float]) -> list[dict[str, Any]]:
    """Fuzz one group of targets in this process; returns their figures. The crash is
    charged to the target that raised (the others of its group stop with it)."""
    names, examples, seed, kill_s = job
    signal.signal(signal.SIGALRM, _alarm)
    stats = [_new_stats(n, seed) for n in names]
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        _fuzz(names, examples, seed, kill_s, stats)
    except BaseException:
        tb = traceback.format_exc(limit=-10)  # the innermost frames, and the notes
        for s in stats:
            if _LAST_RAISER[0] in (None, s["name"]):
                s["crash"] = tb
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    for s in stats:
        s["wall"], s["cpu"] = wall, cpu
    return stats


def _line(s: dict[str, Any], hang_ms: float, examples: int) -> tuple[str, bool]:
    ok = s["crash"] is None and s["slowest_ms"] <= hang_ms and s["examples"] >= examples
    verdict = "ok" if ok else "FAILED" if s["crash"] or s["slowest_ms"] > hang_ms else "STOPPED"
    crashes = 0 if s["crash"] is None else 1
    text = (f"  {s['name']:<17} {s['examples']:>9,} examples  {crashes} crashes  "
            f"slowest {s['slowest_ms']:8.2f} ms  {s['seconds']:6.1f} s in target  "
            f"{len(s['outcomes']):>3} outcomes  {verdict}")
    return text, ok


def _report(s: dict[str, Any], hang_ms: float, examples: int) -> bool:
    text, ok = _line(s, hang_ms, examples)
    print(text, flush=True)
    if s["crash"]:
        print(s["crash"], flush=True)
    if s["slowest_ms"] > hang_ms:
        print(f"    HANG: an example took {s['slowest_ms']:.0f} ms > {hang_ms:.0f} ms", flush=True)
    top = ", ".join(f"{k} {v}" for k, v in s["outcomes"].most_common(6))
    print(f"    most common outcomes: {top}", flush=True)
    return ok


def parse_args(argv: list[str]) -> argparse.Namespace:
    from tests.fuzz.targets import TARGETS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--examples", type=int, default=DEFAULT_EXAMPLES)
    p.add_argument("--quick", action="store_true", help=f"{QUICK_EXAMPLES:,} examples per target")
    p.add_argument("--targets", default=",".join(TARGETS))
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--hang-ms", type=float, default=1000.0)
    p.add_argument("--kill-s", type=float, default=30.0)
    args = p.parse_args(argv)
    if args.quick:
        args.examples = QUICK_EXAMPLES
    args.names = [n for n in args.targets.split(",") if n]
    unknown = [n for n in args.names if n not in TARGETS]
    if unknown:
        p.error("unknown targets: " + ", ".join(unknown) + "; known: " + ", ".join(TARGETS))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    print(f"fuzzing {len(args.names)} targets x {args.examples:,} examples, {args.jobs} jobs, "
          f"seed {seed}", flush=True)
    jobs = [([n for n in group if n in args.names], args.examples, seed, args.kill_s)
            for group in GROUPS.values()]
    jobs = [j for j in jobs if j[0]]
    t0 = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    group_cpu: list[float] = []
    with multiprocessing.get_context("fork").Pool(max(1, args.jobs), maxtasksperchild=1) as pool:
        for group in pool.imap_unordered(run_group, jobs):
            group_cpu.append(group[0]["cpu"])
            print(f"group {', '.join(s['name'] for s in group)}: {group[0]['wall']:.1f} s wall, "
                  f"{group[0]['cpu']:.1f} s CPU", flush=True)
            for s in group:
                results[s["name"]] = s
                _report(s, args.hang_ms, args.examples)
    total = time.perf_counter() - t0
    print("summary")
    failed = []
    for name in args.names:
        text, ok = _line(results[name], args.hang_ms, args.examples)
        print(text)
        if not ok:
            failed.append(name)
    runs = sum(s["examples"] for s in results.values())
    cpu = sum(group_cpu)
    print(f"total: {runs:,} examples in {total:.1f} s wall ({args.jobs} jobs), "
          f"{cpu:.1f} s CPU in the workers")
    if failed:
        print("FAILED: " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
