#!/usr/bin/env bash
# Featurize the training split for PAL (config strat: persona fusion) into DATA/strat.strat/
# (data.pkl + meta.json), with the released settings (chengjl19/PAL codes/RUN/prepare_strat.sh).
# Usage: bash RUN/prepare_strat.sh [more prepare.py arguments, which override the ones below]
# Environment: TRAIN_FILE (default DATA/pesconv/train.txt from codes/_reformat/process.py),
#              PRETRAINED_MODEL_PATH (tokenizer folder; default: the config's Blenderbot_small-90M).
# E.g. bash RUN/prepare_strat.sh --output_dir /tmp/prepared --max_input_length 128
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/RUN/setup_env.sh"
cd "$ROOT"
EXTRA=()
if [ -n "${PRETRAINED_MODEL_PATH:-}" ]; then EXTRA+=(--pretrained_model_path "$PRETRAINED_MODEL_PATH"); fi
python codes/prepare.py \
    --config_name strat \
    --inputter_name strat \
    --train_input_file "${TRAIN_FILE:-DATA/pesconv/train.txt}" \
    --max_input_length 512 \
    --max_decoder_input_length 50 \
    --use_all_persona False \
    --encode_context True \
    "${EXTRA[@]}" \
    "$@"
