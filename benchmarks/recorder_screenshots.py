"""Recorder screenshots: what turn(..., screenshot=png) costs the caller, against turn() without one.

    python benchmarks/recorder_screenshots.py [--rounds 5] [--calls 100] [--work-ms 2]
                                              [--postgres postgresql://postgres@127.0.0.1:5432/postgres] [--no-postgres]

Per backend (a throwaway SQLite file, a throwaway PostgreSQL database), one Recorder, one rollout: in each of
--rounds rounds, --calls turns with a 200 KB PNG (a real one: 256x256 noise, deflated) and --calls without,
taking turns call by call (the two sides share the machine's slow spells), with --work-ms of pure-Python work
between calls, as an agent's step has (a GUI agent takes one screenshot per step). Each turn() is timed alone
(perf_counter_ns around the call only); a round's figures per side are the median of its calls (a typical call)
and their mean (so a rare slow one, the loop's thread sending a batch, counts); each result is the median over
the rounds, with single calls' p99 beside them. The screenshots are 8 distinct PNGs in turn: hashing and storing are the writer's, and the
flush after the loop shows how long it took for all of them (and that every one was written). Target: what a
200 KB screenshot adds to a typical turn() is < 20 µs (the call without one is the reference; on a quiet machine
both are a few µs, on one whose cores are all busy both take far longer). A missed target is marked ✗; the exit code is 0 either way.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import struct
import sys
import tempfile
import time
import uuid
import zlib

from rich.console import Console
from rich.table import Table

import rolloutdb
from common import add_postgres_option, met, postgres_database, sqlite_database
from recorder_overhead import calibrate, work

console = Console(width=None if sys.stdout.isatty() else 100)
TARGET_US = 20.0
DISTINCT_SCREENS = 8


def noise_png(seed: int, side: int = 256) -> bytes:
    """A real PNG of ``side`` x ``side`` RGB noise: deflate cannot shrink it, so it is ~200 KB at 256."""
    rows = random.Random(seed).randbytes(side * side * 3)
    raw = b"".join(b"\x00" + rows[y * side * 3:(y + 1) * side * 3] for y in range(side))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack("!I", len(data)) + kind + data + struct.pack("!I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack("!IIBBBBB", side, side, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def measure(url: str, journal: str, rounds: int, calls: int, iterations: int) -> dict:
    screens = [noise_png(seed) for seed in range(DISTINCT_SCREENS)]
    clock = time.perf_counter_ns
    with_means, without_means, with_medians, without_medians, with_all, without_all = [], [], [], [], [], []
    recorder = rolloutdb.Recorder(url, run=f"screens-{uuid.uuid4().hex[:8]}", journal_dir=journal)
    step = recorder.step(0)
    rollout = step.group(task="phone").rollout(input={"app": "mail"})
    for _ in range(3):  # warm-up: the first calls of each kind load and build what later calls reuse
        rollout.turn(kind="action", action={"type": "tap", "x": 1, "y": 2}, screenshot=screens[0])
        rollout.turn(kind="action", action={"type": "tap", "x": 1, "y": 2})
    recorder.flush(timeout=300)  # the writer started (once per training run, not per turn)
    for _ in range(rounds):
        with_times, without_times = [], []
        for call in range(calls):
            action = {"type": "tap", "x": 12 * call, "y": 640}
            screen = screens[call % DISTINCT_SCREENS]
            began = clock()
            rollout.turn(kind="action", action=action, screenshot=screen, success=True)
            with_times.append(clock() - began)
            work(iterations)
            action = {"type": "tap", "x": 12 * call, "y": 640}
            began = clock()
            rollout.turn(kind="action", action=action, success=True)
            without_times.append(clock() - began)
            work(iterations)
        with_means.append(statistics.fmean(with_times) / 1000)
        without_means.append(statistics.fmean(without_times) / 1000)
        with_medians.append(statistics.median(with_times) / 1000)
        without_medians.append(statistics.median(without_times) / 1000)
        with_all += with_times
        without_all += without_times
    rollout.finish(reward=1.0, success=True)
    step.finish()
    began = time.perf_counter()
    flushed = recorder.flush(timeout=600)
    flush_seconds = time.perf_counter() - began
    recorder.close()
    with rolloutdb.connect(url) as store:
        linked = sum(1 for turn in store.turns.query(limit=None) if store.artifacts.links(turn_id=turn.id))
    return {"with": with_means, "without": without_means, "with_median": with_medians,
            "without_median": without_medians, "with_all": with_all, "without_all": without_all,
            "flushed": bool(flushed), "flush_seconds": flush_seconds, "linked": linked,
            "screenshots": rounds * calls + 3, "bytes": len(screens[0])}


def percentile(values: list[int], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=100, help="turns per side per round")
    parser.add_argument("--work-ms", type=float, default=2.0, help="pure-Python work between two calls")
    parser.add_argument("--no-postgres", action="store_true")
    add_postgres_option(parser)
    args = parser.parse_args()
    iterations = calibrate(args.work_ms / 1000)
    backends = [("SQLite", sqlite_database())]
    if not args.no_postgres:
        backends.append(("PostgreSQL", postgres_database(args.postgres)))
    table = Table(title="turn() with a 200 KB screenshot vs without, same run (µs per call; medians over rounds)")
    for column in ("backend", "typical call: with / without", "screenshot's extra", "mean call: with / without",
                   "extra (mean)", "p99: with / without", "writer: flush after", "linked", "extra < 20 µs"):
        table.add_column(column, justify="left" if column == "backend" else "right")
    for name, database in backends:
        with database as url, tempfile.TemporaryDirectory(prefix="rolloutdb-journal-") as journal:
            result = measure(url, journal, args.rounds, args.calls, iterations)
        typical = statistics.median(result["with_median"]), statistics.median(result["without_median"])
        mean = statistics.median(result["with"]), statistics.median(result["without"])
        table.add_row(
            name, f"{typical[0]:.1f} / {typical[1]:.1f}", f"{typical[0] - typical[1]:+.1f}",
            f"{mean[0]:.1f} / {mean[1]:.1f}", f"{mean[0] - mean[1]:+.1f}",
            f"{percentile(result['with_all'], 0.99):.0f} / {percentile(result['without_all'], 0.99):.0f}",
            f"{result['flush_seconds']:.1f} s{'' if result['flushed'] else ' (incomplete)'}",
            f"{result['linked']}/{result['screenshots']}", met(typical[0] - typical[1] < TARGET_US))
    console.print(table)
    load = os.getloadavg()[0]
    console.print(f"{args.rounds} rounds × {args.calls} calls per side, {args.work_ms:g} ms of work between calls; "
                  f"screenshots {DISTINCT_SCREENS} distinct PNGs of ~{result['bytes'] // 1000} KB; load average "
                  f"{load:.1f} on {os.cpu_count()} cores{' (busy: figures are noisy)' if load > (os.cpu_count() or 1) else ''}")


if __name__ == "__main__":
    main()
