#!/usr/bin/env bash
# Every GPU check in one sitting of at most 9 minutes on one H100 or H200 (a lent machine with
# torch, transformers, accelerate and peft; the rest is installed from a wheelhouse, see
# docs/gpu_training.md and README "Offline install"):
#   1. install: when trl, hydra, deepspeed, wandb or qwen-vl-utils is missing, the project and
#      its dependencies from $WHEELHOUSE (default ./wheelhouse), offline;
#   2. generation (scripts/gpu_eval_check.py): steady-state tokens/s per decode path, compile
#      and first call apart, the profile of one decode step and one vision forward;
#   3. training (scripts/gpu_train_check.py): two stages per variant (ZeRO-3 full, validation
#      + per-stage wandb runs, colocated vLLM in sleep mode where vllm imports, LoRA, 3B):
#      stage 2 vs stage 1 memory (allocated, reserved, mem_get_info) against the plan, step times;
#   4. one summary screen from OUT/gpu_eval.json and OUT/gpu_train.json.
# Each check writes its JSON after every variant: a kill (or an out-of-memory death) keeps
# what finished; a check that fails or is killed does not stop the next one (the exit status
# is then 1, after the summary).
#
# Usage: bash scripts/gpu_checks.sh OUT [--device cpu --tiny]
#   --device cpu --tiny: the same script on a CPU with the tiny model (tests/test_gpu_checks.py).
# Environment: PYTHON (default python3), WHEELHOUSE, GPU_CHECKS_BUDGET_S (default 540),
#   EVAL_SHARE_S (seconds for generation, default 200), EVAL_ARGS / TRAIN_ARGS (extra flags).
set -uo pipefail
out=${1:?usage: bash scripts/gpu_checks.sh OUT [--device cpu --tiny]}
shift
device=cuda
tiny=()
while [ $# -gt 0 ]; do
    case "$1" in
        --device) device=$2; shift 2 ;;
        --tiny) tiny=(--tiny); shift ;;
        *) echo "gpu_checks.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
py=${PYTHON:-python3}
budget=${GPU_CHECKS_BUDGET_S:-540}
mkdir -p "$out"
export HF_HUB_OFFLINE=1 WANDB_MODE=offline TOKENIZERS_PARALLELISM=false
start=$SECONDS
cd "$(dirname "$0")/.."

# 1. install what the node lacks, offline
if ! "$py" -c "import trl, hydra, deepspeed, wandb, qwen_vl_utils" 2>/dev/null; then
    wheelhouse=${WHEELHOUSE:-wheelhouse}
    echo "installing the project from $wheelhouse (offline)"
    # isolated build: pip takes setuptools>=77 from the wheelhouse, whatever the node has
    "$py" -m pip install --no-index --find-links "$wheelhouse" -e . \
        > "$out/install.log" 2>&1
    echo "pip install exit $? after $((SECONDS - start)) s (log: $out/install.log)"
fi
if [ "$device" = cuda ] && command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
fi
"$py" -c "import torch, transformers, trl, deepspeed; print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__, 'deepspeed', deepspeed.__version__)" \
    | tee "$out/versions.txt"

# 2. generation: its share of the budget, less what the install took
eval_s=$(( ${EVAL_SHARE_S:-200} < budget - (SECONDS - start) - 60 ? ${EVAL_SHARE_S:-200} : budget - (SECONDS - start) - 60 ))
# shellcheck disable=SC2086
timeout "$((eval_s + 20))" "$py" scripts/gpu_eval_check.py --device "$device" "${tiny[@]}" \
    --out "$out/gpu_eval.json" --deadline-s "$eval_s" ${EVAL_ARGS:-} > "$out/gpu_eval.log" 2>&1
eval_status=$?
echo "gpu_eval_check exit $eval_status after $((SECONDS - start)) s (log: $out/gpu_eval.log)"

# 3. training: what is left of the budget (20 s kept for the summary); a variant starts only
# when its expected time fits, and timeout stops the check there in any case
left=$((budget - 20 - (SECONDS - start)))
# shellcheck disable=SC2086
timeout "$left" "$py" scripts/gpu_train_check.py --device "$device" "${tiny[@]}" \
    --deadline-s "$((left - 10))" --out "$out/gpu_train.json" --work "$out/train_work" ${TRAIN_ARGS:-} \
    > "$out/gpu_train.log" 2>&1
status=$?
echo "gpu_train_check exit $status after $((SECONDS - start)) s (log: $out/gpu_train.log)"

# 4. one screen
echo "==== summary ($((SECONDS - start)) s) ===="
cat "$out/versions.txt" 2>/dev/null
"$py" scripts/gpu_train_check.py --summary "$out"
# non-zero when either check failed or was killed (what finished is in the JSON all the same)
[ "$eval_status" -eq 0 ] && [ "$status" -eq 0 ]
