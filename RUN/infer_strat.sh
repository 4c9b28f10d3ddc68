#!/usr/bin/env bash
# Generate and score with the released inference settings (chengjl19/PAL codes/RUN/infer_strat.sh).
# Usage: bash RUN/infer_strat.sh [CHECKPOINT] [more infer.py arguments, which override the ones below]
#   CHECKPOINT defaults to the last epoch of the newest run in DATA/strat.strat/ (pass the epoch eval_log.csv favours); the test file to $INFER_FILE
#   (default: the test.txt beside the data the run was validated on; infer.py names it). E.g.: bash RUN/infer_strat.sh DATA/strat.strat/RUN/epoch-4.bin --infer_batch_size 16
#   CHECKPOINT may be a run folder (then its last epoch). The model's arguments (config, pretrained path, max input
#   length, fusion options) not given here come from the run folder's args.json and config.json.
#   The released script also passed --max_input_length 512 and --use_all_persona False: they are left out here so
#   that they come from the run folder (512 and False for a run trained with the released settings).
# Environment: PRETRAINED_MODEL_PATH (default: the run's, from its args.json; only its tokenizer files are read).
[ -n "${BASH_VERSION:-}" ] || { echo "error: $0 is a bash script: run it as  bash $0" >&2; exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
if starts_with_checkpoint "$@"; then CKPT="$1"; shift; else CKPT="$(newest_checkpoint "${R}"DATA/strat.strat train_strat.sh)"; fi
python "${R}codes/infer.py" \
    --config_name strat \
    --inputter_name strat \
    --add_nlg_eval \
    --seed 0 \
    --load_checkpoint "$CKPT" \
    --fp16 false \
    --max_decoder_input_length 15 \
    --max_length 50 \
    --min_length 10 \
    --infer_batch_size 128 \
    ${INFER_FILE:+--infer_input_file "$INFER_FILE"} \
    --temperature 0.5 \
    --top_k 10 \
    --top_p 0.9 \
    --num_beams 1 \
    --repetition_penalty 1.03 \
    --no_repeat_ngram_size 0 \
    "${PRETRAINED_ARGS[@]}" \
    "$@"
