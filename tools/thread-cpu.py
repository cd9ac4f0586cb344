#!/usr/bin/env python3
"""CPU per committed tick of each thread in the end-to-end stage of `tickrec bench`.

Runs `tickrec bench --only writer` (a short one: the end-to-end stage is what this looks at), samples
/proc/<pid>/task/*/stat every 20 ms, attributes each thread's user+system time to the stage
the bench announced last on stderr, and divides the end-to-end stage's CPU by the ticks its
runs committed (the bench logs each run's count).

    python3 tools/thread-cpu.py [path/to/tickrec] [e2e seconds]
"""
import os
import re
import subprocess
import sys
import threading
import time

binary = sys.argv[1] if len(sys.argv) > 1 else "./target/release/tickrec"
secs = float(sys.argv[2]) if len(sys.argv) > 2 else 6.0
proc = subprocess.Popen(
    [binary, "bench", "--only", "writer", "--ticks", "300000", "--e2e-seconds", str(secs)],
    stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
stage = ["start"]
committed = []
ticks_hz = os.sysconf("SC_CLK_TCK")


def follow_stages():
    for line in proc.stderr:
        if line.startswith("("):
            stage[0] = line[:3]
        m = re.match(r"\s+(\d+) ticks committed, (\d+) ticks/s", line)
        if m and stage[0] == "(c)":
            committed.append((int(m.group(1)), int(m.group(2))))


follower = threading.Thread(target=follow_stages, daemon=True)
follower.start()
seen, cpu = {}, {}
while proc.poll() is None:
    try:
        tasks = os.listdir(f"/proc/{proc.pid}/task")
    except FileNotFoundError:
        break
    for tid in tasks:
        try:
            with open(f"/proc/{proc.pid}/task/{tid}/stat") as f:
                stat = f.read()
        except FileNotFoundError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        total = int(fields[11]) + int(fields[12])
        key = (stage[0], name)
        cpu[key] = cpu.get(key, 0) + total - seen.get(tid, 0)
        seen[tid] = total
    time.sleep(0.02)
proc.stdout.read()
follower.join(timeout=10)
if not committed:
    sys.exit("no end-to-end run in the bench's log")
ticks = sum(n for n, _ in committed)
rate = "/".join(str(r) for _, r in committed)
total = 0.0
for (st, name), t in sorted(cpu.items()):
    if st == "(c)" and t > 0:
        ns = t / ticks_hz * 1e9 / ticks
        total += ns
        print(f"{name:20s} {ns:6.0f} ns/tick")
print(f"{'all threads':20s} {total:6.0f} ns/tick at {rate} ticks/s")
