"""Fixtures for the job-template tests: a tiny model, small datasets on disk, and a way to run train.py.

The template runs as a subprocess with the test venv's python (never `uv run`: it would fetch a CUDA torch).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAIN_SCRIPT = REPO_ROOT / "job_templates" / "train.py"

QA = [
    ("What is two plus two?", "4"),
    ("What is the capital of France?", "Paris"),
    ("What is 3 + 5?", "8"),
    ("Translate hello to French.", "bonjour"),
]
N_ROWS = 16


def _rows() -> list[tuple[str, str]]:
    return [QA[i % len(QA)] for i in range(N_ROWS)]


def dataset_rows() -> dict[str, list[dict]]:
    """Every dataset shape the tests train on: TRL's formats and raw shapes that need a mapping."""
    rows = _rows()
    return {
        "text": [{"text": f"{q} The answer is {a}."} for q, a in rows],
        "prompt_completion": [{"prompt": q, "completion": f" {a}."} for q, a in rows],
        "messages": [
            {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in rows
        ],
        "preference": [{"prompt": q, "chosen": f" {a}.", "rejected": " I do not know."} for q, a in rows],
        "implicit_preference": [  # hh-rlhf style: the prompt is the common start of chosen and rejected
            {
                "chosen": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                "rejected": [{"role": "user", "content": q}, {"role": "assistant", "content": "no idea"}],
            }
            for q, a in rows
        ],
        "question_answer": [{"question": q, "answer": a} for q, a in rows],
        "unpaired": [
            {
                "prompt": q,
                "completion": f" {a}." if i % 2 == 0 else " I do not know.",
                "label": "good" if i % 2 == 0 else "bad",
            }
            for i, (q, a) in enumerate(rows)
        ],
        "alpaca": [
            {"instruction": q, "input": "Answer briefly." if i % 2 else "", "output": a}
            for i, (q, a) in enumerate(rows)
        ],
        "sharegpt": [
            {
                "conversations": [
                    {"from": "system", "value": "You are terse."},
                    {"from": "human", "value": q},
                    {"from": "gpt", "value": a},
                ]
            }
            for q, a in rows
        ],
    }


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random Qwen2 with a ChatML chat template (built once per session)."""
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def tiny_model_no_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same tiny model, but its tokenizer has no chat template (a base model)."""
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-base", chat_template=False)


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model as a base model: EOS `<|endoftext|>`, while its ChatML template ends turns with `<|im_end|>`."""
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-base-eos", eos_token="<|endoftext|>")


@pytest.fixture(scope="session")
def datasets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each of `dataset_rows()` saved with `Dataset.save_to_disk` under one folder."""
    from datasets import Dataset

    root = tmp_path_factory.mktemp("datasets")
    for name, rows in dataset_rows().items():
        Dataset.from_list(rows).save_to_disk(str(root / name))
    return root


def job_env(tmp: Path, *, offline: bool = True, token: str | None = None) -> dict[str, str]:
    """The subprocess environment: quiet, isolated caches, offline unless pushing to the stand-in."""
    env = dict(os.environ)
    env.update(
        TRANSFORMERS_VERBOSITY="error",
        TOKENIZERS_PARALLELISM="false",
        HF_HOME=str(tmp / "hf-home"),
        TRACKIO_DIR=str(tmp / "trackio"),
        HF_HUB_DISABLE_TELEMETRY="1",
        PYTHONWARNINGS="ignore",
    )
    # HF_HUB_DISABLE_IMPLICIT_TOKEN is the app's setting (trainer_space sets it in the test process): a job uses its
    # HF_TOKEN secret implicitly, as huggingface_hub does by default
    for key in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "RANK",
                "HF_HUB_DISABLE_IMPLICIT_TOKEN"):  # fmt: skip
        env.pop(key, None)
    if offline:
        env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    if token:
        env["HF_TOKEN"] = token
    return env


# Small, fast settings every run shares; a test's own flags come after and win.
FAST_ARGS = [
    "--max_steps", "2",
    "--logging_steps", "1",
    "--save_steps", "2",
    "--per_device_train_batch_size", "2",
    "--report_to", "none",
    "--push_to_hub", "false",
    "--num_sample_generations", "2",
    "--dataloader_pin_memory", "false",
]  # fmt: skip


@pytest.fixture
def run_train(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """Run job_templates/train.py in a subprocess; returns the completed process (stdout and stderr as text)."""

    def run(*args: str, offline: bool = True, token: str | None = None, timeout: int = 240):
        cmd = [sys.executable, str(TRAIN_SCRIPT), *FAST_ARGS, *args]
        proc = subprocess.run(
            cmd,
            cwd=REPO_ROOT,
            env=job_env(tmp_path, offline=offline, token=token),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode not in (0, 2):  # show what went wrong in the test report
            print(proc.stdout[-4000:], proc.stderr[-8000:], sep="\n---- stderr ----\n")
        return proc

    return run
