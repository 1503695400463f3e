#!/usr/bin/env bash
# Proof, on a CPU machine, that the carried wheel set (scripts/gpu/gpu_wheels.sh) is all the GPU machine needs:
# a Python 3.12 environment holding the GPU machine's versions of its preinstalled packages and nothing of
# the set, then the set installed from the folder alone (no index), then the CUDA-free parts of the check.
#   bash scripts/gpu/gpu_wheels_proof.sh [WHEELS]        (default .whl; PYTHON312=... picks the interpreter,
#                                                      PROOF_VENV=... the environment, kept between runs)
# Needs the package index once, to build the environment; the install from the set does not.
set -euo pipefail
cd "$(dirname "$0")/../.."
wheels=$(realpath "${1:-.whl}")
python312=${PYTHON312:-$(command -v python3.12 || ls /root/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | head -1)}
venv=${PROOF_VENV:-/tmp/diary-gpu-proof-py312}
work=$(mktemp -d /tmp/diary-gpu-proof.XXXXXX)
[[ -x $python312 ]] || { echo "gpu_wheels_proof.sh: no Python 3.12 here (set PYTHON312)" >&2; exit 2; }
[[ -d $wheels ]] || { echo "gpu_wheels_proof.sh: no wheel folder $wheels: run scripts/gpu/gpu_wheels.sh first" >&2; exit 2; }

# The GPU machine's image as seen there (docs/performance.md): torch 2.11.0 (PyPI's build: CUDA libraries
# that run on the CPU), transformers 5.17.0, lightning 2.6.6 and the rest of what the check imports.
image=(torch==2.11.0 transformers==5.17.0 lightning==2.6.6 pytorch-lightning==2.6.6 peft==0.21.2
       torchmetrics==1.9.0 tensorboard pyarrow pandas safetensors==0.8.0 tokenizers==0.23.2 xxhash
       numpy==2.5.2 huggingface_hub==1.33.0 accelerate==1.15.0 fsspec tqdm jinja2 pyyaml
       pytest hypothesis psutil packaging typing-extensions)
if [[ ! -x $venv/bin/python ]]; then
    "$python312" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${image[@]}"
fi
py=$venv/bin/python
"$py" -c 'import sys; assert sys.version_info[:2] == (3, 12), sys.version'
for name in bitsandbytes datasets jsonargparse trl dill multiprocess; do
    if "$py" -c "import $name" 2>/dev/null; then
        echo "gpu_wheels_proof.sh: $venv already has $name: the proof needs an environment without the set" >&2
        exit 1
    fi
done
echo "== environment: $("$py" -c 'import sys, torch, transformers, lightning; print("Python", sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__, "lightning", lightning.__version__)')"

echo "== pip's own resolver, from the set alone (no index), against the environment"
"$py" -m pip install --dry-run --no-index --find-links "$wheels" --disable-pip-version-check \
    bitsandbytes datasets 'jsonargparse[signatures]' trl | tail -1

echo "== the check's install stage: each package from the set on its own, then probed"
"$py" scripts/gpu/gpu_check.py --allow-cpu --skip-benchmark --wheels "$wheels" --workdir "$work/check" --budget 900
"$py" - "$work/check/gpu_check.json" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
rows = report["stages"]["install"]["packages"]
for dist, row in rows.items():
    print(f"   {dist:18} {row['status']:10} {row.get('version') or ''} {'; '.join(row.get('unmet', []))}")
bad = {d: r for d, r in rows.items() if r["status"] not in ("present", "installed") or r.get("unmet")}
assert not bad, f"not installed, or requirements unmet: {bad}"
assert report["stages"]["tests"]["status"] == "ok", report["stages"]["tests"]
print("   every package installed or present; the CUDA tests collected (and skipped) under Python 3.12")
EOF

echo "== the CUDA-free parts of the check, with the set on the path"
export PYTHONPATH="$PWD:$work/check/site" HF_HUB_OFFLINE=1
"$py" -m diary_lightning fit --config configs/eeve-qlora.yaml --print_config > /dev/null
"$py" -m diary_lightning fit --config configs/eeve-qlora-seed.yaml --print_config > /dev/null
echo "   both recipes parse"
"$py" -m pytest -q -p no:cacheprovider tests/test_gpu_check.py tests/test_recipes.py tests/test_synthesis_teachers.py \
    -m "not slow"
"$py" -m pytest -q -m "" -p no:cacheprovider tests/test_benchmark.py -k gpu_benchmark
rm -rf "$work"
echo "gpu_wheels_proof.sh: passed"
