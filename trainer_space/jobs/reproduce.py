"""The exact job as something anyone can run without the app: an `hf jobs run` command line, a huggingface_hub
`run_job` call, and the spec shown in previews (the script by name and hash, the token as $HF_TOKEN).

Both are written from the `JobRequest` the app itself submits (image, `bash -c` boot command, arguments,
environment, flavor, timeout, labels, name, namespace): they create the same job, GPUs and dependencies included.
The only difference is where the script comes from: a copy of the template next to the command, base64-encoded
into the same environment variables (`base64`, `tr` and `cut`, which Linux and macOS share: the same bytes either
way), which the boot command checks against the same sha256."""

from __future__ import annotations

import shlex
from typing import Any

from ..hub.session import JobRequest
from ..validation import format_timeout
from .spec import SCRIPT_CHUNK, SCRIPT_ENV, Template, is_script_var


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


def hf_run_command(request: JobRequest, template: Template) -> str:
    """The exact job as an `hf jobs run` command line, next to a copy of the template."""
    parts = ["hf", "jobs", "run", "--flavor", request.flavor, "--timeout", format_timeout(request.timeout_s)]
    parts += ["--secrets", "HF_TOKEN"]
    if request.name:
        parts += ["--name", request.name]
    if request.namespace:
        parts += ["--namespace", request.namespace]
    for key, value in request.labels.items():
        parts += ["--label", f"{key}={value}"]
    quoted = [shlex.quote(p) for p in parts]
    for key, value in request.env.items():
        if is_script_var(key):  # piece i of the file's base64 (GNU base64 wraps its lines, macOS's does not)
            start = int(key.rsplit("_", 1)[1]) * SCRIPT_CHUNK + 1
            piece = f"base64 < {shlex.quote(template.name)} | tr -d '\\n' | cut -c {start}-{start + SCRIPT_CHUNK - 1}"
            quoted += ["--env", f'{key}="$({piece})"']
        else:
            quoted += ["--env", shlex.quote(f"{key}={value}")]
    quoted += [shlex.quote(request.image), *(shlex.quote(c) for c in request.command)]
    return " \\\n    ".join(_chunks(quoted))


def python_run_snippet(request: JobRequest, template: Template) -> str:
    """The exact job as a `huggingface_hub.run_job` call, next to a copy of the template."""
    env = {k: v for k, v in request.env.items() if not is_script_var(k)}
    ns = f"\n    namespace={request.namespace!r}," if request.namespace else ""
    ns += f"\n    name={request.name!r}," if request.name else ""
    command = "".join(f"\n        {c!r}," for c in request.command)
    return (
        "import base64, os\n"
        "from huggingface_hub import run_job\n\n"
        f"script = base64.b64encode(open({template.name!r}, 'rb').read()).decode()  # the template shown by the app\n"
        f"pieces = {{f'{SCRIPT_ENV}_{{i}}': script[at : at + {SCRIPT_CHUNK}] for i, at in enumerate(range(0, len(script), {SCRIPT_CHUNK}))}}\n"
        "job = run_job(\n"
        f"    image={request.image!r},\n"
        f"    command=[{command}\n    ],\n"
        f"    env={{**pieces, **{env!r}}},\n"
        '    secrets={"HF_TOKEN": os.environ["HF_TOKEN"]},  # $HF_TOKEN\n'
        f"    flavor={request.flavor!r},\n"
        f"    timeout={format_timeout(request.timeout_s)!r},\n"
        f"    labels={request.labels!r},{ns}\n"
        ")\n"
        "print(job.url)\n"
    )


def job_spec(request: JobRequest, template: Template) -> dict[str, Any]:
    """The job as it will be sent, for previews: the script by name and hash, the token as $HF_TOKEN."""
    pieces = [k for k in request.env if is_script_var(k)]

    def shown(key: str, value: str) -> str:
        if not is_script_var(key):
            return value
        what = f"{template.name} ({len(template.text)} characters, sha256 {template.sha256})"
        return f"<base64 of {what}, piece {pieces.index(key) + 1} of {len(pieces)}>"

    env = {k: shown(k, v) for k, v in request.env.items()}
    return {
        "image": request.image,
        "command": request.command,
        "flavor": request.flavor,
        "timeout": format_timeout(request.timeout_s),
        "env": env,
        "secrets": {"HF_TOKEN": "$HF_TOKEN"},
        "labels": request.labels,
        "namespace": request.namespace,
        "name": request.name,
    }
