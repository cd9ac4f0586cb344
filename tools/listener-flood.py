#!/usr/bin/env python3
"""What connections that send nothing cost a recorder's metrics listener.

Starts `tickrec demo` with a metrics listener, opens N connections to it that never send a
request, and prints the recorder's threads and file descriptors and what `/health` answers:
before, once they are open, 3 s and 15 s later, and after they close. The recorder's limit on
descriptors is N + 200 (this script's own, which it inherits).

    python3 tools/listener-flood.py [path/to/tickrec] [N]
"""
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "./target/release/tickrec"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (n + 200, hard))
    port = free_port()
    with tempfile.TemporaryDirectory() as db:
        rec = subprocess.Popen(
            [binary, "--db", db, "demo", "--seconds", "60", "--rate", "1000",
             "--metrics-listen", f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            run(rec.pid, port, n)
        finally:
            rec.terminate()
            rec.wait()


def run(pid, port, n):
    def health():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError as e:
            return type(e).__name__

    def show(when):
        threads = len(os.listdir(f"/proc/{pid}/task"))
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        print(f"{when}: threads {threads}, descriptors {fds}, /health {health()}", flush=True)

    deadline = time.monotonic() + 30
    while health() not in (200, 503):
        if time.monotonic() > deadline:
            sys.exit("the recorder's /health never answered")
        time.sleep(0.2)
    show("before")
    held = []
    for i in range(n):
        s = socket.socket()
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", port))
        except OSError as e:
            print(f"connection {i + 1} failed: {e}")
            s.close()
            break
        held.append(s)
    show(f"{len(held)} silent connections open")
    time.sleep(3)
    show("3 s later")
    time.sleep(12)
    show("15 s later")
    for s in held:
        s.close()
    time.sleep(2)
    show("closed")


main()
