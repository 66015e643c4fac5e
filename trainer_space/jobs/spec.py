"""Turn a job template plus its arguments into a Jobs request, and into copyable equivalents.

The job receives the template's exact text (base64, in environment variables of 64,000 characters each, checked
against its sha256 before it runs) so it runs exactly the version the app shows, with no upload step and no
dependency on the Space being public. Linux refuses to start a process when one argument or environment string is
over 128 KiB (MAX_ARG_STRLEN) or all of them over ARG_MAX (2 MiB with the usual stack): split, the script has no
cliff near its size (`tests/test_jobspec.py` fails when the whole request nears a quarter of ARG_MAX). Arguments
travel as positional parameters of `bash -c` (`"$@"`), so no visitor text is ever parsed by a shell.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import re
import shlex
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..hub.session import JobRequest

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "job_templates"
APP_LABEL = "trainer-space"  # label key set on every job this app submits; its value is the job kind
KEY_LABEL = "trainer-space-key"  # the label carrying a job's submission key (jobs/submission.py)
UV_IMAGE = "ghcr.io/astral-sh/uv:python3.12-bookworm"
SCRIPT_ENV = "TRAINER_SPACE_SCRIPT"  # the script's base64 in SCRIPT_ENV_0, SCRIPT_ENV_1, ... (SCRIPT_CHUNK each)
SCRIPT_CHUNK = 64_000  # characters: with its name, under half of one string's limit
MAX_ARG_STRLEN = 128 * 1024  # Linux: the longest argument or environment string exec accepts
ARG_MAX = 2 * 1024 * 1024  # Linux: all of them together, with the usual 8 MiB stack (a quarter of it)
SCRIPT_SHA_ENV = "TRAINER_SPACE_SCRIPT_SHA256"
GPUS_ENV = "TRAINER_SPACE_GPUS"  # the flavor's GPU count: train.py checks it at start and runs one process per GPU
JOB_NAME_MAX = 63
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


def label_value(value: str) -> str:
    """A label value: repo ids are safe already; keep them short."""
    return value[:128]


def space_subdomain(space_id: str) -> str:
    """`Owner/My_Space.v2` -> `owner-my-space-v2` (the Space's *.hf.space host name)."""
    return re.sub(r"[/_.]", "-", space_id.lower())


def parse_pep723(text: str) -> dict:
    """The inline script metadata (PEP 723) of a script, as a dict."""
    match = _PEP723.search(text)
    if not match:
        return {}
    body = "\n".join(line[2:] if line.startswith("# ") else line[1:] for line in match["body"].splitlines())
    return tomllib.loads(body)


@lru_cache(maxsize=8)
def template_constants(name: str) -> dict[str, Any]:
    """The literal constants (UPPER_CASE = literal) a template defines: the template is their single source."""
    found: dict[str, Any] = {}
    for node in ast.parse(load_template(name).text).body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
        if isinstance(target, ast.Name) and target.id.isupper():
            try:
                found[target.id] = ast.literal_eval(node.value)
            except ValueError:
                continue  # not a literal (a computed constant)
    return found


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


def _boot_script(template: Template) -> str:
    """Decode and check the script, then `uv run` it: uv installs its PEP 723 header (`[tool.uv]` sources included).

    Several GPUs need nothing more: the script starts one process per GPU itself (`GPUS_ENV`), in its own environment.
    """
    return "set -euo pipefail; " + _decode_script(template) + f'exec uv run --quiet /tmp/{template.name} "$@"'


def script_chunks(template: Template) -> dict[str, str]:
    """The template's base64 text, cut into SCRIPT_CHUNK-character environment variables (in order)."""
    encoded = base64.b64encode(template.text.encode()).decode()
    return {
        f"{SCRIPT_ENV}_{i}": encoded[at : at + SCRIPT_CHUNK]
        for i, at in enumerate(range(0, len(encoded), SCRIPT_CHUNK))
    }


def is_script_var(name: str) -> bool:
    """Whether an environment variable carries a piece of the script."""
    return name.startswith(f"{SCRIPT_ENV}_") and name[len(SCRIPT_ENV) + 1 :].isdigit()


def script_vars(request: JobRequest) -> list[str]:
    """The variables carrying a request's script, in order."""
    return sorted((k for k in request.env if is_script_var(k)), key=lambda k: int(k.rsplit("_", 1)[1]))


def _decode_script(template: Template) -> str:
    path = f"/tmp/{template.name}"
    pieces = " ".join(f'"${name}"' for name in script_chunks(template))
    return f'printf %s {pieces} | base64 -d > {path}; echo "${SCRIPT_SHA_ENV}  {path}" | sha256sum -c --quiet -; '


def _script_request(template: Template, image: str, boot: str, args: list[str], *, env: dict[str, str], flavor: str,
                    timeout_s: int, labels: dict[str, str], namespace: str | None, name: str | None) -> JobRequest:  # fmt: skip
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
        name=name,
    )


def job_name(*parts: str) -> str:
    """A readable job name from its parts (`train-sft-Qwen2.5-0.5B-sft` -> `train-sft-Qwen2-5-0-5B-sft`).

    The Hub keeps letters, digits, '-' and '_' (a name is also a label); unnamed jobs would be named after the image.
    """
    text = "-".join(p.split("/")[-1] for p in parts if p)
    return re.sub(r"-{2,}", "-", re.sub(r"[^A-Za-z0-9_-]", "-", text)).strip("-_")[:JOB_NAME_MAX] or "job"


def _script_env(template: Template, env: dict[str, str] | None) -> dict[str, str]:
    return {
        **script_chunks(template),
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
    name: str | None = None,
) -> JobRequest:
    """Run `template` with the image's own `python3`, after `pip install` of its PEP 723 dependencies.

    For images that ship tools the script needs (llama.cpp's official image for the GGUF export).
    """
    deps = " ".join(shlex.quote(d) for d in template.dependencies)
    install = f"python3 -m pip install --quiet --no-cache-dir --break-system-packages {deps}; " if deps else ""
    boot = "set -euo pipefail; " + _decode_script(template) + install + f'exec python3 /tmp/{template.name} "$@"'
    return _script_request(template, image, boot, args, env=env or {}, flavor=flavor, timeout_s=timeout_s,
                           labels=labels, namespace=namespace, name=name)  # fmt: skip


def uv_script_request(
    template: Template,
    args: list[str],
    *,
    flavor: str,
    timeout_s: int,
    labels: dict[str, str],
    gpus: int = 1,
    namespace: str | None = None,
    env: dict[str, str] | None = None,
    name: str | None = None,
) -> JobRequest:
    """A `JobRequest` that runs `template` with `uv` on a flavor with `gpus` GPUs (the script's `GPUS_ENV`)."""
    env = {"UV_NO_PROGRESS": "1", GPUS_ENV: str(int(gpus)), **(env or {})}
    return _script_request(template, UV_IMAGE, _boot_script(template), args, env=env, flavor=flavor,
                           timeout_s=timeout_s, labels=labels, namespace=namespace, name=name)  # fmt: skip
