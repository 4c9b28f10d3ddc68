#!/usr/bin/env bash
# Generate and score with the released inference settings (chengjl19/PAL codes/RUN/infer_strat.sh); plain BlenderBot-small.
# Usage: bash RUN/infer_vanilla.sh [CHECKPOINT] [more infer.py arguments, which override the ones below]
#   CHECKPOINT defaults to the newest DATA/vanilla.vanilla/<run>/epoch-N.bin; the test file to $INFER_FILE
#   (default DATA/pesconv/test.txt). E.g.: bash RUN/infer_vanilla.sh DATA/vanilla.vanilla/RUN/epoch-4.bin --infer_batch_size 16
# Environment: PRETRAINED_MODEL_PATH (default: the config's Blenderbot_small-90M; with a checkpoint only its
#   config.json and tokenizer files are read).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/RUN/setup_env.sh"
cd "$ROOT"
CKPT=""
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then CKPT="$1"; shift; fi
if [ -z "$CKPT" ]; then
  CKPT="$(ls -1 DATA/vanilla.vanilla/*/epoch-*.bin 2>/dev/null | sort -V | tail -n 1 || true)"
fi
if [ -z "$CKPT" ]; then
  echo "error: no checkpoint given and none under DATA/vanilla.vanilla/ (run RUN/train_vanilla.sh first)" >&2; exit 2
fi
EXTRA=()
if [ -n "${PRETRAINED_MODEL_PATH:-}" ]; then EXTRA+=(--pretrained_model_path "$PRETRAINED_MODEL_PATH"); fi
python codes/infer.py \
    --config_name vanilla \
    --inputter_name vanilla \
    --add_nlg_eval \
    --seed 0 \
    --load_checkpoint "$CKPT" \
    --fp16 false \
    --max_input_length 512 \
    --max_decoder_input_length 15 \
    --max_length 50 \
    --min_length 10 \
    --infer_batch_size 128 \
    --infer_input_file "${INFER_FILE:-DATA/pesconv/test.txt}" \
    --temperature 0.5 \
    --top_k 10 \
    --top_p 0.9 \
    --num_beams 1 \
    --repetition_penalty 1.03 \
    --no_repeat_ngram_size 0 \
    --use_all_persona False \
    "${EXTRA[@]}" \
    "$@"
