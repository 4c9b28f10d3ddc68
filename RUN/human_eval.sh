#!/usr/bin/env bash
# The human-evaluation server (ESConv's pairwise protocol in the browser; codes/human_eval/, README "Human evaluation").
# Usage: bash RUN/human_eval.sh [RUN/python -m human_eval arguments]
#   With no --system / --results the study runs on the demo models of RUN/demo.sh (demo_out/): PAL against
#   PAL alpha=0 (the same checkpoint, contrastive decoding off), live persona from the demo extractor, seeker cards
#   from demo_out/pesconv/test.txt, annotators annotator1 and annotator2, database demo_out/human_eval/study.db.
#   It prints the access link of each annotator it creates (once: only hashes are stored; RUN/python -m human_eval.admin
#   --db DB new-link NAME replaces a lost one); open it in a browser. Ctrl-C stops; the same command resumes.
# Examples:
#   bash RUN/human_eval.sh --show_strategy                      # the demo study, strategies and persona shown
#   bash RUN/human_eval.sh --db DATA/human_eval/pal_vs_joint.db --test_file DATA/pesconv/test.txt \
#     --system name=pal,config=strat,checkpoint=DATA/strat.strat/<run>/epoch-4.bin \
#     --system name=joint,config=strat_no_persona,checkpoint=DATA/strat.strat_no_persona/<run>/epoch-4.bin \
#     --persona_extractor DATA/persona_extractor/bart-large-cnn --annotators ann1,ann2,ann3
#   bash RUN/human_eval.sh --db demo_out/human_eval/pal_vs_smol.db --test_file demo_out/pesconv/test.txt --annotators a1 \
#     --system name=pal,checkpoint=demo_out/strat.strat/demo_run --system name=smol,llm=smollm2   # PAL vs an LLM
#     (any system: README "Comparing PAL with an LLM")
#   bash RUN/human_eval.sh --mode static --results pal=RES_DIR1 --results joint=RES_DIR2 --test_file DATA/pesconv/test.txt
#   bash RUN/human_eval.sh --mode chat --system name=pal,config=strat,checkpoint=... --persona_extractor DIR
# Annotators: RUN/python -m human_eval.admin --db DB add NAME; results: RUN/python -m human_eval.analyze DB.
[ -n "${BASH_VERSION:-}" ] || { echo "error: $0 is a bash script: run it as  bash $0" >&2; exit 2; }
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
DEMO="${DEMO_OUT:-${R}demo_out}"
DEFAULTS=()
if [[ " $* " != *" --system "* && " $* " != *" --results "* ]]; then
  CKPT="$DEMO/strat.strat/demo_run/epoch-1.bin"
  if [ ! -f "$CKPT" ] && [ "$PAL_HELP" = 0 ]; then  # (--help shows the command without the demo models)
    echo "error: $CKPT: no demo models yet; run 'bash RUN/demo.sh' first (a few minutes on a CPU), or pass --system" \
         "name=NAME,config=CONFIG,checkpoint=epoch-N.bin twice" >&2
    exit 2
  fi
  DEFAULTS=(--db "$DEMO/human_eval/study.db" --test_file "$DEMO/pesconv/test.txt" --annotators annotator1,annotator2
            --system "name=pal,config=strat,checkpoint=$CKPT" --system "name=pal_alpha0,config=strat,checkpoint=$CKPT,alpha=0")
  if [ -d "$DEMO/persona_extractor/model/best" ]; then DEFAULTS+=(--persona_extractor "$DEMO/persona_extractor/model/best"); fi
  if [ -z "${PRETRAINED_MODEL_PATH:-}" ] && [ -d "$DEMO/models/blenderbot" ]; then
    PRETRAINED_ARGS=(--pretrained_model_path "$DEMO/models/blenderbot")
  fi
fi
python -m human_eval "${DEFAULTS[@]}" "${PRETRAINED_ARGS[@]}" "$@"
