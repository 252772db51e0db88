#!/usr/bin/env bash
# Build .venv-realmb: a Python 3.12 venv with the REAL Megatron-Bridge 0.6.2 and megatron-core 0.19.2, for
# tests/realmb (our backend's configs through the real recipes, runtime_config_update, GPTDataset and
# GPTSFTDatasetBuilder, on a CPU).
#
#   scripts/realmb_venv.sh            # build or reuse .venv-realmb (a stamp records what it was built from)
#   REALMB_VENV=/path scripts/realmb_venv.sh
#
# Why not `pip install megatron-bridge==0.6.2`: Megatron-Bridge 0.6.2 needs Python >= 3.12, < 3.13, and its full
# dependency set does not install on a CPU machine (fast-hadamard-transform and transformer-engine build CUDA
# extensions; megatron-core[dev] pins nvidia-resiliency-ext==0.6.0, which PyPI does not have). So: both wheels
# with --no-deps, plus the pure-Python packages their imported modules need. Modules that cannot be installed
# here get import-only stand-ins in tests/realmb/stubs, which only the test puts on PYTHONPATH.
# torch: PyPI's cp312 build (CUDA libraries included; it runs on a CPU). Without a Python 3.12 this script says
# so and exits 0: the test is then skipped with that reason.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${REALMB_VENV:-.venv-realmb}
STAMP="$VENV/.realmb-stamp"

find_python312() {
    local candidate
    for candidate in "${PYTHON312:-}" python3.12 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

if ! PY312=$(find_python312); then
    echo "realmb_venv: no Python 3.12 found (python3.12, \$PYTHON312 or pyenv): tests/realmb will be skipped"
    exit 0
fi

# The versions this venv holds; a changed list (or script) rebuilds it.
TORCH=torch==2.13.0
MEGATRON=(megatron-bridge==0.6.2 megatron-core==0.19.2)
# What Megatron-Bridge's and megatron-core's imported modules need (megatron-bridge's own pins where it has them)
PURE=(
    "transformers>=5.8,<=5.12.1" "tokenizers" "safetensors" "huggingface_hub" "accelerate" "peft>=0.18.1"
    "datasets>=2.20.0" "einops~=0.8" "omegaconf>=2.3.0" "hydra-core>=1.3.4,<1.4" "rich" "regex" "pyyaml"
    "tqdm" "six" "typing-extensions" "packaging>=24.2" "numpy" "sentencepiece" "tiktoken" "pyarrow>=14"
    "pandas" "tensorboard>=2.19" "wandb==0.29.0" "zstandard" "orjson" "multi-storage-client~=0.50"
    "tensorstore~=0.1" "megatron-energon~=7.0" "diffusers>=0.36.0" "nvidia-modelopt>=0.44"
)
# nemotron's own dependencies (the package itself comes from the source tree on PYTHONPATH)
OURS=("hydra-submitit-launcher==1.2.0" "submitit>=1.5" "pydantic>=2.5,<3" "fsspec>=2024.2" "xxhash>=3"
    "gigatoken>=0.10")
WANT="$(cat "$0") $PY312"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
    echo "realmb_venv: $VENV is up to date"
    exit 0
fi

start=$(date +%s)
rm -rf "$VENV"
"$PY312" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
"${PIP[@]}" --upgrade pip
"${PIP[@]}" "$TORCH"
"${PIP[@]}" --no-deps "${MEGATRON[@]}"
"${PIP[@]}" "$TORCH" "${PURE[@]}" "${OURS[@]}"
echo "realmb_venv: pip's list of megatron-bridge requirements left out above is expected (CUDA builds, unused)"
echo "$WANT" >"$STAMP"
echo "realmb_venv: built $VENV in $(($(date +%s) - start)) s"
