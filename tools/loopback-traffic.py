#!/usr/bin/env python3
"""`store_tick` beside the subscribers' bytes, without the subscribers.

Runs `tickrec bench --only publish` in stages, alternating: with nothing beside it, and beside
loopback TCP traffic of this script's own (no tickrec code: one thread per connection sends
BYTES every PACE seconds, another reads them in 64 KiB reads and drops them, as the bench's
subscribers do). Seven connections of 1.8 MB every 5 ms carry what seven subscribers of every
symbol carry at 1.6M ticks a second (226-byte lines); one carries a single subscriber's share.
Then prints `store_tick`'s p99.9 of each stage's runs, split by the phase the machine was in
(a run's p99 at or under FAST_NS: fast; otherwise slow).

    python3 tools/loopback-traffic.py [path/to/tickrec] [cycles] [e2e seconds]
    python3 tools/loopback-traffic.py --traffic CONNECTIONS BYTES PACE   # the traffic alone
"""
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

FAST_NS = 60
LINE = (b'{"seq":123456,"symbol":"EURUSD","ts_event_ns":1764892800123456789,'
        b'"ts_event":"2026-12-05T00:00:00.123456789Z","ts_recv_ns":1764892800123456789,'
        b'"bid":1.08123,"ask":1.08125,"bid_size":1000000,"ask_size":1000000,"source":"LP1"}\n')
ARMS = [("nothing beside", None), ("7 connections", (7, 1_800_000, 0.005)),
        ("1 connection", (1, 1_800_000, 0.005))]


def traffic(connections, size, pace):
    """Sends and drops the bytes until killed."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(connections)
    payload = (LINE * (size // len(LINE) + 1))[:size]

    def send(conn):
        due = time.monotonic()
        while True:
            conn.sendall(payload)
            due += pace
            left = due - time.monotonic()
            if left > 0:
                time.sleep(left)
            else:
                due = time.monotonic()

    def read(conn):
        view = memoryview(bytearray(1 << 16))
        while conn.recv_into(view):
            pass

    for _ in range(connections):
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        threading.Thread(target=send, args=(accepted,), daemon=True).start()
        threading.Thread(target=read, args=(client,), daemon=True).start()
    print("flowing", flush=True)
    while True:
        time.sleep(3600)


def stage(binary, secs, arm):
    """One `bench --only publish` of two rounds; its runs as (subscribers, p99, p99.9)."""
    beside = None
    if arm is not None:
        beside = subprocess.Popen([sys.executable, __file__, "--traffic", *map(str, arm)],
                                  stdout=subprocess.PIPE, text=True)
        beside.stdout.readline()  # every connection open and its threads started
    try:
        with tempfile.TemporaryDirectory() as db:
            out = subprocess.run(
                [binary, "bench", "--db", db, "--only", "publish", "--rounds", "2",
                 "--e2e-seconds", str(secs), "--json"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if out.returncode != 0:
            sys.exit(f"bench failed ({out.returncode}):\n" + "\n".join(out.stderr.splitlines()[-20:]))
    finally:
        if beside is not None:
            beside.kill()
            beside.wait()
    runs, subs = [], None
    for line in out.stderr.splitlines():
        if line.startswith("(c) end to end"):
            subs = "with 8 subscribers" in line
        m = re.search(r"store_tick p99 (\d+) ns, p99\.9 (\d+) ns", line)
        if m and subs is not None:
            runs.append((subs, int(m.group(1)), int(m.group(2))))
    return runs


def main():
    if sys.argv[1:2] == ["--traffic"]:
        traffic(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
    binary = sys.argv[1] if len(sys.argv) > 1 else "./target/release/tickrec"
    cycles = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    secs = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
    seen = {name: [] for name, _ in ARMS}
    for cycle in range(cycles):
        for name, arm in ARMS:
            print(f"cycle {cycle + 1} of {cycles}: {name}", file=sys.stderr, flush=True)
            seen[name] += stage(binary, secs, arm)
    # Each run's phase is its own p99's: in a fast phase it stays at 30-60 ns with subscribers
    # too, in a slow one it reads 120-140 ns with or without them.
    print("| beside | subscribers | fast runs: p99.9 ns | median | slow runs: median |")
    print("| --- | --- | --- | --- | --- |")
    for name, runs in seen.items():
        for subs, label in ((False, "none"), (True, "8, one stalled")):
            fast = sorted(r[2] for r in runs if r[0] == subs and r[1] <= FAST_NS)
            slow = [r[2] for r in runs if r[0] == subs and r[1] > FAST_NS]
            med = lambda xs: f"{statistics.median(xs):.0f}" if xs else "-"
            print(f"| {name} | {label} | {', '.join(map(str, fast)) or '-'} | {med(fast)} "
                  f"| {med(slow)} ({len(slow)} runs) |")

main()
