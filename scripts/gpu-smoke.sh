#!/usr/bin/env bash
# GPU smoke checks of the scaled paths (not run in CI; see docs/scaling.md for what was tested where):
#   1. one GPU: corrupt, unlearn (bf16 mixed precision, gradient checkpointing), eval with lm-eval's hf backend;
#   2. every GPU of the machine (at least 2): `accelerate launch` with DeepSpeed ZeRO-3 for corrupt and unlearn
#      (NPO: its reference is cached, so nothing unsharded is kept), the full checkpoint saved by Trainer.save_model;
#   3. eval with lm-eval's vLLM backend (needs `pip install vllm`).
# Usage: scripts/gpu-smoke.sh [WORK_DIR]   (needs restor-bench installed, a CUDA GPU; deepspeed for step 2)
set -euo pipefail

WORK=${1:-gpu-smoke}
mkdir -p "$WORK"
MODEL=$(restor-bench world path)
GPUS=$(python -c "import torch; print(torch.cuda.device_count())")
if [ "$GPUS" -lt 1 ]; then
    echo "gpu-smoke.sh: no CUDA GPU is visible here (torch.cuda.device_count() is 0); run it on a GPU machine" >&2
    exit 2
fi
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
echo "== $GPUS GPU(s); model $MODEL; work folder $WORK"

check_record() {  # FILE KEY EXPECTED: a run record's value
    python - "$1" "$2" "$3" <<'PY'
import json, sys
record = json.load(open(sys.argv[1]))
value = record[sys.argv[2]]
assert str(value) == sys.argv[3], f"{sys.argv[1]}: {sys.argv[2]} is {value!r}, expected {sys.argv[3]}"
print(f"ok {sys.argv[1]}: {sys.argv[2]} = {value}")
PY
}

echo "== 1. one GPU"
CUDA_VISIBLE_DEVICES=0 restor-bench corrupt --model "$MODEL" --docs tiny:0 --out "$WORK/corrupted" --max-steps 5 \
    --trainer-arg gradient_checkpointing=true --overwrite
check_record "$WORK/corrupted/restor_run.json" world_size 1
CUDA_VISIBLE_DEVICES=0 restor-bench unlearn --method npo --model "$WORK/corrupted" --forget tiny:0 \
    --out "$WORK/unlearned" --max-steps 5 --precision bf16 --trainer-arg gradient_checkpointing=true --overwrite
check_record "$WORK/unlearned/unlearn_run.json" precision bf16
CUDA_VISIBLE_DEVICES=0 restor-bench unlearn --method kl --model "$WORK/corrupted" --forget tiny:0 \
    --retain tiny:retain --out "$WORK/unlearned-lora" --lora --keep-adapter --max-steps 5 --overwrite
test -f "$WORK/unlearned-lora/adapter/adapter_model.safetensors"
CUDA_VISIBLE_DEVICES=0 restor-bench eval "$WORK/unlearned" --tasks restor_tiny_facts --out "$WORK/eval-hf" \
    --limit 20 --overwrite

if [ "$GPUS" -ge 2 ]; then
    echo "== 2. $GPUS GPUs: DeepSpeed ZeRO-3"
    python -c "import deepspeed" 2>/dev/null || { echo "deepspeed is not installed: pip install deepspeed"; exit 1; }
    # "auto" values are filled in by transformers from the TrainingArguments; the 16-bit gather makes
    # Trainer.save_model write the full weights (transformers docs, DeepSpeed integration, "ZeRO-3 and save").
    cat > "$WORK/zero3.json" <<'JSON'
{
  "zero_optimization": {"stage": 3, "stage3_gather_16bit_weights_on_model_save": true},
  "bf16": {"enabled": "auto"},
  "train_micro_batch_size_per_gpu": "auto",
  "gradient_accumulation_steps": "auto",
  "gradient_clipping": "auto",
  "train_batch_size": "auto"
}
JSON
    accelerate launch --multi_gpu --num_processes "$GPUS" --num_machines 1 --mixed_precision no \
        --dynamo_backend no -m restor_bench corrupt --model "$MODEL" --docs tiny:0 --out "$WORK/corrupted-z3" \
        --max-steps 5 --trainer-arg deepspeed="$WORK/zero3.json" --overwrite
    check_record "$WORK/corrupted-z3/restor_run.json" world_size "$GPUS"
    accelerate launch --multi_gpu --num_processes "$GPUS" --num_machines 1 --mixed_precision no \
        --dynamo_backend no -m restor_bench unlearn --method npo --model "$WORK/corrupted-z3" --forget tiny:0 \
        --out "$WORK/unlearned-z3" --max-steps 5 --precision fp32 --trainer-arg deepspeed="$WORK/zero3.json" \
        --overwrite
    check_record "$WORK/unlearned-z3/unlearn_run.json" world_size "$GPUS"
    # the saved checkpoint is whole: it loads, and every tensor has its full shape
    python - "$MODEL" "$WORK/unlearned-z3" <<'PY'
import sys
from safetensors.torch import load_file
from pathlib import Path
base = {k: v.shape for f in Path(sys.argv[1]).glob("*.safetensors") for k, v in load_file(str(f)).items()}
saved = {k: v.shape for f in Path(sys.argv[2]).glob("*.safetensors") for k, v in load_file(str(f)).items()}
assert base == saved, "the ZeRO-3 checkpoint is not whole"
print(f"ok ZeRO-3 checkpoint: {len(saved)} full tensors")
PY
else
    echo "== 2. skipped: one GPU only"
fi

echo "== 3. vLLM backend"
if python -c "import vllm" 2>/dev/null; then
    restor-bench eval "$WORK/unlearned" --backend vllm --tasks restor_tiny_facts --out "$WORK/eval-vllm" \
        --limit 20 --overwrite
else
    echo "vllm is not installed: pip install vllm (step skipped)"
fi
echo "== gpu smoke done"
