#!/usr/bin/env bash
# One command for a GPU machine: the EEVE-10.8B-shape benchmark (NF4 and bf16 LoRA through diary_lightning,
# TRL's SFTTrainer, diaries/s through predict), the CUDA tests and one JSON report, inside 9 minutes on one
# H100/H200. Without a CUDA device it says so and exits 3: on the GPU machine that is the wrong interpreter.
#   bash scripts/gpu/gpu_check.sh [--wheels DIR] [--out DIR] [--allow-cpu --shape tiny]
# python3 is the interpreter (the GPU image's, which holds its CUDA torch); PYTHON=... picks another.
# Offline: the wheel folder comes from scripts/gpu/gpu_wheels.sh; the check installs what the machine lacks
# from it and keeps the torch it finds.
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-python3}
if ! command -v "$python" > /dev/null; then
    echo "gpu_check.sh: no interpreter '$python' here (PYTHON=... names another)" >&2
    exit 3
fi
exec "$python" scripts/gpu/gpu_check.py "$@"
