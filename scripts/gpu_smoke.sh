#!/usr/bin/env bash
# The smallest real GPU run of the whole chain through nemotron's stages, on one GPU node, in the released images:
# Megatron-Bridge pretraining (10 steps) -> stage=convert (AutoBridge: Megatron -> Hugging Face) -> NeMo-RL GRPO
# (3 steps, with a validation that runs) -> stage=eval; then tokens/s per GPU (and MFU where the library reports
# it) and the lineage. Nothing gated is downloaded: the model is Qwen/Qwen3-0.6B (Apache-2.0, public), through
# Megatron-Bridge 0.6's qwen3_600m_pretrain_config recipe.
#
#   salloc -N1 --gpus-per-node=8 ... ; scripts/gpu_smoke.sh [WORK_DIR]      # pyxis: srun --container-image per step
#   RUNNER=docker scripts/gpu_smoke.sh [WORK_DIR]                             # a GPU machine with docker
#   DRY_RUN=1 scripts/gpu_smoke.sh [WORK_DIR]                                # print the steps, run nothing
#
# Each library runs in its own image (issue 11, finding 10): Megatron-Bridge >= 0.6 lives in the NeMo image
# (MB_IMAGE: data prep, pretraining, conversion, eval), NeMo-RL 0.7 in its own image (RL_IMAGE, checkout in
# /opt/nemo-rl), where Megatron-Bridge exists only in NeMo-RL's per-worker venvs. nemotron is installed into each
# container from this checkout with its `train` extra (the data stages need it); with pyxis each image's container
# is named, so it is installed once per image and reused by the later steps.
#
# Environment: RUNNER (pyxis | docker | here; default pyxis inside a Slurm allocation, else docker), MB_IMAGE,
# RL_IMAGE, NGPU (default: every GPU of the node), HF_MODEL (default Qwen/Qwen3-0.6B), PEAK_TFLOPS (per GPU, for
# MFU; default by GPU name), HF_TOKEN / WANDB_API_KEY as usual (read from the environment, never written anywhere).
# The work dir must be on storage the containers see (it is mounted at the same path).
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=$(realpath -m "${1:-${TMPDIR:-/tmp}/nemotron-gpu-smoke}")
MB_IMAGE=${MB_IMAGE:-nvcr.io#nvidia/nemo:26.08}
RL_IMAGE=${RL_IMAGE:-nvcr.io#nvidia/nemo-rl:v0.7.0}
HF_MODEL=${HF_MODEL:-Qwen/Qwen3-0.6B}
DRY_RUN=${DRY_RUN:-0}
if [ -n "${SLURM_JOB_ID:-}" ] && command -v srun >/dev/null; then RUNNER=${RUNNER:-pyxis}; else RUNNER=${RUNNER:-docker}; fi
LOGS=$WORK/logs
STORE=$WORK/store
SEQ=256

say() { echo "== gpu_smoke: $*" >&2; }
fail() { echo "gpu_smoke.sh: $*" >&2; exit 2; }

# -- where each step runs --------------------------------------------------------------------------------------

# in_image IMAGE LOG COMMAND: run COMMAND (bash) in IMAGE on this node with the GPUs, $WORK and this checkout
# mounted, nemotron installed; its stderr is also kept in $LOGS/LOG.log, its stdout (the JSON lines) is returned.
in_image() {
  local image=$1 log=$2 command=$3
  local setup="export NEMOTRON_ARTIFACTS_ROOT=$STORE HF_HOME=$WORK/hf_home PYTHONUNBUFFERED=1; cd $WORK"
  local install="python -c 'import nemotron' 2>/dev/null || python -m pip install -q -e '$SRC[train]' >&2"
  local script="$setup; $install; $command"
  if [ "$DRY_RUN" = 1 ]; then
    printf '[%s] %s\n    %s\n' "$RUNNER" "$image" "$command" >&2
    return 0
  fi
  case $RUNNER in
    pyxis)  # one named container per image: nemotron is installed into it once
      srun --ntasks=1 --nodes=1 --container-image="$image" --container-name="smoke-$(echo "$image" | tr -c 'a-z0-9' -)" \
        --container-mounts="$WORK:$WORK,$SRC:$SRC" --container-workdir="$WORK" \
        bash -c "$script" 2> >(tee "$LOGS/$log.log" >&2) ;;
    docker)
      docker run --rm --gpus all --ipc=host --shm-size=16g -v "$WORK:$WORK" -v "$SRC:$SRC" -w "$WORK" \
        -e HF_TOKEN -e WANDB_API_KEY "${image/\#//}" bash -c "$script" 2> >(tee "$LOGS/$log.log" >&2) ;;
    here)   # this environment has what the step needs (a development machine)
      bash -c "$script" 2> >(tee "$LOGS/$log.log" >&2) ;;
    *) fail "RUNNER=$RUNNER: use pyxis, docker or here" ;;
  esac
}

# uri_of: the art:// URI of the last artifact of TYPE among the JSON lines on stdin (the exact version committed)
uri_of() {
  if [ "$DRY_RUN" = 1 ]; then echo "art://$2:vN"; return 0; fi
  grep "\"type\": \"$1\"" | tail -1 | sed -e 's/.*"uri": "\([^"]*\)".*/\1/'
}

mkdir -p "$WORK" "$LOGS"
if [ "$DRY_RUN" != 1 ]; then
  command -v nvidia-smi >/dev/null || fail "no nvidia-smi here; run it on a GPU node"
  NGPU=${NGPU:-$(nvidia-smi -L | wc -l)}
  GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
else
  NGPU=${NGPU:-8}
  GPU_NAME="NVIDIA H100 80GB HBM3 (dry run)"
fi
[ "$NGPU" -ge 1 ] || fail "no GPU visible"
say "$NGPU x $GPU_NAME; runner $RUNNER; work dir $WORK; Megatron-Bridge image $MB_IMAGE, NeMo-RL image $RL_IMAGE"
START=$SECONDS

# -- 0. the model's config and tokenizer (no weights), so the jobs download nothing else --------------------------
HF_CONFIG=$WORK/hf-config
in_image "$MB_IMAGE" hf-config "[ -f $HF_CONFIG/config.json ] || python -c \"from huggingface_hub import snapshot_download as d; \
d('$HF_MODEL', local_dir='$HF_CONFIG', allow_patterns=['*.json', '*.txt', '*.model', 'merges.txt'])\" >&2"

# -- 1. data, tokenized with the model's tokenizer (CPU, a minute) -------------------------------------------------
DATA=$(in_image "$MB_IMAGE" data "python -m nemotron stage=pretrain_data data.tokenizer.name_or_path=$HF_CONFIG \
  scale.max_rows_per_source=3000 && python -m nemotron stage=rl_data")
PRETRAIN_DATA=$(uri_of PretrainBlendsArtifact pretrain-data-tiny <<<"$DATA")
RL_DATA=$(uri_of SplitJsonlDataArtifact rl-data-tiny <<<"$DATA")

# -- 2. Megatron-Bridge pretraining: 10 steps of 8 sequences of 256 tokens per GPU ---------------------------------
GBS=$((8 * NGPU))
MODEL=(model=llama32_1b model.recipe.module=megatron.bridge.recipes.qwen model.recipe.pretrain=qwen3_600m_pretrain_config
  model.recipe.hf_repo=$HF_MODEL model.recipe.hf_repo_gated=false model.hf_model=$HF_MODEL model.hf_config=$HF_CONFIG
  model.max_seq_len=$SEQ)
PRETRAIN=("${MODEL[@]}" stage=pretrain "run.data=$PRETRAIN_DATA" model.batch.pretrain.global_batch_size=$GBS
  model.batch.pretrain.micro_batch_size=8 stage.name=smoke-pretrain-model stage.steps=10 stage.warmup_steps=2
  stage.eval_every=5 stage.eval_batches=2 stage.checkpoint_every=10 stage.log_every=1)
in_image "$MB_IMAGE" pretrain-dry-run "python -m nemotron ${PRETRAIN[*]} launcher=gpu_2x8 launcher.nodes=1 \
  launcher.gpus_per_node=$NGPU stage.dry_run=true hydra.sweep.dir=$WORK/dry-runs/pretrain >&2"
PRETRAINED=$(in_image "$MB_IMAGE" pretrain "python -m nemotron ${PRETRAIN[*]}" | uri_of ModelArtifact smoke-pretrain-model-tiny)

# -- 3. stage=convert: the Megatron checkpoint as a Hugging Face model (AutoBridge, CPU) -------------------------
CONVERTED=$(in_image "$MB_IMAGE" convert "python -m nemotron stage=convert ${MODEL[*]} run.model=$PRETRAINED" \
  | uri_of ModelArtifact smoke-pretrain-model-hf-tiny)

# -- 4. NeMo-RL GRPO from the converted model: 3 steps of 4 prompts x 4 answers, validation on 16 problems ------
RL=("${MODEL[@]}" stage=rl "run.model=$CONVERTED" "run.data=$RL_DATA" model.rl.nemo_rl_dir=/opt/nemo-rl
  model.rl.max_total_sequence_length=512 model.rl.train_global_batch_size=16 model.rl.train_micro_batch_size=2
  model.rl.vllm_cfg.tensor_parallel_size=1 stage.name=smoke-rl-model stage.steps=3 stage.prompts_per_step=4
  stage.group_size=4 stage.max_new_tokens=256 stage.eval_every=3 stage.eval_problems=16 stage.checkpoint_every=3)
in_image "$RL_IMAGE" rl-dry-run "python -m nemotron ${RL[*]} launcher=gpu_2x8 launcher.nodes=1 \
  launcher.gpus_per_node=$NGPU stage.dry_run=true hydra.sweep.dir=$WORK/dry-runs/rl >&2"
RL_MODEL=$(in_image "$RL_IMAGE" rl "python -m nemotron ${RL[*]}" | uri_of ModelArtifact smoke-rl-model-tiny)

# -- 5. stage=eval of the Hugging Face model (GRPO's own validation accuracy is in its log) -----------------------
EVAL=$(in_image "$MB_IMAGE" eval "python -m nemotron stage=eval run.model=$CONVERTED run.problems=$RL_DATA \
  run.text=$PRETRAIN_DATA device=cuda stage.seq_len=$SEQ stage.max_problems=32 stage.max_new_tokens=64" \
  | uri_of EvalResultsArtifact eval-smoke-pretrain-model-hf-tiny)

# -- 6. what it measured, and the lineage ----------------------------------------------------------------------------
if [ "$DRY_RUN" = 1 ]; then say "dry run: nothing ran"; exit 0; fi
case ${PEAK_TFLOPS:-$GPU_NAME} in  # dense BF16 peak per GPU, for MFU
  *H100*|*H200*|*H800*|*H20*) PEAK=989 ;; *B200*) PEAK=2250 ;; *A100*) PEAK=312 ;; [0-9]*) PEAK=$PEAK_TFLOPS ;; *) PEAK= ;;
esac
report() {  # label, log, pattern whose last number is reported (skipping the first, warm-up occurrence)
  local value
  value=$(grep -o "$3[^|]*" "$LOGS/$2.log" | tail -n +2 | tail -1 | grep -o '[0-9][0-9.]*' | tail -1 || true)
  echo "${value:-not reported}"
}
MS=$(report "Megatron-Bridge" pretrain "elapsed time per iteration (ms):")
TFLOPS=$(report "Megatron-Bridge" pretrain "throughput per GPU (TFLOP/s/GPU):")
say "Megatron-Bridge pretraining ($HF_MODEL architecture, seq $SEQ, global batch $GBS on $NGPU GPUs):"
if [ "$MS" != "not reported" ]; then
  echo "  tokens/s per GPU: $(awk -v b="$GBS" -v s="$SEQ" -v ms="$MS" -v g="$NGPU" 'BEGIN {printf "%.0f", b*s/(ms/1000)/g}')"
fi
echo "  model TFLOP/s per GPU: $TFLOPS${PEAK:+; MFU: $(awk -v t="$TFLOPS" -v p="$PEAK" 'BEGIN {if (t+0 > 0) printf "%.1f%%", 100*t/p; else printf "n/a"}')}"
say "NeMo-RL GRPO (last step):"
echo "  E2E tokens/s per GPU: $(report NeMo-RL rl "E2E (Tokens/sec/gpu):")"
echo "  policy training tokens/s per GPU: $(report NeMo-RL rl "Policy Training (Tokens/sec/gpu):")"
echo "  MFU (training): $(report NeMo-RL rl "Training Model Floating Point Utilization:")"
echo "  validation accuracy: $(grep -o 'Accuracy: [0-9.]*' "$LOGS/rl.log" | tail -1 || echo 'not found')"
in_image "$MB_IMAGE" lineage "nemotron-art show $EVAL >&2; nemotron-art lineage $RL_MODEL >&2; nemotron-art lineage $EVAL >&2"
say "done in $(( (SECONDS - START) / 60 )) min: Megatron-Bridge pretraining, conversion, NeMo-RL GRPO and eval; artifacts in $STORE"
