#!/usr/bin/env bash
# The wheel set carried to the GPU machine (no network there; at most 64 MiB travels, the repository included):
# only what its image lacks, for its Python 3.12 on x86-64 Linux, with every platform tag those wheels use.
#   bash scripts/gpu/gpu_wheels.sh [DIR]            (default .whl/, which git ignores; prints the size)
#   bash scripts/gpu/gpu_wheels.sh --no-trl [DIR]   without TRL (the check then skips TRL's side, saying why)
#   bash scripts/gpu/gpu_wheels.sh --korean DIR     kiwipiepy and its model alone, for ROUGE by morpheme: too big
#                                               to travel with the rest (see docs/performance.md)
# Then on the GPU machine: bash scripts/gpu/gpu_check.sh --wheels DIR. Proof that the set is complete:
# scripts/gpu/gpu_wheels_proof.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-$(command -v python3 || command -v python)}
trl=1
korean=0
while [[ $# -gt 0 && $1 == --* ]]; do
    case $1 in
        --no-trl) trl=0 ;;
        --korean) korean=1 ;;
        *) echo "gpu_wheels.sh: unknown option $1 (expected --no-trl or --korean)" >&2; exit 2 ;;
    esac
    shift
done
dir=${1:-.whl}
limit_mib=60

# The GPU machine's image (docs/performance.md, 'The GPU machine') has torch 2.11, transformers 5.17,
# lightning 2.6.6, peft, torchmetrics, tensorboard, pyarrow, pandas, safetensors, tokenizers, xxhash, pytest,
# hypothesis, psutil, pyyaml, accelerate and huggingface_hub; it lacks these. Pinned to the versions the
# project is tested with, each wheel alone (--no-deps): pip resolves nothing against an index the machine
# cannot reach, and gpu_check.py reports any requirement the machine does not meet.
wanted=(bitsandbytes==0.50.2 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
        jsonargparse==4.53.0 docstring-parser==0.18.0 typeshed-client==2.15.0)
if [[ $trl == 1 ]]; then wanted+=(trl==1.16.0); fi
if [[ $korean == 1 ]]; then wanted=(kiwipiepy==0.24.1 kiwipiepy-model==0.24.0); limit_mib=0; fi

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
bytes=$(du -cb "$dir"/*.whl | tail -1 | cut -f1)
mib=$(( (bytes + 2**20 - 1) / 2**20 ))
ls -1 "$dir"
echo "gpu_wheels.sh: $(ls "$dir"/*.whl | wc -l) wheels, $bytes bytes ($mib MiB) in $dir"
if [[ $limit_mib -gt 0 && $mib -gt $limit_mib ]]; then
    echo "gpu_wheels.sh: over the $limit_mib MiB that can travel with the repository" >&2
    exit 1
fi
