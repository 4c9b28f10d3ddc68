#!/usr/bin/env bash
# The full Table 3 recipe (PAL, PAL alpha=0, Blender-Joint) over several training and decoding seeds, for a machine
# with the real weights and a GPU.
#
#   bash RUN/reproduce_table3.sh             run everything (days on a CPU; about a day on one GPU with 3x3 seeds)
#   bash RUN/reproduce_table3.sh --dry_run   print the plan (number of runs, estimated time) and the commands only
#   SEEDS="13" DECODE_SEEDS="0" bash RUN/reproduce_table3.sh    the authors' single run
#
# Environment: SEEDS (training seeds, default "13 42 7"; 13 is the authors'), DECODE_SEEDS (decoding seeds of
# infer.py's sampling, default "0 1 2"; 0 is the authors'), NUM_EPOCHS (10), FIXED_EPOCH (the fixed-epoch rule of the
# table, default the last epoch), SIMCSE (Cos-Sim encoder), EXTRACTOR_MODEL, and EST_EPOCH_MIN / EST_DECODE_MIN /
# EST_COSSIM_MIN (minutes per training epoch, per decode + scoring, per Cos-Sim run, for the estimate only), ALLOW_PARTIAL=1
# (use a DATA/PESConv.json marked partial, e.g. from annotate --max_dialogues; refused otherwise). Weights, data
# completeness and the device are checked first; --dry_run prints what is missing.
# Each system is trained once per training seed (PAL alpha=0 decodes PAL's checkpoints with --strategy_alpha 0);
# every epoch is decoded with every decoding seed into DATA/table3/<system>/seed-<S>/epoch-<E>/decode-<D>/.
# Needs: Blenderbot_small-90M/ with facebook/blenderbot_small-90M, and either DATA/PESConv.json (the authors') or
# DATA/ESConv.json + DATA/personachat/ (then the persona extractor is trained and PESConv rebuilt first).
# Outputs: DATA/table3/results.md|json (Table 3 per selection rule: lowest validation PPL, fixed epoch, every epoch;
# mean +- sd over training seeds and 95% CIs), epochs.png, compare_best_ppl.md|json|png (paired tests).
[ -n "${BASH_VERSION:-}" ] || { echo "error: $0 is a bash script: run it as  bash $0" >&2; exit 2; }
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" --help-hook "$@"  # -h/--help: this header, nothing run
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRY_RUN=0
for a in "$@"; do
  case "$a" in
    --dry_run) DRY_RUN=1 ;;
    *) echo "error: RUN/reproduce_table3.sh: unknown argument $a; use --dry_run or --help" >&2; exit 2 ;;
  esac
done
cd "$ROOT"
SEEDS="${SEEDS:-13 42 7}"
DECODE_SEEDS="${DECODE_SEEDS:-0 1 2}"
NUM_EPOCHS="${NUM_EPOCHS:-10}"
FIXED_EPOCH="${FIXED_EPOCH:-$((NUM_EPOCHS - 1))}"
SIMCSE="${SIMCSE:-princeton-nlp/sup-simcse-bert-base-uncased}"
for v in $SEEDS $DECODE_SEEDS $NUM_EPOCHS $FIXED_EPOCH; do
  if ! [[ "$v" =~ ^[0-9]+$ ]]; then
    echo "error: RUN/reproduce_table3.sh: SEEDS, DECODE_SEEDS, NUM_EPOCHS and FIXED_EPOCH must be whole" \
      "numbers (got '$v'); e.g. SEEDS=\"13 42 7\"" >&2
    exit 2
  fi
done
read -r -a SEED_LIST <<< "$SEEDS"
read -r -a DECODE_LIST <<< "$DECODE_SEEDS"
if [ "${#SEED_LIST[@]}" -eq 0 ] || [ "${#DECODE_LIST[@]}" -eq 0 ] || [ "$NUM_EPOCHS" -lt 1 ] \
    || [ "$FIXED_EPOCH" -ge "$NUM_EPOCHS" ]; then
  echo "error: RUN/reproduce_table3.sh: need at least one seed in SEEDS and DECODE_SEEDS, NUM_EPOCHS >= 1 and" \
    "FIXED_EPOCH < NUM_EPOCHS" >&2
  exit 2
fi
SYSTEMS=(pal pal_alpha0 blender_joint)
run() {  # print, then run unless --dry_run
  printf '+'; printf ' %q' "$@"; printf '\n'
  if [ "$DRY_RUN" -eq 0 ]; then "$@"; fi
}

# The plan: what runs, and a rough time on one GPU from the per-unit minutes (assumptions, printed with it).
n_seeds=${#SEED_LIST[@]}; n_decodes=${#DECODE_LIST[@]}
n_train=$((2 * n_seeds)); n_epochs=$((n_train * NUM_EPOCHS))
n_infer=$((${#SYSTEMS[@]} * n_seeds * NUM_EPOCHS * n_decodes))
minutes=$(awk -v e="$n_epochs" -v d="$n_infer" -v a="${EST_EPOCH_MIN:-6}" -v b="${EST_DECODE_MIN:-2}" \
  -v c="${EST_COSSIM_MIN:-0.5}" 'BEGIN { printf "%.0f", e * a + d * b + d * c }')
echo "# plan: $n_train training runs (PAL, Blender-Joint x $n_seeds training seeds: $SEEDS; $n_epochs epochs in all)," \
  "$n_infer decodes (${#SYSTEMS[@]} systems x $n_seeds seeds x $NUM_EPOCHS epochs x $n_decodes decoding seeds:" \
  "$DECODE_SEEDS)," \
  "$n_infer Cos-Sim runs"
echo "# estimate: about $((minutes / 60)) h $((minutes % 60)) min on one GPU (assumed ${EST_EPOCH_MIN:-6} min per" \
  "training epoch, ${EST_DECODE_MIN:-2} min per decode + scoring, ${EST_COSSIM_MIN:-0.5} min per Cos-Sim run;" \
  "set EST_*)"

# What the recipe needs, checked before anything runs: weights, complete data, a GPU. A run stops at a missing one
# (a partial PESConv only with ALLOW_PARTIAL=1; no GPU is a warning); --dry_run prints every finding and goes on.
source "$ROOT/RUN/setup_env.sh" >&2
missing=()
compgen -G "Blenderbot_small-90M/*.bin" >/dev/null || compgen -G "Blenderbot_small-90M/*.safetensors" >/dev/null \
  || missing+=("weights: no weights in Blenderbot_small-90M/ (see Blenderbot_small-90M/README.md)")
if [ -f DATA/PESConv.json ]; then
  if ! partial="$(python -m pal.completeness DATA/PESConv.json)"; then
    if [ "${ALLOW_PARTIAL:-0}" = 1 ]; then echo "# data: $partial (ALLOW_PARTIAL=1: used anyway)"
    else missing+=("data: $partial; rebuild it (delete it, then rerun) or set ALLOW_PARTIAL=1 to use it"); fi
  else echo "# data: DATA/PESConv.json (complete)"; fi
elif [ -f DATA/ESConv.json ] && ls DATA/personachat/train_both_original*.txt >/dev/null 2>&1; then
  echo "# data: DATA/ESConv.json and DATA/personachat/ (PESConv is rebuilt)"
else
  missing+=("data: neither DATA/PESConv.json nor DATA/ESConv.json + DATA/personachat/train_both_original.txt (see DATA/README.md)")
fi
if [ "$(python -c 'import torch; print(torch.cuda.is_available())')" = True ]; then echo "# device: CUDA"
else echo "# device: no CUDA GPU visible: the estimate above assumes one (days on a CPU)"; fi
for m in "${missing[@]}"; do echo "# missing: $m"; done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$DRY_RUN" -eq 0 ]; then
    echo "error: RUN/reproduce_table3.sh: ${missing[*]}" >&2
    exit 2
  fi
  echo "# (dry run: the commands below would run once what is missing is there)"
fi

# 1. PESConv: the authors' file, or rebuilt with our persona extractor.
if [ ! -f DATA/PESConv.json ] || [ "$DRY_RUN" -eq 1 ]; then
  echo "# PESConv: train the extractor on PersonaChat and annotate ESConv (skipped when DATA/PESConv.json exists)"
  run bash RUN/prepare_persona_data.sh
  run bash RUN/train_persona_extractor.sh --model_name_or_path "${EXTRACTOR_MODEL:-facebook/bart-large-cnn}"
  run bash RUN/annotate_persona.sh
fi

# 2. Reformat (seed-13 7:2:1 split) and featurize for PAL and Blender-Joint (same dialogues, same split).
run RUN/python codes/_reformat/process.py --add_persona True --input_file DATA/PESConv.json --output_dir DATA/pesconv
run env TRAIN_FILE=DATA/pesconv/train.txt bash RUN/prepare_strat.sh
run env TRAIN_FILE=DATA/pesconv/train.txt bash RUN/prepare_no_persona.sh

# 3. Train both with the released settings, once per training seed; one run folder each.
for s in "${SEED_LIST[@]}"; do
  run env EVAL_FILE=DATA/pesconv/valid.txt bash RUN/train_strat.sh --num_epochs "$NUM_EPOCHS" --seed "$s" \
    --output_dir "DATA/strat.strat/table3-seed-$s"
  run env EVAL_FILE=DATA/pesconv/valid.txt bash RUN/train_no_persona.sh --num_epochs "$NUM_EPOCHS" --seed "$s" \
    --output_dir "DATA/strat.strat_no_persona/table3-seed-$s"
done

# 4. Every epoch of every run, with every decoding seed, on the test split; then Cos-Sim (E-1/E-2 are in metric.json).
for s in "${SEED_LIST[@]}"; do
  for ((e = 0; e < NUM_EPOCHS; e++)); do
    for d in "${DECODE_LIST[@]}"; do
      for system in "${SYSTEMS[@]}"; do
        case "$system" in
          pal)           script=RUN/infer_strat.sh;      ckpt=DATA/strat.strat/table3-seed-$s/epoch-$e.bin; extra=() ;;
          pal_alpha0)    script=RUN/infer_strat.sh;      ckpt=DATA/strat.strat/table3-seed-$s/epoch-$e.bin
                         extra=(--strategy_alpha 0) ;;
          blender_joint) script=RUN/infer_no_persona.sh; ckpt=DATA/strat.strat_no_persona/table3-seed-$s/epoch-$e.bin
                         extra=() ;;
        esac
        out="DATA/table3/$system/seed-$s/epoch-$e/decode-$d"
        run env INFER_FILE=DATA/pesconv/test.txt bash "$script" "$ckpt" "${extra[@]}" --seed "$d" --save_dir "$out"
        run RUN/python codes/get_cos_similarity.py --input_file "$out/gen.json" --model "$SIMCSE"
      done
    done
  done
done
for s in "${SEED_LIST[@]}"; do
  run RUN/python codes/plot_training.py "DATA/strat.strat/table3-seed-$s"
  run RUN/python codes/plot_training.py "DATA/strat.strat_no_persona/table3-seed-$s"
done

# 5. The table (each rule, mean +- sd over training seeds, CIs, beside the paper) and the paired tests.
run RUN/python codes/summarize_results.py DATA/table3 --select best_ppl "epoch:$FIXED_EPOCH" every \
  --output DATA/table3/results.md --json DATA/table3/results.json --plot DATA/table3/epochs.png
run RUN/python codes/compare_systems.py DATA/table3/pal DATA/table3/pal_alpha0 DATA/table3/blender_joint --select best_ppl \
  --markdown DATA/table3/compare_best_ppl.md --output DATA/table3/compare_best_ppl.json \
  --plot DATA/table3/compare_best_ppl.png
echo "# Table 3: DATA/table3/results.md (README, Results: how to read it);" \
  "paired tests: DATA/table3/compare_best_ppl.md"
