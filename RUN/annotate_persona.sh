#!/usr/bin/env bash
# PAL stage 1c: ESConv.json -> PESConv.json with the trained persona extractor (adds persona / persona_list).
# Usage: bash RUN/annotate_persona.sh [more annotate_esconv.py arguments, which override the ones below]
#   Extractor: $EXTRACTOR_DIR/best (default DATA/persona_extractor/bart-large-cnn/best, from
#   RUN/train_persona_extractor.sh); input $ESCONV_FILE (default DATA/ESConv.json); output $PESCONV_FILE
#   (default DATA/PESConv.json), which then goes to:
#     RUN/python codes/_reformat/process.py --add_persona True --input_file DATA/PESConv.json --output_dir DATA/pesconv
#   NPROC (processes on this machine, e.g. one per GPU; > 1 runs torchrun, each process annotating its share of
#   the conversations; the output is byte-identical to one process's).
#   An interrupted run continues with: bash RUN/annotate_persona.sh --resume (with the same NPROC)
[ -n "${BASH_VERSION:-}" ] || { echo "error: $0 is a bash script: run it as  bash $0" >&2; exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
set_launcher
"${LAUNCH[@]}" "${R}persona_extractor/annotate_esconv.py" \
    --model_dir "${EXTRACTOR_DIR:-${R}DATA/persona_extractor/bart-large-cnn}/best" \
    --input_file "${ESCONV_FILE:-${R}DATA/ESConv.json}" \
    --output_file "${PESCONV_FILE:-${R}DATA/PESConv.json}" \
    --num_beams 10 \
    --max_length 128 \
    --max_input_length 512 \
    --batch_size 8 \
    --chunk_size 100 \
    --filter spec \
    "$@"
