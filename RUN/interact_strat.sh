#!/usr/bin/env bash
# Chat in the terminal with the authors' interaction settings (chengjl19/PAL codes/RUN/interact_strat.sh).
# Usage: bash RUN/interact_strat.sh [CHECKPOINT] [more interact.py arguments, e.g. --persona "i am a nurse."
#        or --persona_extractor persona_extractor/runs/bart/best]
#   CHECKPOINT defaults to the newest DATA/strat.strat/<run>/epoch-N.bin. Piped input works too:
#   printf 'hi\ni feel lonely\n' | bash RUN/interact_strat.sh
# Environment: PRETRAINED_MODEL_PATH (default: the config's Blenderbot_small-90M; with a checkpoint only its
#   config.json and tokenizer files are read).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/RUN/setup_env.sh"
cd "$ROOT"
CKPT=""
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then CKPT="$1"; shift; fi
if [ -z "$CKPT" ]; then
  CKPT="$(ls -1 DATA/strat.strat/*/epoch-*.bin 2>/dev/null | sort -V | tail -n 1 || true)"
fi
if [ -z "$CKPT" ]; then
  echo "error: no checkpoint given and none under DATA/strat.strat/ (run RUN/train_strat.sh first)" >&2; exit 2
fi
EXTRA=()
if [ -n "${PRETRAINED_MODEL_PATH:-}" ]; then EXTRA+=(--pretrained_model_path "$PRETRAINED_MODEL_PATH"); fi
python codes/interact.py \
    --config_name strat \
    --inputter_name strat \
    --seed 0 \
    --load_checkpoint "$CKPT" \
    --fp16 false \
    --max_length 50 \
    --min_length 10 \
    --temperature 0.7 \
    --top_k 30 \
    --top_p 0.9 \
    --num_beams 1 \
    --repetition_penalty 1.03 \
    --no_repeat_ngram_size 3 \
    "${EXTRA[@]}" \
    "$@"
