#!/usr/bin/env bash
# One command that proves the GPU path: a cuda server and a cpu server side by side (every endpoint,
# /models on cuda, seeded answers compared), single-PNG and bulk rates on both, the course recipes
# trained on the GPU against the bundled CPU model cards. About 3-5 minutes on one NVIDIA GPU;
# writes benchmarks/results/gpu-<date>.json. All options go to scripts/gpu_check.py:
#   scripts/gpu-check.sh                 # the full check (needs a CUDA GPU and MNIST in data/mnist)
#   scripts/gpu-check.sh --dry-run       # the same plumbing on CPU, in under a minute
#   scripts/gpu-check.sh --skip-train    # serving only
#
# On a GPU host whose Python already has a CUDA torch (any recent version: it is used as it is,
# never reinstalled), from the repository root:
#   pip install --no-deps -e .
#   pip install numpy pillow safetensors fastapi 'uvicorn[standard]' pydantic-settings \
#       prometheus-client python-multipart python-json-logger fastapi-offline httpx tenacity
#   pip install tqdm matplotlib scikit-learn     # the trainer's; plus torchvision built for the
#                                                # host's torch, with --no-deps (torch 2.11: 0.26)
#   apt-get install -y wrk                       # optional: without it the single-PNG rates are skipped
#   python -m trainer fetch-data                 # or copy data/mnist over (4 IDX files, raw or .gz)
#   scripts/gpu-check.sh
# PYTHON picks the interpreter (default: .venv/bin/python when there is one, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
exec "$PYTHON" -m scripts.gpu_check "$@"
