"""Job specs: the boot command really decodes and runs the exact template, with arguments untouched by a shell."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from trainer_space.jobs.reproduce import hf_run_command, python_run_snippet
from trainer_space.jobs.spec import (
    ARG_MAX,
    GPUS_ENV,
    MAX_ARG_STRLEN,
    SCRIPT_SHA_ENV,
    Template,
    job_name,
    load_template,
    parse_pep723,
    pip_script_request,
    script_vars,
    template_constants,
    uv_script_request,
)
from trainer_space.validation import format_timeout, parse_timeout

NASTY_ARGS = ["--x", "$(touch /tmp/pwned)", "a b; echo hi", '{"columns": {"prompt": "it\'s"}}', "`id`", "*"]

ECHO_SCRIPT = """# /// script
# requires-python = ">=3.11"
# dependencies = ["trl==1.16.0", "torch==2.13.0"]
# ///
import json, sys
print("ARGS=" + json.dumps(sys.argv[1:]))
"""


def _template(text: str = ECHO_SCRIPT, name: str = "echo.py") -> Template:
    import hashlib

    meta = parse_pep723(text)
    return Template(name, text, hashlib.sha256(text.encode()).hexdigest(), tuple(meta["dependencies"]), ">=3.11")


def _fake_bin(tmp_path: Path, name: str, body: str) -> None:
    path = tmp_path / "bin" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _run(request, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, **request.env, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    return subprocess.run(request.command, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)


def test_uv_boot_decodes_checks_and_passes_args_verbatim(tmp_path):
    # a stand-in `uv`: `uv run --quiet FILE ARGS...` -> python FILE ARGS...
    _fake_bin(tmp_path, "uv", f'shift 2; exec {sys.executable} "$@"\n')
    request = uv_script_request(_template(), NASTY_ARGS, flavor="t4-small", timeout_s=3600, labels={"k": "v"})
    out = _run(request, tmp_path)
    assert out.returncode == 0, out.stderr
    import json

    assert json.loads(out.stdout.split("ARGS=")[1]) == NASTY_ARGS
    assert not Path("/tmp/pwned").exists()
    assert request.labels["template_sha"] == _template().short_sha


def test_boot_refuses_a_script_that_does_not_match_its_hash(tmp_path):
    _fake_bin(tmp_path, "uv", f'shift 2; exec {sys.executable} "$@"\n')
    request = uv_script_request(_template(), [], flavor="t4-small", timeout_s=3600, labels={})
    import base64

    (name,) = script_vars(request)
    request.env[name] = base64.b64encode(b"print('tampered')").decode()
    out = _run(request, tmp_path)
    assert out.returncode != 0
    assert "tampered" not in out.stdout


def test_multi_gpu_runs_the_script_itself_with_its_gpu_count(tmp_path):
    """uv runs the script (so its PEP 723 header is installed); the script starts one process per GPU itself."""
    _fake_bin(tmp_path, "uv", 'echo "UV $* GPUS=$TRAINER_SPACE_GPUS"\n')
    request = uv_script_request(_template(), ["--method", "sft"], flavor="a10g-largex2", timeout_s=3600, labels={},
                                gpus=2)  # fmt: skip
    out = _run(request, tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "UV run --quiet /tmp/echo.py --method sft GPUS=2"
    assert request.env[GPUS_ENV] == "2" and template_constants("train.py")["GPUS_ENV"] == GPUS_ENV


def test_pip_boot_installs_the_header_dependencies_then_runs_the_image_python(tmp_path):
    log = tmp_path / "pip.log"
    _fake_bin(
        tmp_path,
        "python3",
        f'if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then echo "$@" > {log}; exit 0; fi\nexec {sys.executable} "$@"\n',
    )
    request = pip_script_request(_template(), NASTY_ARGS, image="img", flavor="cpu-upgrade", timeout_s=3600, labels={})
    out = _run(request, tmp_path)
    assert out.returncode == 0, out.stderr
    import json

    assert json.loads(out.stdout.split("ARGS=")[1]) == NASTY_ARGS
    assert "trl==1.16.0 torch==2.13.0" in log.read_text()


def test_equivalent_commands_are_copyable_and_never_hold_a_token():
    t = _template()
    args = ["--method", "sft", "--dataset_mapping", '{"columns": {"prompt": "q"}}']
    request = uv_script_request(t, args, flavor="a10g-small", timeout_s=7200, labels={"a": "b"}, name="train-sft-x")
    cli = hf_run_command(request, t)
    assert cli.startswith("hf jobs run \\\n    --flavor a10g-small")
    assert (
        "--timeout 2h" in cli and "--secrets HF_TOKEN" in cli and "--label a=b" in cli and "--name train-sft-x" in cli
    )
    assert '\'{"columns": {"prompt": "q"}}\'' in cli  # shell-quoted
    py = python_run_snippet(request, t)
    compile(py, "<snippet>", "exec")
    assert 'os.environ["HF_TOKEN"]' in py and "hf_" not in py.replace("HF_TOKEN", "") and "name='train-sft-x'" in py
    request = pip_script_request(t, args, image="img:1", flavor="cpu-upgrade", timeout_s=5400, labels={"a": "b"})
    run = hf_run_command(request, t)
    assert run.startswith("hf jobs run") and "--timeout 90m" in run
    assert "base64 < echo.py | tr -d '\\n' | cut -c 1-64000" in run and "-w0" not in run  # no GNU-only flag
    compile(python_run_snippet(request, t), "<snippet>", "exec")


def test_job_names_are_readable_and_valid():
    assert job_name("train", "sft", "alice/Qwen2.5-0.5B-sft") == "train-sft-Qwen2-5-0-5B-sft"
    assert job_name("gguf", "alice/My Model!") == "gguf-My-Model"
    assert len(job_name("train", "sft", "a/" + "x" * 200)) == 63


@pytest.mark.parametrize("seconds, text", [(60, "1m"), (3600, "1h"), (5400, "90m"), (7200, "2h"), (61, "2m")])
def test_format_timeout(seconds, text):
    assert format_timeout(seconds) == text
    assert parse_timeout(text) >= seconds


def test_parse_timeout_rejects_garbage():
    with pytest.raises(ValueError):
        parse_timeout("2 hours; rm -rf /")


@pytest.mark.parametrize("name", ["train.py", "export_gguf.py"])
def test_shipped_templates_have_pinned_pep723_headers(name):
    template = load_template(name)
    text = (Path(__file__).parents[1] / "job_templates" / name).read_text()
    assert template.sha256 and template.text == text
    assert template.dependencies, "the header lists its dependencies"
    for dep in template.dependencies:
        assert "==" in dep, f"{dep} is not pinned"
    # the same header parsed by tomllib directly
    block = text.split("# /// script\n", 1)[1].split("# ///", 1)[0]
    meta = tomllib.loads("\n".join(line[2:] for line in block.splitlines()))
    assert tuple(meta["dependencies"]) == template.dependencies


def test_template_name_must_be_a_plain_file():
    with pytest.raises(ValueError):
        load_template("../app.py")


def test_real_train_template_request_is_well_formed():
    t = load_template("train.py")
    request = uv_script_request(t, ["--help"], flavor="t4-small", timeout_s=3600, labels={"trainer-space": "train"})
    assert request.image.startswith("ghcr.io/astral-sh/uv:")
    assert request.command[:2] == ["bash", "-c"]
    assert request.command[3:] == ["train.py", "--help"]
    assert request.env["TRAINER_SPACE_SCRIPT_SHA256"] == t.sha256


def test_the_job_torch_is_pytorchs_cuda_12_build_as_the_template_says():
    """uv reads [tool.uv] from the header: torch comes from PyTorch's index of the CUDA build TORCH_BUILD names."""
    meta = parse_pep723(load_template("train.py").text)
    build = template_constants("train.py")["TORCH_BUILD"]
    cu = "cu" + build["cuda"].replace(".", "")
    (source,) = meta["tool"]["uv"]["sources"]["torch"]
    (index,) = [i for i in meta["tool"]["uv"]["index"] if i["name"] == source["index"]]
    assert index["url"] == f"https://download.pytorch.org/whl/{cu}" and index["explicit"] is True  # torch only
    assert "linux" in source["marker"]  # elsewhere (a laptop running the script) PyPI's torch
    assert "torch==2.13.0" in meta["dependencies"]
    assert build["cuda"].startswith("12.") and build["min_driver"] == "525.60.13"


# ----------------------------------------------------------------------------- how the script reaches the job
def _big_template(size: int) -> Template:
    """A script of about `size` bytes: the echo script padded with comments (incompressible enough)."""
    import random

    rng = random.Random(0)
    pad = "".join(f"# {rng.getrandbits(256):064x}\n" for _ in range(size // 67))
    return _template(ECHO_SCRIPT + pad, "big.py")


def _exec_strings(request) -> list[bytes]:
    """What the kernel copies at exec: every argument and every `NAME=value` environment string."""
    return [a.encode() for a in request.command] + [f"{k}={v}".encode() for k, v in request.env.items()]


@pytest.mark.parametrize("name", ["train.py", "export_gguf.py"])
def test_what_carries_the_script_stays_far_from_the_kernels_limits(name):
    """Linux refuses to start a process (E2BIG, "Argument list too long") when one argument or environment string
    exceeds MAX_ARG_STRLEN (128 KiB) or all of them ARG_MAX (2 MiB with the usual 8 MiB stack). The script travels
    base64-encoded in 64 KiB variables, so no string nears the first; this fails when the whole request nears a
    quarter of the second (the template grown about 5x), long before a job would."""
    template = load_template(name)
    request = uv_script_request(template, ["--method=sft"] * 40, flavor="a10g-small", timeout_s=3600,
                                labels={}, env={"TRAINER_SPACE_CONFIG": "{" + "x" * 4000 + "}"})  # fmt: skip
    strings = _exec_strings(request)
    assert max(len(s) for s in strings) <= MAX_ARG_STRLEN // 2
    assert sum(len(s) + 1 for s in strings) <= ARG_MAX // 4, f"{name}: the request nears ARG_MAX"
    assert len(script_vars(request)) >= (1 if len(template.text) < 48_000 else 2)


def test_a_script_far_beyond_one_strings_limit_still_starts(tmp_path):
    """A 400 KB script (about 530 KB of base64: four times the 128 KiB per-string limit) starts and runs: the exec
    would fail with "Argument list too long" if any one variable carried it whole."""
    _fake_bin(tmp_path, "uv", f'shift 2; exec {sys.executable} "$@"\n')
    template = _big_template(400_000)
    request = uv_script_request(template, ["--x", "y"], flavor="t4-small", timeout_s=3600, labels={})
    assert len(script_vars(request)) == -(-len(base64_size(template)) // 64_000) >= 8
    out = _run(request, tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.split("ARGS=")[1]) == ["--x", "y"]
    assert request.env[SCRIPT_SHA_ENV] == template.sha256


def base64_size(template: Template) -> str:
    import base64

    return base64.b64encode(template.text.encode()).decode()


@pytest.mark.parametrize("wrap", [None, 76], ids=["bsd-base64", "gnu-base64"])
def test_the_copyable_command_builds_the_same_variables_on_linux_and_macos(tmp_path, wrap):
    """The command's `base64 < file | tr -d '\\n' | cut -c A-B` gives the app's exact variables whether base64 wraps
    its lines (GNU, at 76) or not (macOS): the script's chunks, byte for byte."""
    import base64

    template = _big_template(150_000)
    (tmp_path / "big.py").write_text(template.text)
    request = uv_script_request(template, [], flavor="t4-small", timeout_s=3600, labels={})
    real = base64.b64encode(template.text.encode()).decode()
    lines = [real[i : i + wrap] for i in range(0, len(real), wrap)] if wrap else [real]
    (tmp_path / "encoded").write_text("\n".join(lines) + "\n")
    _fake_bin(tmp_path, "base64", f"cat {tmp_path / 'encoded'}\n")  # this platform's base64, reading stdin
    cli = hf_run_command(request, template)
    for name in script_vars(request):
        (expression,) = re.findall(rf'--env {name}="(\$\([^)]*\))"', cli)
        env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
        shown = subprocess.run(["bash", "-c", f'printf %s "{expression}"'], cwd=tmp_path, env=env,
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert shown == request.env[name], name
