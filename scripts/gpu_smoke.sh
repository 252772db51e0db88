#!/usr/bin/env bash
# The smallest real Megatron-Bridge pretrain and NeMo-RL GRPO runs, on one GPU node, through nemotron's stages.
#
# Run it inside a container that has Megatron-Bridge and NeMo-RL (e.g. the NeMo-RL image, whose checkout is
# /opt/nemo-rl) with nemotron installed (pip install -e .), on a machine with at least one GPU:
#
#   scripts/gpu_smoke.sh [WORK_DIR]
#
# What it does (each step commits artifacts with lineage to $WORK/store):
#   1. pretrain_data + rl_data: the tiny synthetic corpus and arithmetic problems (CPU, a minute);
#   2. stage=pretrain model=llama32_1b: Megatron-Bridge pretrains a Llama-3.2-1B-shaped model for 10 steps on
#      that data (tokenizer: the tiny one, so nothing gated is downloaded), torchrun over this node's GPUs;
#   3. stage=rl model=llama32_1b: NeMo-RL GRPO for 3 steps from a small Hugging Face model ($RL_MODEL,
#      downloaded once), Ray started on this node.
# Each stage first prints its dry run (config + sbatch script), then runs for real.
#
# Environment: RL_MODEL (default Qwen/Qwen2.5-0.5B-Instruct), NEMO_RL_DIR (default /opt/nemo-rl),
# HF_TOKEN / WANDB_API_KEY as usual (read from the environment, never written anywhere).
set -euo pipefail

WORK=$(realpath -m "${1:-${TMPDIR:-/tmp}/nemotron-gpu-smoke}")
RL_MODEL=${RL_MODEL:-Qwen/Qwen2.5-0.5B-Instruct}
NEMO_RL_DIR=${NEMO_RL_DIR:-/opt/nemo-rl}
export NEMOTRON_ARTIFACTS_ROOT=$WORK/store
mkdir -p "$WORK"
cd "$WORK"

command -v nvidia-smi >/dev/null || { echo "gpu_smoke.sh: no nvidia-smi here; run it on a GPU node" >&2; exit 2; }
NGPU=$(nvidia-smi -L | wc -l)
[ "$NGPU" -ge 1 ] || { echo "gpu_smoke.sh: no GPU visible" >&2; exit 2; }
python -c "import megatron.bridge" || { echo "gpu_smoke.sh: Megatron-Bridge is not installed here" >&2; exit 2; }
[ -f "$NEMO_RL_DIR/examples/run_grpo.py" ] || { echo "gpu_smoke.sh: no NeMo-RL at $NEMO_RL_DIR" >&2; exit 2; }
echo "== $NGPU GPU(s); work dir $WORK" >&2

path_of() {  # the path of a committed artifact
  python -c "from nemotron import Artifact; print(Artifact.from_uri('art://$1').path)"
}

# 1. data
python -m nemotron stage=pretrain_data
python -m nemotron stage=rl_data
TOKENIZER=$(path_of tokenizer-tiny:latest)

# 2. Megatron-Bridge pretraining: 10 steps, sequences of 256 tokens, one sequence per GPU and step
PRETRAIN=(stage=pretrain model=llama32_1b "model.hf_model=$TOKENIZER" model.max_seq_len=256
  "model.batch.pretrain.global_batch_size=$NGPU" model.batch.pretrain.micro_batch_size=1
  stage.name=smoke-pretrain-model stage.steps=10 stage.warmup_steps=2 stage.eval_every=5 stage.eval_batches=2
  stage.checkpoint_every=10 stage.log_every=1)
python -m nemotron "${PRETRAIN[@]}" launcher=gpu_2x8 launcher.nodes=1 "launcher.gpus_per_node=$NGPU" \
  stage.dry_run=true hydra.sweep.dir="$WORK/dry-runs/pretrain"
python -m nemotron "${PRETRAIN[@]}"

# 3. NeMo-RL GRPO from a small Hugging Face model: 3 steps of 4 prompts x 4 answers
if [ ! -d "$WORK/rl-base" ]; then
  python -c "from huggingface_hub import snapshot_download as d; d('$RL_MODEL', local_dir='$WORK/rl-base')"
  python -m nemotron stage=register "stage.path=$WORK/rl-base" stage.name=smoke-rl-base stage.type=ModelArtifact
fi
RL=(stage=rl model=llama32_1b "model.hf_model=$WORK/rl-base" "model.rl.nemo_rl_dir=$NEMO_RL_DIR"
  model.rl.max_total_sequence_length=512 model.rl.train_global_batch_size=16 model.rl.train_micro_batch_size=2
  run.model=smoke-rl-base:latest stage.name=smoke-rl-model stage.steps=3 stage.prompts_per_step=4
  stage.group_size=4 stage.max_new_tokens=64 stage.eval_every=3 stage.eval_problems=16 stage.checkpoint_every=3)
python -m nemotron "${RL[@]}" launcher=gpu_2x8 launcher.nodes=1 "launcher.gpus_per_node=$NGPU" \
  stage.dry_run=true hydra.sweep.dir="$WORK/dry-runs/rl"
python -m nemotron "${RL[@]}"

nemotron-art lineage smoke-pretrain-model:latest
nemotron-art lineage smoke-rl-model:latest
echo "== gpu_smoke.sh: Megatron-Bridge pretraining and NeMo-RL GRPO ran; artifacts in $NEMOTRON_ARTIFACTS_ROOT" >&2
