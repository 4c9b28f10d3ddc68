#!/usr/bin/env bash
# Automatic interactive evaluation (codes/auto_eval/; README "Automatic evaluation"): an LLM plays the
# help-seeker of a role card and talks with each system, then an LLM judge compares the two conversations per
# criterion of the human study's criteria.json, asking in both orders; RUN/python -m auto_eval.analyze then reports.
# Usage: bash RUN/auto_eval.sh [RUN/python -m auto_eval run arguments, which override the ones below]
#   With no --system the study runs on the demo models of RUN/demo.sh (demo_out/): PAL against PAL alpha=0 (the
#   same checkpoint, contrastive decoding off), SmolLM2-135M-Instruct (llm=smollm2) as seeker and judge, 4 role
#   cards from demo_out/pesconv/valid.txt (the demo sample's test split has 2 dialogues; its validation split, also
#   unseen in training, has 4), written to demo_out/auto_eval/cards.json, 3 turns, database
#   demo_out/auto_eval/study.db, live persona from the demo extractor. A few minutes on a CPU. Killed, the same
#   command finishes the study (nothing repeated).
# Environment: SEEKER, JUDGE (system specs), NUM_CARDS, TURNS, CRITERIA (a criteria JSON file),
#   PRETRAINED_MODEL_PATH (PAL's tokenizer folder; default: the run's).
# Examples:
#   bash RUN/auto_eval.sh --turns 5 --num_cards 20 --db demo_out/auto_eval/cards20.db
#   bash RUN/auto_eval.sh --db DATA/auto_eval/pal_vs_joint.db --test_file DATA/pesconv/test.txt \
#     --system name=pal,config=strat,checkpoint=DATA/strat.strat/<run>/epoch-4.bin \
#     --system name=joint,config=strat_no_persona,checkpoint=DATA/strat.strat_no_persona/<run>/epoch-4.bin \
#     --judge name=judge,endpoint=http://127.0.0.1:8000/v1,model=Qwen2.5-7B-Instruct
#   RUN/python -m auto_eval judge --db DATA/human_eval/study.db --judge SPEC   # the humans' conversations
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
DEMO="${DEMO_OUT:-${R}demo_out}"
DEFAULTS=()
if [[ " $* " != *" --system "* ]]; then
  CKPT="$DEMO/strat.strat/demo_run/epoch-1.bin"
  if [ ! -f "$CKPT" ] && [ "$PAL_HELP" = 0 ]; then  # (--help shows the command without the demo models)
    echo "error: $CKPT: no demo models yet; run 'bash RUN/demo.sh' first (a few minutes on a CPU), or pass --system" \
         "SPEC twice" >&2
    exit 2
  fi
  DEFAULTS=(--db "$DEMO/auto_eval/study.db" --test_file "$DEMO/pesconv/valid.txt"
            --system "name=pal,config=strat,checkpoint=$CKPT" --system "name=pal_alpha0,config=strat,checkpoint=$CKPT,alpha=0")
  if [ -d "$DEMO/persona_extractor/model/best" ]; then DEFAULTS+=(--persona_extractor "$DEMO/persona_extractor/model/best"); fi
fi
DB="$DEMO/auto_eval/study.db"
prev=""
for a in "$@"; do  # the database analyze reads: the last --db given
  if [ "$prev" = "--db" ]; then DB="$a"; fi
  prev="$a"
done
python -m auto_eval run \
    --seeker "${SEEKER:-name=smollm2,llm=smollm2}" \
    --judge "${JUDGE:-name=smollm2,llm=smollm2}" \
    --num_cards "${NUM_CARDS:-4}" \
    --turns "${TURNS:-3}" \
    --criteria "${CRITERIA:-${R}codes/human_eval/criteria.json}" \
    "${DEFAULTS[@]}" \
    "${PRETRAINED_ARGS[@]}" \
    "$@"
python -m auto_eval.analyze "$DB"
