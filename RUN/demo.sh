#!/usr/bin/env bash
# The whole PAL pipeline in minutes on a CPU, with nothing to download (NLTK's English punkt_tab, which the metrics
# need, ships in codes/metric/nltk_data/ and is used when NLTK finds none of its own):
#   persona-extractor training -> ESConv -> PESConv annotation -> reformat -> prepare -> PAL training -> inference
#   (PAL and PAL alpha=0) -> metrics (Table 3 columns, EAD, Cos-Sim) -> plots -> results table.
#
# Embedded default: the sample in RUN/demo_data/ (written for this project) and tiny randomly initialised models
# (BART extractor, BlenderBot-small, a BERT stand-in for SimCSE), with the real tokenizers when present
# (Blenderbot_small-90M/ or ../shared/models/...), a tiny self-made tokenizer otherwise. The numbers it prints are
# those of random tiny models: the demo shows the pipeline works, not the paper's results (RUN/reproduce_table3.sh).
# Real inputs are used when present: DATA/ESConv.json (its first $DEMO_DIALOGUES dialogues), DATA/personachat/
# (*_both_original*.txt), and real BlenderBot-small weights in Blenderbot_small-90M/.
#
# Usage: bash RUN/demo.sh            outputs in demo_out/ (replaced on every run); DEMO_OUT=DIR to change
[ -n "${BASH_VERSION:-}" ] || { echo "error: $0 is a bash script: run it as  bash $0" >&2; exit 2; }
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" --help-hook "$@"  # -h/--help: this header, nothing run
[ $# -eq 0 ] || { echo "error: RUN/demo.sh takes no arguments (got $1); see bash RUN/demo.sh --help" >&2; exit 2; }
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/RUN/setup_env.sh"
default_cpu_threads
OUT="$(mkdir -p "${DEMO_OUT:-$ROOT/demo_out}" && cd "${DEMO_OUT:-$ROOT/demo_out}" && pwd)"  # DEMO_OUT: from the caller's directory
cd "$ROOT"
DEMO_DIALOGUES="${DEMO_DIALOGUES:-40}"
SHARED="$ROOT/../shared"
# Replace an earlier demo's outputs, but never a folder the demo did not write (DEMO_OUT=. would be the repository).
if [ -n "$(ls -A "$OUT")" ] && [ ! -f "$OUT/.pal_demo" ]; then
  echo "error: $OUT is not empty and holds no earlier demo output; choose another DEMO_OUT" >&2; exit 2
fi
find "$OUT" -mindepth 1 -delete
touch "$OUT/.pal_demo"
MODELS="$OUT/models"
start=$SECONDS
step() { echo; echo "=== [$((SECONDS - start))s] $*"; }

step "0/9 inputs and tiny models"
if [ -f DATA/ESConv.json ]; then
  head_dialogues() {  # the first $1 dialogues of DATA/ESConv.json (either schema) as a JSON array in $2
    python - "$1" "$2" <<'PY'
import json, sys
from palkit.cli import UserError
from pal.dialogues import load_dialogues
n, out = int(sys.argv[1]), sys.argv[2]
try:
    dialogues = load_dialogues("DATA/ESConv.json", "see DATA/README.md").dialogues[:n]
except UserError as e:
    sys.exit(f"error: {e}")
json.dump(dialogues, open(out, "w", encoding="utf-8"))
print(f"ESConv: the first {len(dialogues)} dialogues of DATA/ESConv.json")
PY
  }
  head_dialogues "$DEMO_DIALOGUES" "$OUT/ESConv.json"
else
  cp RUN/demo_data/ESConv_sample.json "$OUT/ESConv.json"
  echo "ESConv: the bundled sample RUN/demo_data/ESConv_sample.json"
fi
mkdir -p "$OUT/personachat"
if ls DATA/personachat/*_both_original*.txt >/dev/null 2>&1; then
  ls DATA/personachat/train_both_original*.txt >/dev/null 2>&1 || {
    echo "error: DATA/personachat/ has no train_both_original.txt: the persona extractor trains on PersonaChat's" \
         "train split; add ParlAI ConvAI2's train_both_original.txt there, or move DATA/personachat/ away to use" \
         "the bundled sample" >&2; exit 2; }
  PERSONACHAT_DIR=DATA/personachat
  echo "PersonaChat: DATA/personachat"
else
  for split in train valid test; do
    cp RUN/demo_data/personachat_sample_both_original.txt "$OUT/personachat/${split}_both_original.txt"
  done
  PERSONACHAT_DIR="$OUT/personachat"
  echo "PersonaChat: the bundled sample RUN/demo_data/personachat_sample_both_original.txt (as train/valid/test)"
fi
BLENDER_TOKENIZER=""
for d in Blenderbot_small-90M "$SHARED/models/Blenderbot_small-90M"; do
  if [ -f "$d/vocab.json" ]; then BLENDER_TOKENIZER="$d"; break; fi
done
if ls Blenderbot_small-90M/*.bin Blenderbot_small-90M/*.safetensors >/dev/null 2>&1; then
  BLENDER="$ROOT/Blenderbot_small-90M"
  echo "BlenderBot-small: the real weights in Blenderbot_small-90M/"
else
  python -m pal.tiny blenderbot "$MODELS/blenderbot" ${BLENDER_TOKENIZER:+--tokenizer_dir "$BLENDER_TOKENIZER"}
  BLENDER="$MODELS/blenderbot"
fi
BART_TOKENIZER=""
if [ -f "$SHARED/models/bart-base/vocab.json" ]; then BART_TOKENIZER="$SHARED/models/bart-base"; fi
python -m persona_extractor.tiny_bart "$MODELS/bart" ${BART_TOKENIZER:+--tokenizer_dir "$BART_TOKENIZER"}
python -m pal.tiny bert "$MODELS/simcse_standin"

step "1/9 PersonaChat -> extractor CSVs"
PERSONACHAT_DIR="$PERSONACHAT_DIR" PERSONA_CSV_DIR="$OUT/persona_extractor" bash RUN/prepare_persona_data.sh

step "2/9 persona extractor training (tiny BART, 25 epochs)"
# Long enough, at a high learning rate, for the tiny BART to write persona sentences (validation loss below 1), so
# PESConv's personas are not empty and PAL's persona path is exercised; the released settings would learn nothing here.
PERSONA_CSV_DIR="$OUT/persona_extractor" EXTRACTOR_DIR="$OUT/persona_extractor/model" \
  bash RUN/train_persona_extractor.sh --model_name_or_path "$MODELS/bart" --num_epochs 25 --learning_rate 2e-2 \
  --scheduler_interval step --warmup_steps 0 --train_batch_size 8 --val_check_interval 1.0

step "3/9 ESConv -> PESConv (beam search over every seeker prefix)"
EXTRACTOR_DIR="$OUT/persona_extractor/model" ESCONV_FILE="$OUT/ESConv.json" PESCONV_FILE="$OUT/PESConv.json" \
  bash RUN/annotate_persona.sh --max_length 32

step "4/9 reformat PESConv -> train/valid/test"
python codes/_reformat/process.py --add_persona True --input_file "$OUT/PESConv.json" --output_dir "$OUT/pesconv"

step "5/9 featurize (prepare)"
TRAIN_FILE="$OUT/pesconv/train.txt" PRETRAINED_MODEL_PATH="$BLENDER" \
  bash RUN/prepare_strat.sh --output_dir "$OUT/strat.strat"

step "6/9 train PAL (2 epochs)"
RUN_DIR="$OUT/strat.strat/demo_run"
EVAL_FILE="$OUT/pesconv/valid.txt" PRETRAINED_MODEL_PATH="$BLENDER" \
  bash RUN/train_strat.sh --prepared_dir "$OUT/strat.strat" --output_dir "$RUN_DIR" --num_epochs 2 --learning_rate 1e-3
CKPT="$RUN_DIR/epoch-1.bin"

step "7/9 inference on test: PAL and PAL alpha=0 (released decoding settings)"
INFER_FILE="$OUT/pesconv/test.txt" bash RUN/infer_strat.sh "$CKPT" --pretrained_model_path "$BLENDER" \
  --save_dir "$OUT/results/pal"
INFER_FILE="$OUT/pesconv/test.txt" bash RUN/infer_strat.sh "$CKPT" --pretrained_model_path "$BLENDER" \
  --strategy_alpha 0 --save_dir "$OUT/results/pal_alpha0"

step "8/9 EAD, Cos-Sim (random BERT stand-in for SimCSE), training curves"
for r in pal pal_alpha0; do
  python codes/get_EAD_score.py --input_file "$OUT/results/$r/gen.json"
  python codes/get_cos_similarity.py --input_file "$OUT/results/$r/gen.json" --model "$MODELS/simcse_standin"
done
python codes/plot_training.py "$RUN_DIR"

step "9/9 results table"
python codes/summarize_results.py "$OUT/results/pal" "$OUT/results/pal_alpha0" --names "PAL (demo)" \
  "PAL alpha=0 (demo)" --compare_to pal pal_alpha0 --output "$OUT/results.tmp" 2> >(grep -v "^wrote " >&2)  # its "wrote" line: below
{ echo "Demo numbers: tiny randomly initialised models trained for minutes on a sample; they show that the pipeline"
  echo "runs end to end, not the paper's results (the differences to the paper's rows mean nothing here)."
  echo; cat "$OUT/results.tmp"; } > "$OUT/results.md" && rm "$OUT/results.tmp"
echo "wrote $OUT/results.md"

cat <<EOF

Demo finished in $((SECONDS - start)) s. Outputs:
  PESConv (annotated sample)     $OUT/PESConv.json
  reformatted splits             $OUT/pesconv/{train,valid,test}.txt
  persona extractor              $OUT/persona_extractor/model/best (train log: $OUT/persona_extractor/model)
  PAL run (checkpoints, logs)    $RUN_DIR  (epoch-N.bin, train_log.csv, eval_log.csv, training_curves.png)
  generations + metrics          $OUT/results/{pal,pal_alpha0}/  (gen.json, metric.json, metric_nlgeval.json,
                                 confusion-matrix PNG, ead.json, cos_similarity.json)
  results table                  $OUT/results.md
Tiny random models: the numbers show the pipeline works, not the paper's results (a tiny model's replies are
dominated by its learnt word frequencies, so PAL and PAL alpha=0 differ in only a few replies here).
EOF
