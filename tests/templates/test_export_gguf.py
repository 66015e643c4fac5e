"""Tests for job_templates/export_gguf.py.

Pure helpers are unit-tested here. The end-to-end tests (marked slow) run the script as a subprocess with
this venv's python on the tiny test model, with llama.cpp's real converter (fetched once from the
llama-cpp-python sdist, see trainer_space/jobs/backends/llama_cpp.py) and the Hub stand-in for download and upload.

What cannot run here: ``llama-quantize`` (K-quants, Q4_0...) and the llama.cpp generation check, because no
registry package ships those binaries. Their tests run only when ``python -m trainer_space.jobs.backends.llama_cpp
--build`` has compiled them (or ``$LLAMA_CPP_BIN_DIR`` points at them); otherwise they skip and the argv and
the missing-binary error are unit-tested instead.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from trainer_space.jobs.backends.llama_cpp import LLAMA_CPP_TAG, llama_cpp_converter

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "job_templates" / "export_gguf.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("export_gguf", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["export_gguf"] = module
    spec.loader.exec_module(module)
    return module


export = _load_script()

# ---------------------------------------------------------------------- real chat templates, one per family
# Copied from the models' tokenizer_config.json (Mistral's and Gemma 3's with their tool/image branches cut).

QWEN2_CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
    "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
MISTRAL_V03 = """{%- if messages[0]["role"] == "system" %}
    {%- set system_message = messages[0]["content"] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}
{{- bos_token }}
{%- for message in loop_messages %}
    {%- if message["role"] == "user" %}
        {%- if loop.last and system_message is defined %}
            {{- "[INST] " + system_message + "\\n\\n" + message["content"] + "[/INST]" }}
        {%- else %}
            {{- "[INST] " + message["content"] + "[/INST]" }}
        {%- endif %}
    {%- elif message["role"] == "assistant" %}
        {{- " " + message["content"]|trim + eos_token}}
    {%- else %}
        {{- raise_exception("Only user and assistant roles are supported, with the exception of an initial optional system message!") }}
    {%- endif %}
{%- endfor %}
"""
GEMMA3 = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- endif -%}
    {{ '<end_of_turn>\\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\\n'}}
{%- endif -%}
"""
PHI3 = (
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}"
    "{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
ZEPHYR = (  # not a supported family: <|user|> without <|end|>
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
FAMILY_TEMPLATES = {
    "chatml": (QWEN2_CHATML, "<|im_end|>"),
    "llama3": (LLAMA3, "<|eot_id|>"),
    "mistral": (MISTRAL_V03, "</s>"),
    "gemma": (GEMMA3, "<eos>"),
    "phi3": (PHI3, "<|endoftext|>"),
}
CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4"},
    {"role": "user", "content": "And 3+3?"},
]


# ------------------------------------------------------------------------------------------- unit tests


def test_header_is_the_single_source_of_job_requirements() -> None:
    header = re.search(r"(?ms)^# /// script\s*$(.*?)^# ///\s*$", SCRIPT.read_text()).group(1)
    parsed = tomllib.loads("\n".join(line.removeprefix("#").removeprefix(" ") for line in header.splitlines()))
    assert parsed["dependencies"] == export.JOB_PIP_REQUIREMENTS
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][\w.]*", req) for req in parsed["dependencies"])
    names = {req.split("==")[0].lower() for req in parsed["dependencies"]}
    assert {"peft", "huggingface_hub"} <= names
    assert "torch" not in names  # the image's CPU torch must stay; pip would pull a CUDA build


def test_help_runs_without_heavy_imports() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--quantizations" in done.stdout and "--pre_tokenizer" in done.stdout
    probe = (
        "import importlib.util, sys; spec = importlib.util.spec_from_file_location('e', sys.argv[1]); "
        "sys.modules['e'] = module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module); "
        "print(sorted(m for m in ('torch', 'transformers', 'peft', 'huggingface_hub', 'gguf') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe, str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert loaded.stdout.strip() == "[]", loaded.stderr  # heavy imports stay inside the functions that need them


def test_outtype_and_primary_file(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"dtype": "bfloat16"}))
    assert export.pick_outtype("auto", tmp_path) == "bf16"
    assert export.pick_outtype("f16", tmp_path) == "f16"
    (tmp_path / "config.json").write_text(json.dumps({"torch_dtype": "float32"}))
    assert export.pick_outtype("auto", tmp_path) == "bf16"  # fp32 weights keep their range (f16 overflows at 65504)
    (tmp_path / "config.json").write_text(json.dumps({"torch_dtype": "float16"}))
    assert export.pick_outtype("auto", tmp_path) == "f16"
    files = {q: export.GGUFSummary(tmp_path / q, q, "qwen2", 1, 1, 1, None, 0, None) for q in ("F16", "Q8_0", "Q4_K_M")}
    assert export.pick_primary([files["F16"], files["Q8_0"], files["Q4_K_M"]]).qtype == "Q4_K_M"
    assert export.pick_primary([files["F16"], files["Q8_0"]]).qtype == "Q8_0"
    assert export.pick_primary([files["F16"]]).qtype == "F16"


@pytest.mark.parametrize(
    ("files", "needle"),
    [
        ({"adapter_config.json": {"base_model_name_or_path": "x/base", "task_type": "SEQ_CLS"}}, "task_type SEQ_CLS"),
        ({"config.json": {"architectures": ["Qwen2ForSequenceClassification"]}}, "Qwen2ForSequenceClassification"),
    ],
)
def test_reward_models_are_refused_before_anything_is_merged(files: dict, needle: str, tmp_path: Path) -> None:
    """A reward model's score head would be lost by a causal-LM merge: exit 2 before the base is even fetched."""
    model = tmp_path / "reward"
    model.mkdir()
    for name, content in files.items():
        (model / name).write_text(json.dumps(content))
    with pytest.raises(export.ExportError) as err:
        export.resolve_input(export.ExportConfig(model=str(model)), tmp_path / "w", None)
    assert err.value.exit_code == 2 and needle in str(err.value) and "not a text-generation model" in str(err.value)
    assert not (tmp_path / "w").exists()


def test_image_is_pinned_to_the_release_the_tests_convert_with() -> None:
    assert re.fullmatch(r"ghcr\.io/ggml-org/llama\.cpp:full-b\d+", export.LLAMA_CPP_IMAGE)
    assert export.LLAMA_CPP_IMAGE.endswith(f"-{LLAMA_CPP_TAG}")


def test_quant_types_are_a_plain_literal_with_sizes_and_descriptions() -> None:
    tree = ast.parse(SCRIPT.read_text())
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "QUANT_TYPES")
    assert ast.literal_eval(node.value) == export.QUANT_TYPES  # the service layer can read it without importing
    required = ["Q2_K", "Q3_K_M", "Q4_0", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0", "F16", "BF16"]
    assert set(required) <= set(export.QUANT_TYPES)
    assert export.DEFAULT_QUANT == "Q4_K_M"
    for info in export.QUANT_TYPES.values():
        assert 2 < info["bits_per_weight"] <= 16 and info["description"]


def test_every_quant_type_has_a_gguf_file_type() -> None:
    import gguf

    for name in export.QUANT_TYPES:
        assert gguf.LlamaFileType[f"MOSTLY_{name}"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Q4_K_M", ["Q4_K_M"]), ("q8_0, f16", ["Q8_0", "F16"]), ("Q4_K_M,Q4_K_M,Q2_K,", ["Q4_K_M", "Q2_K"])],
)
def test_parse_quant_types(text: str, expected: list[str]) -> None:
    assert export.parse_quant_types(text) == expected


@pytest.mark.parametrize("text", ["Q4_K_X", "", " , ", "IQ2_XXS"])
def test_parse_quant_types_refuses_unknown(text: str) -> None:
    with pytest.raises(export.ExportError) as err:
        export.parse_quant_types(text)
    assert err.value.exit_code == 2 and "Q4_K_M" in str(err.value)


def test_argv_construction(tmp_path: Path) -> None:
    script, model, out = tmp_path / "convert_hf_to_gguf.py", tmp_path / "m", tmp_path / "m-F16.gguf"
    assert export.converter_argv(script, model, out, "f16", None) == [
        sys.executable, str(script), str(model), "--outfile", str(out), "--outtype", "f16",
    ]  # fmt: skip
    wrapped = export.converter_argv(script, model, out, "q8_0", "qwen2")
    assert wrapped[:2] == [sys.executable, "-c"] and wrapped[3:5] == [str(script), "qwen2"]
    assert wrapped[5:] == [str(model), "--outfile", str(out), "--outtype", "q8_0"]
    assert export.quantize_argv(Path("/app/llama-quantize"), out, tmp_path / "q.gguf", "Q4_K_M", 8) == [
        "/app/llama-quantize", str(out), str(tmp_path / "q.gguf"), "Q4_K_M", "8",
    ]  # fmt: skip
    smoke = export.smoke_argv(Path("/app/llama-completion"), out)
    assert smoke[:3] == ["/app/llama-completion", "-m", str(out)] and "-no-cnv" in smoke
    assert smoke[smoke.index("-n") + 1] == str(export.SMOKE_TOKENS)
    assert "-st" in export.smoke_argv(Path("/app/llama-cli"), out)


def test_missing_quantizer_fails_clearly_before_converting(tmp_path: Path) -> None:
    cfg = export.ExportConfig(model="m", llama_cpp_dir=str(tmp_path), convert_script=str(tmp_path / "nope.py"))
    with pytest.raises(export.ExportError) as err:
        export.produce_outputs(cfg, tmp_path, ["Q8_0", "Q4_K_M"], "f16", tmp_path, "m", tmp_path)
    assert err.value.exit_code == 2
    assert "llama-quantize" in str(err.value) and export.LLAMA_CPP_IMAGE in str(err.value)


def test_refuses_to_start_without_a_token(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert export.main(["--model", "alice/tiny", "--quantizations", "Q8_0"]) == 2
    assert capsys.readouterr().err.startswith("ERROR: HF_TOKEN is not set")


def test_the_quantizer_is_checked_first(hub, monkeypatch: pytest.MonkeyPatch, capsys, tmp_path: Path) -> None:
    """A K-quant without llama-quantize stops before any download or merge (it used to stop after both)."""
    hub.add_model("alice/tiny", files={"config.json": "{}", "model.safetensors": b"x" * 1000})
    monkeypatch.setenv("HF_TOKEN", hub.alice)
    argv = ["--model", "alice/tiny", "--quantizations", "Q4_K_M", "--push", "false", "--llama_cpp_dir",
            str(tmp_path / "no-llama"), "--work_dir", str(tmp_path / "w")]  # fmt: skip
    assert export.main(argv) == 2
    assert "Q4_K_M needs llama.cpp's llama-quantize" in capsys.readouterr().err
    assert not (tmp_path / "w" / "input").exists() and not hub.requests_to("/alice/tiny/resolve", "GET")


def test_only_the_final_weights_are_downloaded() -> None:
    """A full fine-tune pushed with `hub_strategy=checkpoint` also holds `last-checkpoint/` (and maybe
    `checkpoint-*/`): only the top-level files conversion needs are fetched."""
    files = {"config.json": 1, "model.safetensors": 10, "tokenizer.json": 1, "chat_template.jinja": 1,
             "README.md": 1, "training_args.bin": 1, "last-checkpoint/model.safetensors": 10,
             "last-checkpoint/config.json": 1, "checkpoint-100/model.safetensors": 10, "optimizer.pt": 5}  # fmt: skip
    assert export.download_plan(files) == ["chat_template.jinja", "config.json", "model.safetensors", "tokenizer.json"]
    legacy = {"config.json": 1, "pytorch_model.bin": 10, "last-checkpoint/pytorch_model.bin": 10}
    assert export.download_plan(legacy) == ["config.json", "pytorch_model.bin"]


def test_the_disk_is_checked_before_the_weights_are_downloaded(
    hub, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Sizes come from the repo's file list: a disk too small for the weights plus the GGUF files stops the job
    before the weights are downloaded (it used to check after the download)."""
    weights = b"\0" * 4_000_000  # an fp32 checkpoint: 2 MB at 16 bits
    hub.add_model("alice/big", files={"config.json": '{"dtype": "float32"}', "model.safetensors": weights,
                                      "last-checkpoint/model.safetensors": weights})  # fmt: skip
    free = shutil.disk_usage(tmp_path)._replace(free=5_000_000)  # < 4 MB download + 2 MB F16 + 1.06 MB Q8_0
    monkeypatch.setattr(export.shutil, "disk_usage", lambda _: free)
    cfg = export.ExportConfig(model="alice/big", outtype="f16", push=False)
    with pytest.raises(export.ExportError) as err:
        export.resolve_input(cfg, tmp_path / "w", hub.alice, ["F16", "Q8_0"])
    assert err.value.exit_code == 2 and "not enough disk" in str(err.value) and "alice/big" in str(err.value)
    assert (tmp_path / "w" / "input" / "config.json").is_file()  # the small files, read for the dtype
    assert not (tmp_path / "w" / "input" / "model.safetensors").exists()  # not the weights
    free = free._replace(free=8_000_000)
    resolved = export.resolve_input(cfg, tmp_path / "w", hub.alice, ["F16", "Q8_0"])
    assert (resolved.model_dir / "model.safetensors").stat().st_size == len(weights)
    assert not (resolved.model_dir / "last-checkpoint").exists()


def test_bad_arguments_exit_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_x")
    assert export.main(["--model", "alice/tiny", "--quantizations", "Q9"]) == 2
    assert export.main(["--model", "alice/tiny", "--output_repo", "no-slash"]) == 2
    assert export.main(["--model", "a/b", "--push", "false", "--pre_tokenizer", "Bad Name"]) == 2
    assert capsys.readouterr().err.count("ERROR:") == 3


def test_disk_check(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    gb = 1000**3
    # 16-bit 16 GB model: F16 intermediate reused as output + Q4_K_M (~4.9 GB) -> ~(16 + 4.9) * 1.1
    assert export.estimate_disk_bytes(16 * gb, ["F16", "Q4_K_M"], "f16") == pytest.approx(23 * gb, rel=0.01)
    assert export.estimate_disk_bytes(16 * gb, ["Q4_K_M"], "f16") == pytest.approx(23 * gb, rel=0.01)
    usage = shutil.disk_usage(tmp_path)._replace(free=10 * gb)
    monkeypatch.setattr(export.shutil, "disk_usage", lambda _: usage)
    with pytest.raises(export.ExportError) as err:
        export.check_resources(16 * gb, ["Q4_K_M"], "f16", tmp_path)
    assert err.value.exit_code == 2 and "not enough disk" in str(err.value) and "flavor" in str(err.value)
    export.check_resources(4 * gb, ["Q4_K_M"], "f16", tmp_path)  # fits


def test_outputs_above_the_hub_file_limit_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    usage = shutil.disk_usage(tmp_path)._replace(free=10**15)
    monkeypatch.setattr(export.shutil, "disk_usage", lambda _: usage)
    with pytest.raises(export.ExportError, match="50 GB"):
        export.check_resources(140 * 1000**3, ["F16"], "f16", tmp_path)  # a 70B model in 16 bits


@pytest.mark.parametrize(
    ("log", "code", "needle"),
    [
        ("** chkhsh:  " + "ab" * 32 + "\nNotImplementedError: BPE pre-tokenizer was not recognized", 1,
         "--pre_tokenizer"),
        ("ERROR:hf-to-gguf:Model FancyForCausalLM is not supported", 1, "FancyForCausalLM is not supported"),
        ("NotImplementedError: Architecture 'fancy' not supported!", 1, "fancy is not supported"),
        ("OSError: [Errno 28] No space left on device", 1, "disk"),
        ("", -9, "RAM"),
    ],
)  # fmt: skip
def test_converter_failures_are_explained(log: str, code: int, needle: str) -> None:
    err = export.diagnose_converter(code, log)
    assert err.exit_code == 2 and needle in str(err)


def test_unexplained_converter_failure_shows_the_last_line() -> None:
    err = export.diagnose_converter(1, "a\nValueError: something odd\n")
    assert err.exit_code == 1 and "something odd" in str(err)


def test_human_size_and_default_repo() -> None:
    assert export.human_size(512) == "512 B"
    assert export.human_size(2_583_424) == "2.58 MB"
    assert export.human_size(4_920_000_000) == "4.92 GB"
    assert export.human_size(14_960_000_000) == "15.0 GB"
    assert export.default_output_repo("alice", "Qwen/Qwen2.5-0.5B") == "alice/Qwen2.5-0.5B-GGUF"
    assert export.default_output_repo("alice", "/tmp/run/merged/") == "alice/merged-GGUF"


@pytest.mark.parametrize("family", list(FAMILY_TEMPLATES))
def test_template_family_detection(family: str) -> None:
    assert export.detect_template_family(FAMILY_TEMPLATES[family][0]) == family


@pytest.mark.parametrize("template", [ZEPHYR, None, "", "{{ messages[0]['content'] }}"])
def test_unknown_template_family(template: str | None) -> None:
    assert export.detect_template_family(template) is None


@pytest.mark.parametrize("family", list(FAMILY_TEMPLATES))
def test_modelfile_per_family(family: str) -> None:
    eos = FAMILY_TEMPLATES[family][1]
    stops = export.ollama_stops(family, eos)
    text = export.render_modelfile("m-Q4_K_M.gguf", family, stops)
    assert "FROM ./m-Q4_K_M.gguf\n" in text
    assert f'TEMPLATE """{export.OLLAMA_TEMPLATES[family]}"""' in text
    assert f"PARAMETER stop {json.dumps(eos)}" in text
    for stop in export.FAMILY_STOPS[family]:
        assert f"PARAMETER stop {json.dumps(stop)}" in text
    assert len(stops) == len(set(stops))


def test_modelfile_for_unknown_family_keeps_eos_stop() -> None:
    text = export.render_modelfile("m-Q8_0.gguf", None, export.ollama_stops(None, "</s>", "<|eot|>"))
    assert "TEMPLATE" not in text.replace("# no TEMPLATE", "").replace("a TEMPLATE block", "")
    assert 'PARAMETER stop "</s>"' in text and 'PARAMETER stop "<|eot|>"' in text
    assert "not one of the known families" in text


def test_ollama_files_written_from_the_gguf_metadata(tmp_path: Path) -> None:
    summary = export.GGUFSummary(tmp_path / "m-Q4_K_M.gguf", "Q4_K_M", "llama", 10, 15, 8192, LLAMA3, 128009,
                                 "<|eot_id|>", "<|eot_id|>")  # fmt: skip
    assert export.write_ollama_files(tmp_path, summary) == "llama3"
    assert (tmp_path / "template").read_text() == export.OLLAMA_TEMPLATES["llama3"]
    assert json.loads((tmp_path / "params").read_text())["stop"] == export.FAMILY_STOPS["llama3"]
    assert "FROM ./m-Q4_K_M.gguf" in (tmp_path / "Modelfile").read_text()


def _card_files(tmp_path: Path) -> list:
    files = []
    for qtype, size in (("Q4_K_M", 4_920_000), ("Q8_0", 8_100_000)):
        path = tmp_path / f"tiny-{qtype}.gguf"
        path.write_bytes(b"\0" * size)
        files.append(export.GGUFSummary(path, qtype, "qwen2", 26, 15, 512, QWEN2_CHATML, 2, "<|im_end|>"))
    return files


def test_model_card(tmp_path: Path) -> None:
    info = export.CardInfo("alice/tiny-GGUF", "alice/tiny", _card_files(tmp_path), "Q4_K_M", quantized_by="alice",
                           template_family="chatml", smoke="generated 8 tokens with llama-completion")  # fmt: skip
    card = export.render_model_card(info)
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["base_model"] == "alice/tiny" and meta["base_model_relation"] == "quantized"
    assert {"gguf", "llama.cpp"} <= set(meta["tags"]) and meta["quantized_by"] == "alice"
    assert (
        "| [tiny-Q4_K_M.gguf](https://huggingface.co/alice/tiny-GGUF/blob/main/tiny-Q4_K_M.gguf) | Q4_K_M | 4.92 MB |"
        in card
    )
    assert "| Q8_0 | 8.10 MB |" in card
    assert "llama-cli -hf alice/tiny-GGUF:Q4_K_M" in card
    assert "ollama run hf.co/alice/tiny-GGUF:Q4_K_M" in card and "ollama create" in card
    assert "LM Studio" in card and export.LLAMA_CPP_IMAGE in card


def test_model_card_for_an_adapter_names_both_bases(tmp_path: Path) -> None:
    info = export.CardInfo("alice/lora-GGUF", "alice/lora", _card_files(tmp_path), "Q4_K_M", adapter_base="org/base")
    meta = yaml.safe_load(export.render_model_card(info).split("---")[1])
    assert meta["base_model"] == ["alice/lora", "org/base"]


def test_model_card_for_a_local_input_has_no_base_model(tmp_path: Path) -> None:
    info = export.CardInfo("alice/x-GGUF", str(tmp_path), _card_files(tmp_path), "Q8_0")
    assert "base_model" not in yaml.safe_load(export.render_model_card(info).split("---")[1])


def test_safetensors_params(tmp_path: Path) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    save_file({"a": np.zeros((4, 8), np.float32), "b": np.zeros(3, np.float32)}, tmp_path / "model.safetensors")
    assert export.safetensors_params(tmp_path) == 35
    assert export.model_bytes_16bit(tmp_path) == 70


# ----------------------------------------------- Go rendering of the Ollama templates (where Go is installed)

_GO_RENDER = """package main

import (
\t"encoding/json"
\t"os"
\t"strings"
\t"text/template"
)

type Message struct {
\tRole    string `json:"role"`
\tContent string `json:"content"`
}

// Like Ollama's Template.Execute: system messages stay in .Messages and are also joined into .System.
func main() {
\tvar in struct {
\t\tTemplate string    `json:"template"`
\t\tMessages []Message `json:"messages"`
\t}
\tif err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
\t\tpanic(err)
\t}
\tvar system []string
\tmsgs := make([]*Message, len(in.Messages))
\tfor i := range in.Messages {
\t\tif in.Messages[i].Role == "system" {
\t\t\tsystem = append(system, in.Messages[i].Content)
\t\t}
\t\tmsgs[i] = &in.Messages[i]
\t}
\tt := template.Must(template.New("t").Parse(in.Template))
\tvars := map[string]any{"System": strings.Join(system, "\\n\\n"), "Messages": msgs, "Response": ""}
\tif err := t.Execute(os.Stdout, vars); err != nil {
\t\tpanic(err)
\t}
}
"""


@pytest.fixture(scope="module")
def go_render(tmp_path_factory: pytest.TempPathFactory):
    if shutil.which("go") is None:
        pytest.fail("Go is not installed: scripts/run-tests.sh installs Debian's golang-go")
    src = tmp_path_factory.mktemp("go") / "render.go"
    src.write_text(_GO_RENDER)
    binary = src.with_suffix("")
    env = {**os.environ, "GOCACHE": str(src.parent / "cache"), "GO111MODULE": "off"}
    subprocess.run(["go", "build", "-o", str(binary), str(src)], check=True, timeout=300, env=env)

    def render(template: str, messages: list[dict]) -> str:
        payload = json.dumps({"template": template, "messages": messages})
        done = subprocess.run([str(binary)], input=payload, capture_output=True, text=True, timeout=30, check=True)
        return done.stdout

    return render


def _render_jinja(template: str, messages: list[dict], eos: str) -> str:
    """Render like transformers' apply_chat_template (bos left out: llama.cpp adds it from the GGUF)."""
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str):
        raise ValueError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(messages=messages, add_generation_prompt=True, bos_token="", eos_token=eos)


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILY_TEMPLATES))
@pytest.mark.parametrize("turns", [2, 4], ids=["system-user", "system-user-assistant-user"])
def test_ollama_template_renders_like_the_jinja_template(go_render, family: str, turns: int) -> None:
    jinja, eos = FAMILY_TEMPLATES[family]
    messages = CONVERSATION[:turns]
    assert go_render(export.OLLAMA_TEMPLATES[family], messages) == _render_jinja(jinja, messages, eos)


# ------------------------------------------------------------------------------ end to end (slow, on CPU)


@pytest.fixture(scope="session")
def converter() -> Path:
    """llama.cpp's converter tree (fetched from PyPI on first use, ~90 s)."""
    return llama_cpp_converter()


@pytest.fixture(scope="module")
def tiny256(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Qwen2 with hidden size 256 (K-quant-compatible shapes)."""
    from tests.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny256") / "tiny", hidden_size=256)


def run_export(converter: Path, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    """Run the script like the job does: a subprocess, the converter's own gguf-py on PYTHONPATH."""
    full_env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    full_env.update({"PYTHONPATH": str(converter / "gguf-py"), "TOKENIZERS_PARALLELISM": "false"}, **(env or {}))
    argv = [sys.executable, str(SCRIPT), "--llama_cpp_dir", str(converter), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, env=full_env, cwd=cwd)


def _check(done: subprocess.CompletedProcess) -> None:
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]


def read_gguf(path: Path, converter: Path):
    """A GGUFReader from the converter's own gguf-py (what the job reads back with)."""
    sys.path.insert(0, str(converter / "gguf-py"))
    try:
        import gguf

        return gguf.GGUFReader(path)
    finally:
        sys.path.remove(str(converter / "gguf-py"))


def _field(reader, key: str):
    found = reader.fields.get(key)
    return None if found is None else found.contents()


def _eos_id(model_dir: Path) -> int:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir).eos_token_id


@pytest.mark.slow
def test_unknown_pre_tokenizer_exits_2_with_a_clear_error(converter: Path, tiny256: Path, tmp_path: Path) -> None:
    done = run_export(converter, "--model", str(tiny256), "--quantizations", "F16", "--push", "false",
                      "--output_dir", str(tmp_path / "out"))  # fmt: skip
    assert done.returncode == 2, done.stderr[-3000:]
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("ERROR: llama.cpp does not recognise this tokenizer's pre-tokenizer (hash ")
    assert "--pre_tokenizer NAME" in error
    assert not list((tmp_path / "out").glob("*.gguf"))


def _assert_outputs(files: dict[str, bytes], tmp_path: Path, converter: Path, eos_id: int) -> None:
    """The GGUF files read back right; Modelfile, template, params and card match them."""
    assert set(files) == {"tiny-F16.gguf", "tiny-Q8_0.gguf", "README.md", "Modelfile", "template", "params"}
    for name, file_type in (("tiny-F16.gguf", 1), ("tiny-Q8_0.gguf", 7)):
        (tmp_path / name).write_bytes(files[name])
        reader = read_gguf(tmp_path / name, converter)
        assert len(reader.tensors) > 0
        assert _field(reader, "general.architecture") == "qwen2"
        assert _field(reader, "general.file_type") == file_type
        assert _field(reader, "tokenizer.ggml.pre") == "qwen2"
        assert "<|im_start|>" in _field(reader, "tokenizer.chat_template")
        assert _field(reader, "tokenizer.ggml.eos_token_id") == eos_id
    assert len(files["tiny-Q8_0.gguf"]) < len(files["tiny-F16.gguf"])

    modelfile = files["Modelfile"].decode()
    assert "FROM ./tiny-Q8_0.gguf\n" in modelfile  # the quantized file, not the 16-bit one
    assert 'TEMPLATE """{{ range .Messages }}<|im_start|>{{ .Role }}' in modelfile
    assert 'PARAMETER stop "<|im_end|>"' in modelfile
    assert json.loads(files["params"])["stop"] == ["<|im_start|>", "<|im_end|>"]
    assert files["template"].decode() == export.OLLAMA_TEMPLATES["chatml"]

    card = files["README.md"].decode()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["base_model"] == "alice/tiny" and "gguf" in meta["tags"] and meta["quantized_by"] == "alice"
    for name, qtype in (("tiny-F16.gguf", "F16"), ("tiny-Q8_0.gguf", "Q8_0")):
        row = re.search(rf"\| \[{re.escape(name)}\]\([^)]*\) \| {qtype} \| ([\d.]+) MB \|", card)
        assert row, card
        assert float(row.group(1)) == pytest.approx(len(files[name]) / 1e6, abs=0.006)
    assert "ollama run hf.co/alice/tiny-GGUF:Q8_0" in card
    assert "this repo is private" in card


@pytest.mark.slow
def test_full_model_from_the_hub_to_gguf_repo(converter: Path, tiny256: Path, hub, tmp_path: Path) -> None:
    hub.add_model("alice/tiny", files=tiny256)
    env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": hub.alice, "HF_HOME": str(tmp_path / "hf-home")}
    work = tmp_path / "work"
    done = run_export(converter, "--model", "alice/tiny", "--quantizations", "F16,Q8_0", "--pre_tokenizer", "qwen2",
                      "--output_repo", "alice/tiny-GGUF", "--private", "true", "--work_dir", str(work), env=env)  # fmt: skip
    assert (work / "input" / "model.safetensors").is_file()  # downloaded from the stand-in
    assert "generation smoke test skipped: no llama.cpp runtime here" in done.stdout, done.stderr[-3000:]
    local = {p.name: p.read_bytes() for p in (work / "output").iterdir()}
    _assert_outputs(local, tmp_path, converter, _eos_id(tiny256))

    created = hub.requests_to("/api/repos/create", "POST")
    assert len(created) == 1
    assert hub.state.repo("alice/tiny-GGUF", "model").private  # the private option reached the Hub
    _check(done)
    assert hub.files("alice/tiny-GGUF") == local  # everything arrived, byte for byte
    assert len(hub.state.repo("alice/tiny-GGUF", "model").commits) == 1  # in one commit


@pytest.fixture(scope="module")
def lora_adapter(tiny256: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter on the tiny model whose B matrices are non-zero (so merging changes the weights).

    It carries its own tokenizer with a changed chat template: the fine-tune's template must win.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("lora") / "tiny-lora"
    model = AutoModelForCausalLM.from_pretrained(tiny256)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    peft_model.save_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(tiny256)
    tokenizer.chat_template = tokenizer.chat_template.replace("{% for", "{# fine-tuned #}{% for", 1)
    tokenizer.save_pretrained(out)
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == str(tiny256)
    return out


def _merged_v_proj(tiny256: Path, adapter: Path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny256)
    base_weight = base.model.layers[0].self_attn.v_proj.weight.detach().clone()
    merged = PeftModel.from_pretrained(base, adapter).merge_and_unload()
    return base_weight.numpy(), merged.model.layers[0].self_attn.v_proj.weight.detach().numpy()


@pytest.mark.slow
def test_lora_adapter_is_merged_then_converted(converter: Path, tiny256: Path, lora_adapter: Path,
                                               tmp_path: Path) -> None:  # fmt: skip
    import numpy as np

    out = tmp_path / "out"
    done = run_export(converter, "--model", str(lora_adapter), "--quantizations", "F16,Q8_0", "--pre_tokenizer",
                      "qwen2", "--push", "false", "--output_dir", str(out), "--work_dir", str(tmp_path / "w"))  # fmt: skip
    _check(done)
    assert f"is a LoRA adapter: merging it onto {tiny256}" in done.stdout
    assert sorted(p.name for p in out.glob("*.gguf")) == ["tiny-lora-F16.gguf", "tiny-lora-Q8_0.gguf"]
    assert (tmp_path / "w" / "merged" / "config.json").is_file()

    reader = read_gguf(out / "tiny-lora-F16.gguf", converter)
    tensor = next(t for t in reader.tensors if t.name == "blk.0.attn_v.weight")
    gguf_weight = np.asarray(tensor.data, dtype=np.float32).reshape(128, 256)
    base_weight, merged_weight = _merged_v_proj(tiny256, lora_adapter)
    assert not np.allclose(merged_weight, base_weight, atol=1e-2)  # the adapter does change the weights
    np.testing.assert_allclose(gguf_weight, merged_weight, atol=2e-3)  # and the GGUF holds the merged ones
    assert _field(reader, "tokenizer.chat_template").startswith("{# fine-tuned #}")
    assert _field(reader, "tokenizer.ggml.eos_token_id") == _eos_id(tiny256)
    assert len(read_gguf(out / "tiny-lora-Q8_0.gguf", converter).tensors) == len(reader.tensors)

    card = (out / "README.md").read_text()
    assert "a LoRA adapter merged onto" in card and "tokenizer and chat template from the adapter" in card
    assert 'PARAMETER stop "<|im_end|>"' in (out / "Modelfile").read_text()


def test_the_merge_holds_the_model_in_16_bit_and_checks_ram_first(
    tiny256: Path, lora_adapter: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An fp32 base is loaded straight in 16 bit (RAM ~ its 16-bit size, as the Space's flavor choice assumes)."""
    import numpy as np
    from safetensors.numpy import load_file

    assert "float32" in (tiny256 / "config.json").read_text()  # the tiny base is an fp32 checkpoint
    export.merge_adapter(lora_adapter, tiny256, tmp_path / "merged", "f16")
    assert json.loads((tmp_path / "merged" / "config.json").read_text())["dtype"] == "float16"
    saved = load_file(tmp_path / "merged" / "model.safetensors")
    assert {a.dtype for a in saved.values()} == {np.dtype("float16")}
    _, merged_fp32 = _merged_v_proj(tiny256, lora_adapter)
    np.testing.assert_allclose(saved["model.layers.0.self_attn.v_proj.weight"], merged_fp32, atol=2e-3)

    need = int(export.model_bytes_16bit(tiny256) * 1.3)
    monkeypatch.setattr(export, "_available_ram", lambda: need - 1)
    with pytest.raises(export.ExportError, match="not enough RAM to merge the adapter"):
        export.resolve_input(export.ExportConfig(model=str(lora_adapter)), tmp_path / "w", None)
    monkeypatch.setattr(export, "_available_ram", lambda: need)
    resolved = export.resolve_input(export.ExportConfig(model=str(lora_adapter)), tmp_path / "w", None)
    assert resolved.adapter_base == str(tiny256)
