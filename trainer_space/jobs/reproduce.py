"""The exact job as something anyone can run without the app: an `hf jobs` command line, a huggingface_hub call,
and the spec shown in previews (the script by name and hash, the token as $HF_TOKEN)."""

from __future__ import annotations

import shlex
from typing import Any

from ..hub.session import JobRequest
from ..validation import format_timeout
from .spec import SCRIPT_ENV, Template


def hf_cli_command(
    template: Template,
    args: list[str],
    *,
    flavor: str,
    timeout_s: int,
    labels: dict[str, str],
    num_processes: int = 1,
    namespace: str | None = None,
) -> str:
    """The equivalent `hf jobs uv run ...` command line (the token comes from `$HF_TOKEN`)."""
    parts = [
        "hf",
        "jobs",
        "uv",
        "run",
        "--flavor",
        flavor,
        "--timeout",
        format_timeout(timeout_s),
        "--secrets",
        "HF_TOKEN",
    ]
    if namespace:
        parts += ["--namespace", namespace]
    for key, value in labels.items():
        parts += ["--label", f"{key}={value}"]
    if num_processes > 1:
        parts += ["--with", "accelerate", "--", "accelerate", "launch", "--num_processes", str(num_processes)]
    parts += [template.name, *args]
    return " \\\n    ".join(_chunks([shlex.quote(p) for p in parts]))


def _chunks(quoted: list[str]) -> list[str]:
    """Group a long argv into readable lines: the program first, then each `--flag value` on its own line."""
    lines: list[str] = []
    for token in quoted:
        if token.startswith("--") or not lines:
            lines.append(token)
        elif not lines[-1].startswith("--") and len(lines) == 1 and not any(t.startswith("--") for t in lines):
            lines[-1] += " " + token  # still the program name: "hf jobs uv run"
        elif lines[-1].startswith("--") and " " not in lines[-1]:
            lines[-1] += " " + token
        else:
            lines.append(token)
    return lines


def python_snippet(
    template: Template,
    args: list[str],
    *,
    flavor: str,
    timeout_s: int,
    labels: dict[str, str],
    namespace: str | None = None,
) -> str:
    """The equivalent huggingface_hub call, runnable next to a copy of the template."""
    ns = f"\n    namespace={namespace!r}," if namespace else ""
    args_text = "".join(f"\n        {a!r}," for a in args)
    return (
        "import os\n"
        "from huggingface_hub import run_uv_job\n\n"
        f"# {template.name} is the job template shown by the app (sha256 {template.short_sha}...)\n"
        "job = run_uv_job(\n"
        f"    {template.name!r},\n"
        f"    script_args=[{args_text}\n    ],\n"
        f"    flavor={flavor!r},\n"
        f"    timeout={format_timeout(timeout_s)!r},\n"
        '    secrets={"HF_TOKEN": os.environ["HF_TOKEN"]},  # $HF_TOKEN\n'
        f"    labels={labels!r},{ns}\n"
        ")\n"
        "print(job.url)\n"
    )


def hf_run_command(request: JobRequest, template: Template) -> str:
    """The exact job as an `hf jobs run` command line, next to a copy of the template."""
    parts = ["hf", "jobs", "run", "--flavor", request.flavor, "--timeout", format_timeout(request.timeout_s)]
    parts += ["--secrets", "HF_TOKEN"]
    if request.namespace:
        parts += ["--namespace", request.namespace]
    for key, value in request.labels.items():
        parts += ["--label", f"{key}={value}"]
    quoted = [shlex.quote(p) for p in parts]
    for key, value in request.env.items():
        if key == SCRIPT_ENV:
            quoted += ["--env", f'{SCRIPT_ENV}="$(base64 -w0 {shlex.quote(template.name)})"']
        else:
            quoted += ["--env", shlex.quote(f"{key}={value}")]
    quoted += [shlex.quote(request.image), *(shlex.quote(c) for c in request.command)]
    return " \\\n    ".join(_chunks(quoted))


def python_run_snippet(request: JobRequest, template: Template) -> str:
    """The exact job as a `huggingface_hub.run_job` call, next to a copy of the template."""
    env = {k: v for k, v in request.env.items() if k != SCRIPT_ENV}
    ns = f"\n    namespace={request.namespace!r}," if request.namespace else ""
    command = "".join(f"\n        {c!r}," for c in request.command)
    return (
        "import base64, os\n"
        "from huggingface_hub import run_job\n\n"
        f"script = open({template.name!r}, 'rb').read()  # the template shown by the app\n"
        "job = run_job(\n"
        f"    image={request.image!r},\n"
        f"    command=[{command}\n    ],\n"
        f"    env={{{SCRIPT_ENV!r}: base64.b64encode(script).decode(), **{env!r}}},\n"
        '    secrets={"HF_TOKEN": os.environ["HF_TOKEN"]},  # $HF_TOKEN\n'
        f"    flavor={request.flavor!r},\n"
        f"    timeout={format_timeout(request.timeout_s)!r},\n"
        f"    labels={request.labels!r},{ns}\n"
        ")\n"
        "print(job.url)\n"
    )


def job_spec(request: JobRequest, template: Template) -> dict[str, Any]:
    """The job as it will be sent, for previews: the script by name and hash, the token as $HF_TOKEN."""
    env = {k: (v if k != SCRIPT_ENV else f"<{template.name}: {len(template.text)} characters, sha256 {template.sha256}>")
           for k, v in request.env.items()}  # fmt: skip
    return {
        "image": request.image,
        "command": request.command,
        "flavor": request.flavor,
        "timeout": format_timeout(request.timeout_s),
        "env": env,
        "secrets": {"HF_TOKEN": "$HF_TOKEN"},
        "labels": request.labels,
        "namespace": request.namespace,
    }
