#!/usr/bin/env bash
# Featurize the training split for PAL (config strat: persona fusion) into DATA/strat.strat/
# (features/: data.pkl + meta.json), with the released settings (chengjl19/PAL codes/RUN/prepare_strat.sh).
# Usage: bash RUN/prepare_strat.sh [more prepare.py arguments, which override the ones below]
# Environment: TRAIN_FILE (default DATA/pesconv/train.txt from codes/_reformat/process.py),
#              PRETRAINED_MODEL_PATH (tokenizer folder; default: the config's Blenderbot_small-90M).
# E.g. bash RUN/prepare_strat.sh --output_dir /tmp/prepared --max_input_length 128
[ -n "${BASH_VERSION:-}" ] || { echo "error: $0 is a bash script: run it as  bash $0" >&2; exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
python "${R}codes/prepare.py" \
    --config_name strat \
    --inputter_name strat \
    --train_input_file "${TRAIN_FILE:-${R}DATA/pesconv/train.txt}" \
    --max_input_length 512 \
    --max_decoder_input_length 50 \
    --use_all_persona False \
    --encode_context True \
    "${PRETRAINED_ARGS[@]}" \
    "$@"
