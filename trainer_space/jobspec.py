"""Turn a job template plus its arguments into a Jobs request, and into copyable equivalents.

The job receives the template's exact text (base64 in an environment variable, checked against its
sha256 before it runs) so it runs exactly the version the app shows, with no upload step and no
dependency on the Space being public. Arguments travel as positional parameters of `bash -c`
(`"$@"`), so no visitor text is ever parsed by a shell.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shlex
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .hub import JobRequest

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "job_templates"
UV_IMAGE = "ghcr.io/astral-sh/uv:python3.12-bookworm"
SCRIPT_ENV = "TRAINER_SPACE_SCRIPT"
SCRIPT_SHA_ENV = "TRAINER_SPACE_SCRIPT_SHA256"
_PEP723 = re.compile(r"(?m)^# /// script\s*$\n(?P<body>(?:^#(?: .*)?$\n)+?)^# ///\s*$")


@dataclass(frozen=True)
class Template:
    """A job template as shipped with the app."""

    name: str  # file name, e.g. "train.py"
    text: str
    sha256: str
    dependencies: tuple[str, ...]
    requires_python: str | None

    @property
    def short_sha(self) -> str:
        return self.sha256[:12]


def parse_pep723(text: str) -> dict:
    """The inline script metadata (PEP 723) of a script, as a dict."""
    match = _PEP723.search(text)
    if not match:
        return {}
    body = "\n".join(line[2:] if line.startswith("# ") else line[1:] for line in match["body"].splitlines())
    return tomllib.loads(body)


@lru_cache(maxsize=8)
def load_template(name: str) -> Template:
    if "/" in name or not name.endswith(".py"):
        raise ValueError(f"not a template name: {name!r}")
    text = (TEMPLATES_DIR / name).read_text(encoding="utf-8")
    meta = parse_pep723(text)
    return Template(
        name=name,
        text=text,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        dependencies=tuple(meta.get("dependencies", ())),
        requires_python=meta.get("requires-python"),
    )


def format_timeout(seconds: int) -> str:
    """Seconds in the short form Jobs and `hf jobs` take: "45m", "2h", "90m"."""
    minutes = max(1, -(-int(seconds) // 60))
    return f"{minutes // 60}h" if minutes % 60 == 0 else f"{minutes}m"


def parse_timeout(value: str | int | float) -> int:
    """ "2h" / "90m" / "3600" / 3600 -> seconds."""
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value).strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd]?)", text)
    if not match:
        raise ValueError(f"not a duration: {value!r} (use e.g. 90m or 2h)")
    return int(float(match[1]) * units.get(match[2] or "s", 1))


def _boot_script(template: Template, num_processes: int) -> str:
    path = f"/tmp/{template.name}"
    decode = _decode_script(template)
    if num_processes <= 1:
        run = f'exec uv run --quiet {path} "$@"'
    else:
        withs = " ".join(f"--with {shlex.quote(dep)}" for dep in template.dependencies)
        run = (
            f"exec uv run --quiet --no-project --python 3.12 {withs} "
            f'accelerate launch --num_processes {int(num_processes)} --num_machines 1 {path} "$@"'
        )
    return "set -euo pipefail; " + decode + run


def _decode_script(template: Template) -> str:
    path = f"/tmp/{template.name}"
    return (
        f'printf %s "${SCRIPT_ENV}" | base64 -d > {path}; echo "${SCRIPT_SHA_ENV}  {path}" | sha256sum -c --quiet -; '
    )


def _script_request(template: Template, image: str, boot: str, args: list[str], *, env: dict[str, str], flavor: str,
                    timeout_s: int, labels: dict[str, str], namespace: str | None) -> JobRequest:  # fmt: skip
    """The job: `bash -c BOOT NAME ARGS...`, the script in the environment, its short hash as a label."""
    if not all(isinstance(a, str) for a in args):
        raise TypeError("arguments must be strings")
    return JobRequest(
        image=image,
        command=["bash", "-c", boot, template.name, *args],
        flavor=flavor,
        timeout_s=timeout_s,
        env=_script_env(template, env),
        labels={**labels, "template_sha": template.short_sha},
        namespace=namespace,
    )


def _script_env(template: Template, env: dict[str, str] | None) -> dict[str, str]:
    return {
        SCRIPT_ENV: base64.b64encode(template.text.encode()).decode(),
        SCRIPT_SHA_ENV: template.sha256,
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }


def pip_script_request(
    template: Template,
    args: list[str],
    *,
    image: str,
    flavor: str,
    timeout_s: int,
    labels: dict[str, str],
    namespace: str | None = None,
    env: dict[str, str] | None = None,
) -> JobRequest:
    """Run `template` with the image's own `python3`, after `pip install` of its PEP 723 dependencies.

    For images that ship tools the script needs (llama.cpp's official image for the GGUF export).
    """
    deps = " ".join(shlex.quote(d) for d in template.dependencies)
    install = f"python3 -m pip install --quiet --no-cache-dir --break-system-packages {deps}; " if deps else ""
    boot = "set -euo pipefail; " + _decode_script(template) + install + f'exec python3 /tmp/{template.name} "$@"'
    return _script_request(template, image, boot, args, env=env or {}, flavor=flavor, timeout_s=timeout_s,
                           labels=labels, namespace=namespace)  # fmt: skip


def uv_script_request(
    template: Template,
    args: list[str],
    *,
    flavor: str,
    timeout_s: int,
    labels: dict[str, str],
    num_processes: int = 1,
    namespace: str | None = None,
    env: dict[str, str] | None = None,
) -> JobRequest:
    """A `JobRequest` that runs `template` with `uv` (one process, or one per GPU via accelerate)."""
    return _script_request(template, UV_IMAGE, _boot_script(template, num_processes), args,
                           env={"UV_NO_PROGRESS": "1", **(env or {})}, flavor=flavor, timeout_s=timeout_s,
                           labels=labels, namespace=namespace)  # fmt: skip


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
