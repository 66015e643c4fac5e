"""Latency of `inspect_dataset` against the Hub stand-in with a slow dataset viewer.

The bulk of an inspection is network round trips (/splits, /size, /first-rows). They are sent concurrently,
so an inspection costs about one viewer round trip instead of three. Run:

    .venv/bin/python bench/inspect_latency.py [--delay-ms 150] [--runs 15]

Prints the median of `inspect_dataset` next to the sum of the same calls made one after the other.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, default=150.0, help="delay of every viewer call")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()

    from tests.hub_standin import HubStandIn, free_port

    port = free_port()
    # huggingface_hub reads HF_ENDPOINT when imported: set everything before any import of it
    os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{port}"
    os.environ["TRAINER_SPACE_VIEWER_URL"] = f"http://127.0.0.1:{port}/datasets-server"
    os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="inspect-bench-")
    os.environ.pop("HF_TOKEN", None)
    hub = HubStandIn(port=port).start()
    hub.reset()
    try:
        run(hub, args.delay_ms / 1000, args.runs)
    finally:
        hub.stop()


def run(hub, delay_s: float, runs: int) -> None:
    from trainer_space.data.inspection import inspect_dataset as inspect
    from trainer_space.hub.session import HubSession

    session = HubSession(None)

    def inspect_dataset(**kwargs):
        return inspect(session, **kwargs)

    rows = [{"instruction": f"Add {i} and {i}.", "input": "", "output": str(2 * i)} for i in range(100)]
    hub.add_dataset("alice/alpaca", {"train": rows, "test": rows[:10]}, num_rows={"train": 52002})
    hub.add_dataset("alice/gsm", {"train": rows}, config="main")  # no "default" config: one extra round trip
    inspect_dataset(dataset="alice/alpaca")  # warm-up (imports, connection pool)
    hub.state.viewer_delay_s = delay_s

    def timed(fn) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    viewer = session.viewer

    def sequential() -> None:
        viewer.get("splits", dataset="alice/alpaca")
        viewer.get("size", dataset="alice/alpaca")
        viewer.get("first-rows", dataset="alice/alpaca", config="default", split="train")

    seq = statistics.median(timed(sequential) for _ in range(runs))
    default = statistics.median(timed(lambda: inspect_dataset(dataset="alice/alpaca")) for _ in range(runs))
    other = statistics.median(timed(lambda: inspect_dataset(dataset="alice/gsm")) for _ in range(runs))
    print(f"viewer delay per call: {delay_s * 1000:.0f} ms, {runs} runs each, medians:")
    print(f"  the 3 viewer calls one after the other : {seq * 1000:7.0f} ms")
    print(f"  inspect_dataset (config 'default')     : {default * 1000:7.0f} ms  (concurrent: ~1 round trip)")
    print(f"  inspect_dataset (config 'main')        : {other * 1000:7.0f} ms  (first-rows re-asked: ~2 round trips)")
    print(f"  speed-up over sequential               : {seq / default:7.1f} x")


if __name__ == "__main__":
    main()
