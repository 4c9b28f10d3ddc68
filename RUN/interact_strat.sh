#!/usr/bin/env bash
# Chat in the terminal with the authors' interaction settings (chengjl19/PAL codes/RUN/interact_strat.sh).
# Usage: bash RUN/interact_strat.sh [CHECKPOINT] [more interact.py arguments, e.g. --persona "i am a nurse."
#        or --persona_extractor persona_extractor/runs/bart/best]
#   CHECKPOINT defaults to the last epoch of the newest run in DATA/strat.strat/ (pass the epoch eval_log.csv favours). Piped input works too:
#   printf 'hi\ni feel lonely\n' | bash RUN/interact_strat.sh
#   CHECKPOINT may be a run folder (then its last epoch). The model's arguments (config, pretrained path, max input
#   length, fusion options) not given here come from the run folder's args.json and config.json.
# Environment: PRETRAINED_MODEL_PATH (default: the run's, from its args.json; only its tokenizer files are read).
[ -n "${BASH_VERSION:-}" ] || { echo "error: $0 is a bash script: run it as  bash $0" >&2; exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
if starts_with_checkpoint "$@"; then CKPT="$1"; shift; else CKPT="$(newest_checkpoint "${R}"DATA/strat.strat train_strat.sh)"; fi
python "${R}codes/interact.py" \
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
    "${PRETRAINED_ARGS[@]}" \
    "$@"
