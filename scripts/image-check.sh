#!/usr/bin/env bash
# Build the Dockerfile with podman (or docker), run the image read-only as uid 10001 and check what it
# answers; writes benchmarks/results/image-<date>.json. All options go to scripts/image_check.py.
# Needs: podman (Debian: apt-get install -y podman buildah runc debootstrap) or a running docker.
# PYTHON picks the interpreter (default: .venv/bin/python when there is one, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
exec "$PYTHON" -m scripts.image_check "$@"
