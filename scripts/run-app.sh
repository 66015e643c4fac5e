#!/usr/bin/env bash
# Set up the Space's runtime on a fresh machine and run the app on http://127.0.0.1:7860
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
[ -x .venv-app/bin/python ] || "$PYTHON" -m venv .venv-app
.venv-app/bin/pip install -q --disable-pip-version-check -r requirements.txt
exec .venv-app/bin/python app.py
