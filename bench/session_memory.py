"""Memory per Gradio session, unbounded (Gradio's default, 10,000 sessions kept) and bounded by
TRAINER_SPACE_SESSION_CAPACITY (launch's `state_session_capacity`).

Each run starts the app in a subprocess, opens N sessions (one API call each, from a new session id: Gradio keeps
a copy of the page's state per session) and prints the app's resident memory as sessions pile up.

    python bench/session_memory.py                   # 1500 sessions, capacity 10000 then 300
    python bench/session_memory.py --sessions 3000 --capacities 10000 200
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
APP = """
import os, sys, time
sys.path.insert(0, {root!r})
from trainer_space.ui import build_app, launch_options, queue_options
demo = build_app()
demo.queue(**queue_options()).launch(server_name="127.0.0.1", server_port={port}, prevent_thread_lock=True,
                                     quiet=True, **launch_options())
banner = next(i for i, fn in demo.fns.items() if fn.name == "_whoami_banner")  # what a page load runs
print("READY", banner, flush=True)
while True:
    time.sleep(60)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(capacity: int, sessions: int) -> list[tuple[int, float]]:
    port = free_port()
    env = {**os.environ, "TRAINER_SPACE_SESSION_CAPACITY": str(capacity), "HF_ENDPOINT": "http://127.0.0.1:9",
           "GRADIO_ANALYTICS_ENABLED": "False"}  # fmt: skip
    env.pop("HF_TOKEN", None)
    proc = subprocess.Popen([sys.executable, "-c", APP.format(root=str(ROOT), port=port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        line = ""
        while "READY" not in line:  # Gradio prints its MCP banner first
            line = proc.stdout.readline()
            assert proc.poll() is None, "the app did not start"
        fn_index = int(line.split()[1])
        base = f"http://127.0.0.1:{port}/gradio_api"
        http = httpx.Client(timeout=30)

        def one_session(_: int) -> None:
            """What a browser opening the page does: the page-load event, from a new session."""
            session = str(uuid.uuid4())
            body = {"data": [], "fn_index": fn_index, "session_hash": session, "event_data": None, "trigger_id": None}
            http.post(f"{base}/queue/join", json=body).raise_for_status()
            with http.stream("GET", f"{base}/queue/data", params={"session_hash": session}) as events:
                for event in events.iter_lines():
                    if "process_completed" in event:
                        break

        points = [(0, rss_mib(proc.pid))]
        step = max(1, sessions // 6)
        done = 0
        with ThreadPoolExecutor(8) as pool:
            while done < sessions:
                n = min(step, sessions - done)
                list(pool.map(one_session, range(n)))
                done += n
                time.sleep(0.5)
                points.append((done, rss_mib(proc.pid)))
        return points
    finally:
        proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1500)
    parser.add_argument("--capacities", type=int, nargs="+", default=[10000, 300])
    args = parser.parse_args()
    for capacity in args.capacities:
        points = run(capacity, args.sessions)
        (n0, m0), (n1, m1) = points[0], points[-1]
        trail = ", ".join(f"{n}: {m:.0f}" for n, m in points)
        print(f"capacity {capacity:>6}: RSS MiB by sessions {trail}")
        print(f"                 {(m1 - m0) / max(1, n1 - n0):.3f} MiB per session over {n1} sessions")


if __name__ == "__main__":
    main()
