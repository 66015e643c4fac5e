"""Job specs: the boot command really decodes and runs the exact template, with arguments untouched by a shell."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from trainer_space.jobs.reproduce import hf_run_command, python_run_snippet
from trainer_space.jobs.spec import (
    GPUS_ENV,
    SCRIPT_ENV,
    Template,
    job_name,
    load_template,
    parse_pep723,
    pip_script_request,
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

    request.env[SCRIPT_ENV] = base64.b64encode(b"print('tampered')").decode()
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
    assert run.startswith("hf jobs run") and '"$(base64 -w0 echo.py)"' in run and "--timeout 90m" in run
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
