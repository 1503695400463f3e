#!/usr/bin/env bash
# The wheel set carried to the GPU machine (no network there; at most 64 MiB travels, the repository included):
# only what its image lacks, for its Python 3.12 on x86-64 Linux, with every platform tag those wheels use, and
# bitsandbytes trimmed to the two native libraries that machine can load (scripts/gpu/trim_wheel.py).
#   bash scripts/gpu/gpu_wheels.sh [DIR]            (default .whl/, which git ignores)
#   bash scripts/gpu/gpu_wheels.sh --no-trl [DIR]   without TRL (the check then skips TRL's side, saying why)
#   BNB_CUDA=cuda130 picks the CUDA library kept: the image's torch is 2.11.0+cu130 (KINDS.md of the device tool)
# It prints what will travel, the tracked and untracked-not-ignored tree included, and refuses past 64 MiB.
# Kiwi does not travel (its model is 72 MiB and does not compress): the check runs with the style metric off.
# Then on the GPU machine: bash scripts/gpu/gpu_check.sh --wheels DIR. Proof that the set is complete, on the
# CPU: scripts/gpu/rehearse.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-python3}
trl=1
while [[ $# -gt 0 && $1 == --* ]]; do
    case $1 in
        --no-trl) trl=0 ;;
        *) echo "gpu_wheels.sh: unknown option $1 (expected --no-trl)" >&2; exit 2 ;;
    esac
    shift
done
dir=${1:-.whl}
limit=$((64 * 2**20))

# The GPU machine's image (KINDS.md of the device tool) has torch 2.11, transformers 5.17, lightning 2.6.6,
# peft, torchmetrics, tensorboard, pyarrow, pandas, safetensors, tokenizers, xxhash, filelock, pytest,
# hypothesis, psutil, pyyaml, accelerate and huggingface_hub; it lacks these. Pinned to the versions the
# project is tested with, each wheel alone (--no-deps): pip resolves nothing against an index the machine
# cannot reach, and gpu_check.py reports any requirement the machine does not meet.
wanted=(bitsandbytes==0.50.2 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
        jsonargparse==4.53.0 docstring-parser==0.18.0 typeshed-client==2.15.0)
if [[ $trl == 1 ]]; then wanted+=(trl==1.16.0); fi

# pip matches each manylinux tag exactly, never a range: bitsandbytes is manylinux_2_24, tokenizers-like
# wheels manylinux_2_17/manylinux2014, newer ones manylinux_2_28.
platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
           manylinux2014_x86_64 manylinux1_x86_64 any; do
    platforms+=(--platform "$tag")
done
mkdir -p "$dir"
"$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none "${platforms[@]}" \
    -d "$dir" "${wanted[@]}"
# One version of each: two would stop the install.
dupes=$(ls "$dir"/*.whl | xargs -n1 basename | cut -d- -f1 | tr 'A-Z-.' 'a-z__' | sort | uniq -d)
if [[ -n $dupes ]]; then echo "gpu_wheels.sh: $dir holds two versions of: $dupes; empty it and run again" >&2; exit 1; fi
# Trimmed in place; a wheel trimmed before keeps its libraries (the trim asks only for those it keeps).
"$python" scripts/gpu/trim_wheel.py "$dir"/bitsandbytes-*.whl --keep cpu "${BNB_CUDA:-cuda130}"

wheels=$(du -cb "$dir"/*.whl | tail -1 | cut -f1)
# What the device tool sends beside the carried folder: tracked files and untracked ones git does not ignore.
tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r du -cb -- 2>/dev/null | awk '$2 == "total" {s += $1} END {print s + 0}')
total=$((wheels + tree))
ls -1 "$dir"
printf 'gpu_wheels.sh: %d wheels %s bytes + tree %s bytes = %s bytes (%.1f MiB) of the 64 MiB that travel\n' \
    "$(ls "$dir"/*.whl | wc -l)" "$wheels" "$tree" "$total" "$(awk "BEGIN {print $total / 1048576}")"
if (( total > limit )); then
    echo "gpu_wheels.sh: $total bytes is over the 64 MiB ($limit bytes) one device call carries; drop TRL (--no-trl) or files from the tree" >&2
    exit 1
fi
