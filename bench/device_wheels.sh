#!/usr/bin/env bash
# Wheels the GPU benchmarks need on a lent device machine (no network there), into .whl/ (git-ignored).
#
# The device image has torch, accelerate, tokenizers, safetensors, pyarrow, pandas and huggingface_hub 1.x, but no
# trl or datasets, and an older transformers: these are the job template's pins (job_templates/train.py) plus what
# datasets needs beyond the image. huggingface_hub stays the image's (transformers 5.23 and datasets 5.2 accept 1.x;
# 2.x would pull httpx2 too).
#
#   bash bench/device_wheels.sh
#   then, with the device tool: carry [".whl"], command:
#     python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
#       .whl/*.whl && export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 || exit; nvidia-smi -L;
#     python3 bench/estimate_vs_gpu.py --json $OUT/estimate_vs_gpu.json 2>&1 | tee $OUT/estimate_vs_gpu.log;
#     python3 bench/train_gpu.py 2>&1 | tee $OUT/train_gpu.log   # sft-lora, dpo-full, then the speed pair (issue 24)
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir -p .whl
template_pin() { sed -n "s/^#     \"\($1==[^\"]*\)\",$/\1/p" job_templates/train.py; }
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  "$(template_pin trl)" "$(template_pin transformers)" "$(template_pin datasets)" "$(template_pin peft)" \
  "$(template_pin liger-kernel | cut -d';' -f1)" "$(template_pin kernels | cut -d';' -f1)" "tomlkit>=0.13.3" \
  "dill>=0.3.0,<0.4.2" "multiprocess<0.70.20"
du -sh .whl && ls .whl
