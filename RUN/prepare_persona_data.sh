#!/usr/bin/env bash
# PAL stage 1a: PersonaChat -> train.csv / valid.csv / test.csv (context -> persona pairs) for the persona extractor.
# Usage: bash RUN/prepare_persona_data.sh [more process_bart_df.py arguments, which override the ones below]
#   $PERSONACHAT_DIR (default DATA/personachat) holds ParlAI ConvAI2's {train,valid,test}_both_original.txt
#   (or the _no_cands variants); the CSVs go to $PERSONA_CSV_DIR (default DATA/persona_extractor).
[ -n "${BASH_VERSION:-}" ] || { echo "error: $0 is a bash script: run it as  bash $0" >&2; exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
python "${R}persona_extractor/process_bart_df.py" \
    --data_dir "${PERSONACHAT_DIR:-${R}DATA/personachat}" \
    --output_dir "${PERSONA_CSV_DIR:-${R}DATA/persona_extractor}" \
    --eos_suffix " </s>" \
    "$@"
