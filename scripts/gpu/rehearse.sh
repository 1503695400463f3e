#!/usr/bin/env bash
# The GPU check rehearsed on the CPU, as the device machine would run it: what fails here would fail there.
#   bash scripts/gpu/rehearse.sh [WHEELS]     (default .whl, made by scripts/gpu/gpu_wheels.sh when absent)
#
# 1. An environment of the device image's listed packages (KINDS.md of the device tool: torch 2.11.0,
#    transformers 5.17.0, lightning 2.6.6, ...; PyPI's torch, whose CUDA libraries load on a CPU), under
#    Python 3.12 as there (here: pyenv's, python3.12, or PYTHON312=...; without one, this machine's python3,
#    said in the output). Built from the index once and kept (REHEARSE_VENV); it must hold nothing of the
#    carried set and no Kiwi, as the image holds none.
# 2. The carried set (scripts/gpu/gpu_wheels.sh) and what travels with it: the bytes, tree included.
# 3. `gpu_check.sh --allow-cpu --shape tiny --wheels WHEELS` in a fresh work folder, with no network at all
#    (a network namespace of its own, where `unshare -n` works; else pip --no-index and the hub offline, said
#    in the output): the carried set installed with --no-index, then every stage to its end.
# 4. gpu_check.json read back: every stage ok, the set installed and imported (bitsandbytes from the trimmed
#    wheel), the style metric off; the wall time of each stage.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
wheels=${1:-.whl}
venv=${REHEARSE_VENV:-/tmp/diary-gpu-rehearse-py312}
# pyenv's shim is found on the path even where 3.12 is not one of its selected versions, and then fails: take the
# first candidate that runs.
python312=${PYTHON312:-}
if [[ -z $python312 ]]; then
    for candidate in $(command -v python3.12) $(ls -d "$(pyenv root 2>/dev/null || echo /root/.pyenv)"/versions/3.12*/bin/python3.12 2>/dev/null | sort -V -r); do
        if "$candidate" -c '' 2>/dev/null; then python312=$candidate; break; fi
    done
fi
if [[ -z $python312 || ! -x $python312 ]]; then
    python312=$(command -v python3)
    echo "rehearse.sh: no Python 3.12 here: rehearsing under $("$python312" --version) ($python312); the device has 3.12"
fi
start=$(date +%s)

# The image's packages the check meets, at the versions seen there; nothing of the carried set.
image=(torch==2.11.0 transformers==5.17.0 lightning==2.6.6 pytorch-lightning==2.6.6 "peft>=0.21,<0.22"
       torchmetrics==1.9.0 tensorboard pyarrow pandas safetensors==0.8.0 tokenizers==0.23.2 xxhash numpy==2.5.2
       huggingface_hub==1.33.0 accelerate==1.15.0 fsspec tqdm jinja2 pyyaml pytest hypothesis psutil packaging
       typing-extensions filelock requests httpx aiohttp)
if [[ ! -x $venv/bin/python ]]; then
    echo "== building $venv (once; needs the package index)"
    "$python312" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${image[@]}"
fi
py=$venv/bin/python
echo "== environment: $("$py" -c 'import sys, torch, transformers, lightning; print("Python", sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__, "lightning", lightning.__version__)')"
for module in bitsandbytes datasets dill multiprocess jsonargparse docstring_parser typeshed_client trl kiwipiepy kiwipiepy_model diary_lightning; do
    # From / : the repository's own folder would be found from here.
    if (cd / && env -u PYTHONPATH "$py" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$module') is None)") 2>/dev/null; then
        echo "rehearse.sh: $venv holds $module, which the device image lacks: remove it or set REHEARSE_VENV" >&2
        exit 1
    fi
done

echo "== what travels"
if [[ ! -d $wheels ]]; then PYTHON=$py bash scripts/gpu/gpu_wheels.sh "$wheels"; fi
travel=$(PYTHON=$py bash scripts/gpu/gpu_wheels.sh "$wheels" 2>/dev/null | tail -1)
echo "   $travel"

work=$(mktemp -d /tmp/diary-gpu-rehearse.XXXXXX)
# The base goes where the check chooses (/dev/shm when it has room), as on the device; removed at the end.
trap 'rm -rf "$work" /dev/shm/diary-gpu-check-base' EXIT
offline=(env -u PYTHONPATH -u DIARY_GPU_BASE_DIR PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 HF_HUB_OFFLINE=1
         TRANSFORMERS_OFFLINE=1 PYTHON="$py")
if unshare -n true 2>/dev/null; then
    offline=(unshare -n "${offline[@]}")
    echo "== the check, with no network (a network namespace of its own)"
else
    echo "== the check, pip with --no-index and the hub offline (unshare -n is refused here)"
fi
# Not through the repository: the work tree as the device receives it, tracked and untracked-not-ignored files.
mkdir -p "$work/tree"
git ls-files -z --cached --others --exclude-standard | xargs -0 -r cp --parents -t "$work/tree" --
cp -r "$(realpath "$wheels")" "$work/tree/.whl"
cd "$work/tree"
check_start=$(date +%s)
"${offline[@]}" bash scripts/gpu/gpu_check.sh --allow-cpu --shape tiny --wheels .whl --workdir "$work/check" \
    --out "$work/out" || echo "rehearse.sh: gpu_check.sh exited $?"
check_seconds=$(( $(date +%s) - check_start ))
cd "$root"
mkdir -p runs
cp "$work/out/gpu_check.json" runs/rehearsal-gpu_check.json

"$py" - "$work/out/gpu_check.json" "$check_seconds" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
stages = report["stages"]
print(f"== stages (wall seconds; the check {sys.argv[2]} s in all)")
for name, stage in stages.items():
    print(f"   {name:26} {stage['status']:8} {stage.get('seconds', '-'):>7}  limit {stage.get('limit', '-')}")
carried = ("bitsandbytes", "datasets", "dill", "multiprocess", "jsonargparse", "docstring-parser", "typeshed-client", "trl")
rows = stages["install"]["packages"]
problems = [f"{d}: {r['status']} {r.get('detail', '')} {r.get('unmet', '')}" for d, r in rows.items()
            if r["status"] not in ("present", "installed") or r.get("unmet")]
problems += [f"{d}: not installed from the set ({rows[d]['status']})" for d in carried if rows[d]["status"] != "installed"]
problems += [f"stage {n}: {s['status']}: {s.get('detail', '')[-500:]}" for n, s in stages.items() if s["status"] != "ok"]
if not report.get("finished"):
    problems.append("the report is not finished")
if not str(report.get("style_metric", "")).startswith("off"):
    problems.append(f"style_metric: {report.get('style_metric')}")
machine = stages["machine"]
print(f"   Python {machine['python']}, torch {machine['torch']}, bitsandbytes {machine['bitsandbytes']}, trl {machine['trl']}")
print(f"   the base: {report['base']['path']} ({report['base']['why']})")
for name in ("benchmark_diary_lightning", "benchmark_bf16", "benchmark_TRL", "predict"):
    print(f"   {name}: {len(stages.get(name, {}).get('rows', []))} rows")
if problems:
    sys.exit("rehearse.sh: FAILED\n  " + "\n  ".join(problems))
PY
echo "rehearse.sh: passed in $(( $(date +%s) - start )) s; the report: runs/rehearsal-gpu_check.json"
