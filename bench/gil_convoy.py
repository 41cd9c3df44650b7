"""The GIL's convoy effect: database round trips beside a CPU-bound thread.

A gunicorn ``gthread`` worker runs a report and a dashboard render in two
threads of one process. The render holds the GIL; the report's thread,
back from each database round trip, waits for it until the switch interval
(``sys.setswitchinterval``, 5 ms by default) forces a hand-over. This script
measures that wait without a web server: ``--trips`` round trips of
``SELECT 1`` (a report makes about eight), alone and beside a thread that
only computes, at each switch interval given, alternated ``--rounds``
times so the machine's other load falls on every interval alike::

    scripts/with-postgres .venv/bin/python bench/gil_convoy.py

Prints, per interval, the median and the p99 of ``--samples`` batches, in
ms, and the p99 as a multiple of the same run's batches alone.
gunicorn.conf.py's ``GUNICORN_SWITCH_INTERVAL_US`` chose its default from it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time

import psycopg


def batches(connection: psycopg.Connection, trips: int, samples: int) -> list[float]:
    """``samples`` timings (ms) of ``trips`` round trips each."""
    timings = []
    for _ in range(samples):
        start = time.perf_counter()
        for _ in range(trips):
            connection.execute("SELECT 1").fetchone()
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def p99(values: list[float]) -> float:
    """The 99th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * 0.99) - 1)]


def measure(dsn: str, interval_s: float, trips: int, samples: int) -> tuple[list[float], list[float]]:
    """(alone, beside a CPU-bound thread) batch timings at ``interval_s``."""
    sys.setswitchinterval(interval_s)
    stop = threading.Event()

    def compute() -> None:  # stands in for a template render: Python work, no I/O
        while not stop.is_set():
            sum(i * i for i in range(20_000))

    with psycopg.connect(dsn, autocommit=True) as connection:
        alone = batches(connection, trips, samples)
        thread = threading.Thread(target=compute)
        thread.start()
        try:
            beside = batches(connection, trips, samples)
        finally:
            stop.set()
            thread.join()
    return alone, beside


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intervals-us", default="5000,1000,500", help="switch intervals to compare (µs)")
    parser.add_argument("--trips", type=int, default=8, help="round trips per batch")
    parser.add_argument("--samples", type=int, default=500, help="batches per interval and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    dsn = os.environ["TEST_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://", 1)
    intervals = [int(v) for v in args.intervals_us.split(",")]
    alone: dict[int, list[float]] = {us: [] for us in intervals}
    beside: dict[int, list[float]] = {us: [] for us in intervals}
    default = sys.getswitchinterval()
    try:
        for _ in range(args.rounds):
            for us in intervals:
                a, b = measure(dsn, us / 1_000_000, args.trips, args.samples)
                alone[us] += a
                beside[us] += b
    finally:
        sys.setswitchinterval(default)
    print(f"{args.trips} round trips per batch, {args.samples} x {args.rounds} batches per interval")
    print(f"{'interval':>10} {'alone p50':>10} {'alone p99':>10} {'beside p50':>11} {'beside p99':>11} {'p99 / alone':>12}")
    for us in intervals:
        print(
            f"{us:>8}µs {statistics.median(alone[us]):10.2f} {p99(alone[us]):10.2f} "
            f"{statistics.median(beside[us]):11.2f} {p99(beside[us]):11.2f} {p99(beside[us]) / p99(alone[us]):11.1f}x"
        )
    print(f"(load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
