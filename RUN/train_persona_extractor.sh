#!/usr/bin/env bash
# PAL stage 1b: fine-tune BART on the PersonaChat pairs with the authors' hyperparameters
# (docs/reproduction.md#persona-extractor).
# Usage: bash RUN/train_persona_extractor.sh [more train_bart.py arguments, which override the ones below]
#   Reads $PERSONA_CSV_DIR/{train,valid,test}.csv (default DATA/persona_extractor, from RUN/prepare_persona_data.sh);
#   writes $EXTRACTOR_DIR (default DATA/persona_extractor/bart-large-cnn): best/ (lowest validation loss),
#   last/ (for --resume), train_log.csv, results.json. CPU or CUDA is picked automatically.
#   NPROC=N runs N processes with torchrun (DistributedDataParallel; gloo on CPU): each batch of 16 is split
#   across them, so the steps are those of one process.
#   --scheduler_interval epoch (default, the authors' Lightning run: lr 0 in epoch 0, k * 1e-7 in epoch k) or step
#   (warmup over the first 100 batches, as the paper describes).
#   An interrupted run continues with: bash RUN/train_persona_extractor.sh --resume [OUTPUT_DIR]
#   (default $EXTRACTOR_DIR) with the arguments in its args.json; --max_steps, --device may be added.
#   CPU smoke run with a tiny random BART:
#     RUN/python -m persona_extractor.tiny_bart /tmp/tiny_bart --tokenizer_dir ../shared/models/bart-base
#     bash RUN/train_persona_extractor.sh --model_name_or_path /tmp/tiny_bart --num_epochs 1
[ -n "${BASH_VERSION:-}" ] || { echo "error: $0 is a bash script: run it as  bash $0" >&2; exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
set_launcher
resume_run "${R}persona_extractor/train_bart.py" --output_dir "${EXTRACTOR_DIR:-${R}DATA/persona_extractor/bart-large-cnn}" "$@"
"${LAUNCH[@]}" "${R}persona_extractor/train_bart.py" \
    --model_name_or_path facebook/bart-large-cnn \
    --train_dir "${PERSONA_CSV_DIR:-${R}DATA/persona_extractor}" \
    --output_dir "${EXTRACTOR_DIR:-${R}DATA/persona_extractor/bart-large-cnn}" \
    --max_source_length 128 \
    --max_target_length 128 \
    --learning_rate 1e-5 \
    --train_batch_size 16 \
    --eval_batch_size 16 \
    --warmup_steps 100 \
    --num_epochs 10 \
    --val_check_interval 0.25 \
    --patience 5 \
    --seed 42 \
    --scheduler_interval epoch \
    "$@"
