"""By hand: K-quants and a generation smoke test with real llama.cpp binaries (not part of CI).

No registry package ships `llama-quantize`; building it from the llama-cpp-python sdist takes 10-25
minutes on 2 cores, too long for CI. Build once, then run this:

    .venv/bin/python -m trainer_space.jobs.backends.llama_cpp --build
    .venv/bin/python bench/gguf_kquant.py

It exports the tiny test model (hidden 256) to Q4_K_M and Q8_0, reads the files back, generates a few
tokens with llama-completion and prints sizes and timings.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.templates import test_export_gguf as t
from tests.tiny_model import build_tiny_model
from trainer_space.jobs.backends.llama_cpp import llama_cpp_bin_dir, llama_cpp_converter


def main() -> int:
    bin_dir = llama_cpp_bin_dir()
    if bin_dir is None or not (bin_dir / "llama-quantize").is_file():
        print("llama.cpp binaries not built: run `python -m trainer_space.jobs.backends.llama_cpp --build` first")
        return 2
    converter = llama_cpp_converter()
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model(Path(tmp) / "tiny256", hidden_size=256)
        out = Path(tmp) / "out"
        start = time.time()
        done = t.run_export(converter, "--model", str(model), "--quantizations", "Q4_K_M,Q8_0", "--pre_tokenizer",
                            "qwen2", "--push", "false", "--output_dir", str(out), "--quantize_bin",
                            str(bin_dir / "llama-quantize"), "--cli_bin", str(bin_dir / "llama-completion"))  # fmt: skip
        print(f"exit {done.returncode} in {time.time() - start:.1f} s")
        for path in sorted(out.glob("*.gguf")):
            reader = t.read_gguf(path, converter)
            print(f"{path.name}: {path.stat().st_size / 1e6:.2f} MB, file_type {t._field(reader, 'general.file_type')}")
        print(next((line for line in done.stdout.splitlines() if "generated" in line), "no generation line"))
        return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
