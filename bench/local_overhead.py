"""What the Local backend adds to a job: a 3-step tiny SFT LoRA job run directly vs submitted through the backend.

    python bench/local_overhead.py [--runs 3]

Prints the median wall time of each (the template started as a plain subprocess, and the same arguments
submitted to a LocalBackend until COMPLETED) and the overhead in percent. The environment is this Python (no
preparation is timed). Target: under 5%.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="local-overhead-"))
    os.environ.update(TRAINER_SPACE_HOME=str(work / "home"), TRAINER_SPACE_LOCAL_PYTHON=sys.executable,
                      HF_HOME=str(work / "hf"), TRACKIO_DIR=str(work / "trackio"))  # fmt: skip
    from tests.tiny_model import build_tiny_model
    from trainer_space.jobs.backends.base import JobLaunch
    from trainer_space.jobs.backends.local import LocalBackend
    from trainer_space.jobs.spec import load_template

    model = build_tiny_model(work / "tiny")
    data = work / "chat.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"{i}?"}, {"role": "assistant", "content": str(i)}]}
            for i in range(32)]  # fmt: skip
    data.write_text("\n".join(json.dumps(r) for r in rows))
    template = load_template("train.py")
    job_args = ["--method", "sft", "--peft_mode", "lora", "--model_name_or_path", str(model), "--dataset_name",
                str(data), "--max_steps", "3", "--per_device_train_batch_size", "2", "--max_length", "64",
                "--push_to_hub", "false", "--report_to", "none"]  # fmt: skip

    def direct(i: int) -> float:
        out = work / f"direct-{i}"
        start = time.perf_counter()
        subprocess.run([sys.executable, str(ROOT / "job_templates" / "train.py"), *job_args, "--output_dir",
                        str(out)], check=True, capture_output=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
        return time.perf_counter() - start

    backend = LocalBackend(home=work / "home")

    def through_backend(i: int) -> float:
        start = time.perf_counter()
        job = backend.submit(JobLaunch(kind="train", template=template, labels={}, timeout_s=600,
                                       args=(*job_args, "--output_dir", "{job_dir}/output")))  # fmt: skip
        while backend.find_job(job.id).status.stage not in ("COMPLETED", "ERROR", "CANCELED"):
            time.sleep(0.05)
        assert backend.find_job(job.id).status.stage == "COMPLETED", backend.job_logs(job.id)
        return time.perf_counter() - start

    direct(-1)  # warm-up: imports and file caches
    plain = [direct(i) for i in range(args.runs)]
    local = [through_backend(i) for i in range(args.runs)]
    backend.close()
    a, b = statistics.median(plain), statistics.median(local)
    print(f"3-step tiny SFT LoRA job, {args.runs} runs each (medians):")
    print(f"  the template run directly      : {a:6.2f} s")
    print(f"  submitted to the Local backend : {b:6.2f} s  (submit to COMPLETED)")
    print(f"  overhead                       : {(b - a) / a * 100:+6.1f} %")


if __name__ == "__main__":
    main()
