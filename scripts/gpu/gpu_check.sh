#!/usr/bin/env bash
# One command for a GPU machine: the CUDA tests, the EEVE-10.8B-shape benchmark (diary_lightning and TRL's
# SFTTrainer) and one JSON report; under 8 minutes on one H100/H200. Without CUDA it says so and exits 0.
#   bash scripts/gpu/gpu_check.sh [--wheels DIR] [--out DIR]      (or DIARY_WHEELS=DIR; PYTHON=... picks the interpreter)
# Offline: make the wheel folder as docs/performance.md says ("The wheel folder"); the check installs what the
# machine lacks from it and keeps the torch it finds.
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-$(command -v python || command -v python3)}
exec "$python" scripts/gpu/gpu_check.py "$@"
