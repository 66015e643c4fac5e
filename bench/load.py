"""The load test with more visitors (default 150): every endpoint at once, through gradio_client, against the app
and the Hub stand-in; prints p50 / p95 per endpoint (CI runs the same test with 50).

    python bench/load.py [--visitors 150]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=150)
    args = parser.parse_args()
    env = {**os.environ, "TRAINER_SPACE_LOAD_VISITORS": str(args.visitors)}
    test = "tests/test_load.py::test_fifty_visitors_on_every_endpoint_at_once"
    raise SystemExit(subprocess.call([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:randomly", test],
                                     cwd=ROOT, env=env))  # fmt: skip


if __name__ == "__main__":
    main()
