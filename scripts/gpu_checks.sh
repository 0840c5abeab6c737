#!/usr/bin/env bash
# Every GPU check in one sitting of at most 9 minutes on one H200 (a lent machine with
# torch, transformers, accelerate and peft installed; the rest comes from a wheelhouse, see
# README "Offline install"): generation throughput (scripts/gpu_eval_check.py, at most 4
# minutes), then training (scripts/gpu_train_check.py: two stages of the small 3B-width
# model, full and LoRA, then one step per stage at the real 3B sizes; per stage step times,
# memory at start, peak, the plan's estimate, allocator retries, trainable parameters).
# Usage: bash scripts/gpu_checks.sh OUT_DIR   (JSON summaries in OUT_DIR)
set -uo pipefail
out=${1:-outputs/gpu_checks}
mkdir -p "$out"
export HF_HUB_OFFLINE=1 WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false
start=$SECONDS
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, transformers, trl, deepspeed; print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__, 'deepspeed', deepspeed.__version__)"
timeout "${EVAL_TIMEOUT:-240}" python3 scripts/gpu_eval_check.py --out "$out/gpu_eval.json" 2>&1 | grep -v Warning | tail -25
echo "gpu_eval_check exit ${PIPESTATUS[0]} after $((SECONDS - start)) s"
# What is left of the 9 minutes (less 20 s to spare): the script starts a variant only if its
# expected time fits in it, and timeout stops it there in any case.
left=$((540 - 20 - (SECONDS - start)))
timeout "$left" python3 scripts/gpu_train_check.py --deadline-s $((left - 10)) --out "$out/gpu_train.json" \
    2>&1 | grep -v Warning | tail -60
echo "gpu_train_check exit ${PIPESTATUS[0]} after $((SECONDS - start)) s"
