#!/usr/bin/env bash
# Fine-tune Blender-Joint (config strat_no_persona: strategy token, no persona) with the released settings
# (chengjl19/PAL codes/RUN/train_strat.sh); run RUN/prepare_no_persona.sh first.
# Writes DATA/strat.strat_no_persona/<timestamp>.<lr>.<batch>.<n>gpu/ with epoch-N.bin, train_log.csv, eval_log.csv.
# Usage: bash RUN/train_no_persona.sh [more train.py arguments, which override the ones below]
#   --paper_hparams True      the paper's lr 2.5e-5 and 100 warmup steps instead of the released 1.5e-5 / 0
#   --max_steps N             a short run
#   --resume RUN_DIR          continue a stopped run with its own arguments (RUN_DIR/args.json; the values below
#                             are not passed); --max_steps, --pbar, --device may be added, others are refused
# Environment: EVAL_FILE (default DATA/esconv/valid.txt), PRETRAINED_MODEL_PATH (default: the config's
#   Blenderbot_small-90M), NPROC (processes on this machine; > 1 runs torchrun with DistributedDataParallel).
# E.g. a smoke run with a tiny model:
#   PRETRAINED_MODEL_PATH=/tmp/tiny bash RUN/train_no_persona.sh --max_steps 5 --num_epochs 1
[ -n "${BASH_VERSION:-}" ] || { echo "error: $0 is a bash script: run it as  bash $0" >&2; exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
set_launcher
resume_run "${R}codes/train.py" "${PRETRAINED_ARGS[@]}" "$@"  # --resume RUN_DIR: the run's own arguments (args.json)
"${LAUNCH[@]}" "${R}codes/train.py" \
    --config_name strat_no_persona \
    --inputter_name strat \
    --eval_input_file "${EVAL_FILE:-${R}DATA/esconv/valid.txt}" \
    --seed 13 \
    --max_input_length 512 \
    --max_decoder_input_length 50 \
    --train_batch_size 4 \
    --gradient_accumulation_steps 1 \
    --eval_batch_size 16 \
    --learning_rate 1.5e-5 \
    --num_epochs 10 \
    --warmup_steps 0 \
    --fp16 false \
    --loss_scale 0.0 \
    --pbar true \
    --use_all_persona False \
    --encode_context True \
    "${PRETRAINED_ARGS[@]}" \
    "$@"
