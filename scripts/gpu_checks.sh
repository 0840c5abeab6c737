#!/usr/bin/env bash
# The GPU checks of issues 5 and 6 in one run (for a lent GPU machine with torch already
# installed): generation throughput of a random Qwen2.5-VL-3B-architecture model, then a
# few GRPO steps of the same architecture with LoRA at the released batch shape.
# Usage: bash scripts/gpu_checks.sh OUT_DIR   (prints both JSON summaries)
set -uo pipefail
out=${1:-outputs/gpu_checks}
mkdir -p "$out"
export HF_HUB_OFFLINE=1 WANDB_MODE=disabled TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, transformers, trl; print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__)"
timeout "${EVAL_TIMEOUT:-200}" python3 scripts/gpu_eval_check.py --out "$out/gpu_eval.json" 2>&1 | grep -v Warning | tail -25
echo "gpu_eval_check exit ${PIPESTATUS[0]}"
timeout "${TRAIN_TIMEOUT:-300}" python3 scripts/gpu_train_check.py --steps 3 --out "$out/gpu_train.json" 2>&1 | grep -v Warning | tail -40
echo "gpu_train_check exit ${PIPESTATUS[0]}"
