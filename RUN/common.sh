#!/usr/bin/env bash
# Sourced by the RUN/*.sh entry points: --help, environment, repository root, shared argument logic.
#   source RUN/common.sh                     (entry points that run one Python command) -h/--help prints the
#                                            script's header comment and, instead of running it, the command with
#                                            every argument's value; otherwise sets up the environment (setup_env.sh)
#                                            and R (the repository root relative to the caller: paths stay relative to the
#                                            caller's directory), sets OMP_NUM_THREADS=1 when unset
#                                            (default_cpu_threads) and PRETRAINED_ARGS (--pretrained_model_path
#                                            from $PRETRAINED_MODEL_PATH, when set).
#   source RUN/common.sh --help-hook "$@"    (scripts that set up themselves: demo, reproduce_table3, setup_env,
#                                            test) -h/--help prints the header comment and exits; nothing else.
#   source RUN/common.sh --check-env         (the launcher RUN/python) only check_environment.
# --help never creates .venv, deletes or writes anything.
# A script's `python` (and "${LAUNCH[@]}") runs the command its arguments will really use (effective_command): an
# option the user appends replaces the script's value of it, which is then neither checked nor shown; the defaults
# that are used and come from an environment variable (INFER_FILE, ...) are checked first, errors naming the variable.
[ -n "${BASH_VERSION:-}" ] || { echo "error: $0 is a bash script: run it as  bash $0" >&2; exit 2; }
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PAL_SCRIPT="${BASH_SOURCE[1]:-$0}"  # the script that sourced this file (this file when run directly)

# wants_help ARGS...: true when -h or --help is among the arguments.
wants_help() {
  local a
  for a in "$@"; do
    case "$a" in -h|--help) return 0 ;; esac
  done
  return 1
}

# print_header FILE: the comment block at the top of FILE (after the shebang), without the leading '# '.
print_header() {
  local line
  while IFS= read -r line; do
    case "$line" in
      '#!'*) ;;
      '#'*) line="${line#\#}"; echo "${line# }" ;;
      *) break ;;
    esac
  done < "$1"
}

usage_and_exit_if_help() {
  if wants_help "$@"; then print_header "$PAL_SCRIPT"; exit 0; fi
}

# quote_arg ARG: ARG as a shell word (quoted only when it needs to be).
quote_arg() {
  if [[ "$1" =~ ^[A-Za-z0-9_./:=,+@%-]+$ ]]; then printf '%s' "$1"; else printf "'%s'" "${1//\'/\'\\\'\'}"; fi
}

# show_command_and_exit PROGRAM ARGS...: in --help mode the script's command is printed, one option per line with
# its values, instead of being run (-h/--help themselves are left out).
show_command_and_exit() {
  local program="$1" script="" a words=()
  shift
  for a in "$@"; do
    case "$a" in -h|--help) ;; *) words+=("$a") ;; esac
  done
  echo
  echo "It runs (values from the environment and your arguments; an option you give replaces the script's value of it):"
  printf '  %s' "${program/#python/${R}RUN/python}"  # runnable as printed, from a plain shell (RUN/python)
  for a in "${words[@]}"; do
    if [[ "$a" == -* && ! "$a" =~ ^-[0-9.]+$ ]]; then printf ' \\\n      %s' "$a"
    else printf ' %s' "$(quote_arg "$a")"; fi
    if [ -z "$script" ] && [[ "$a" == *.py ]]; then script="$a"; fi
  done
  echo
  if [ -n "$script" ]; then
    echo "All options of $script and their defaults: ${R}RUN/python $script --help"
  fi
  exit 0
}

# default_cpu_threads: OMP_NUM_THREADS=1 when the user has not set it (one line says so). Measured on the 2-core machine
# this suite is developed on, shared with other jobs: one thread ran a training step 3.3x (full-size BlenderBot-small)
# to 3.8x (tiny) faster and generation 7.8x to 13x faster than torch's default of 2 (README "CPU threads"). GPU runs
# hardly depend on it; on a machine with idle cores set OMP_NUM_THREADS=N.
default_cpu_threads() {
  if [ -z "${OMP_NUM_THREADS:-}" ]; then
    export OMP_NUM_THREADS=1
    echo "[setup] OMP_NUM_THREADS=1 (fastest on a small shared CPU; set OMP_NUM_THREADS=N to use N threads)" >&2
  fi
}

# check_environment: the environment variables the suite reads have usable values, else one line and exit 2:
# OMP_NUM_THREADS (CPU threads per process), NPROC (processes of the RUN scripts' launcher), PAL_CACHE_DIR (where
# converted chat models are kept). Unset or empty: the default.
check_environment() {
  local threads="${OMP_NUM_THREADS:-}" nproc="${NPROC:-}" cache="${PAL_CACHE_DIR:-}" above
  if [ -n "$threads" ] && ! [[ "$threads" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]]; then
    echo "error: OMP_NUM_THREADS=$threads: expected a positive integer (CPU threads per process, e.g." \
         "OMP_NUM_THREADS=1; unset: 1)" >&2
    exit 2
  fi
  if [ -n "$nproc" ] && ! [[ "$nproc" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: NPROC=$nproc: expected a positive integer (the number of processes, e.g. NPROC=2; unset: one)" >&2
    exit 2
  fi
  if [ -n "$cache" ]; then
    above="$cache"
    while [ ! -e "$above" ] && [ "$above" != "$(dirname "$above")" ]; do above="$(dirname "$above")"; done
    if [ -e "$cache" ] && [ ! -d "$cache" ]; then
      echo "error: PAL_CACHE_DIR=$cache: is a file, expected a folder (where converted chat models are kept)" >&2
      exit 2
    elif [ ! -d "$above" ]; then
      echo "error: PAL_CACHE_DIR=$cache: cannot be made, $above is a file (choose another folder)" >&2
      exit 2
    elif [ ! -w "$above" ]; then
      echo "error: PAL_CACHE_DIR=$cache: $above is not writable (choose another folder)" >&2
      exit 2
    fi
  fi
}

# Options whose script value may come from an environment variable, checked when that value is used:
# "OPTION VARIABLE file|dir" (the variable named in the error; a script's built-in default names it too).
ENV_PATH_OPTIONS=(
  "--infer_input_file INFER_FILE file"
  "--train_input_file TRAIN_FILE file"
  "--eval_input_file EVAL_FILE file"
  "--pretrained_model_path PRETRAINED_MODEL_PATH dir"
  "--train_dir PERSONA_CSV_DIR dir"
  "--data_dir PERSONACHAT_DIR dir"
  "--model_dir EXTRACTOR_DIR dir"
  "--input_file ESCONV_FILE file"
)

# is_option WORD: an --option or -o (a negative number is a value).
is_option() { [[ "$1" == -* && ! "$1" =~ ^-[0-9.]+$ && "$1" != "-" ]]; }

# effective_command ARGS...: sets PAL_COMMAND to ARGS (a python command line whose tail is the caller's own
# arguments, PAL_USER_ARGS) without the script's values of the options that the caller's arguments give again, and
# PAL_SCRIPT_OPTIONS to the "OPTION VALUE" of the script's options that stay (first value only).
effective_command() {
  local call=("$@") n=$# u=${#PAL_USER_ARGS[@]} k=0 start=0 i name given=" " skipping=0 a
  while [ "$k" -lt "$n" ] && [ "$k" -lt "$u" ] && [ "${call[n-1-k]}" == "${PAL_USER_ARGS[u-1-k]}" ]; do k=$((k + 1)); done
  for a in "${call[@]:n-k}"; do
    if is_option "$a"; then given+="${a%%=*} "; fi
  done
  for ((i = 0; i < n - k; i++)); do  # the script's own words start after the program: FILE.py or -m MODULE
    if [[ "${call[i]}" == *.py ]]; then start=$((i + 1)); break; fi
  done
  if [ "$start" = 0 ] && [ "${call[0]:-}" = "-m" ]; then start=2; fi
  PAL_COMMAND=("${call[@]:0:start}") PAL_SCRIPT_OPTIONS=()
  for ((i = start; i < n - k; i++)); do
    a="${call[i]}"
    if is_option "$a"; then
      name="${a%%=*}"
      if [[ "$given" == *" $name "* ]]; then skipping=1; continue; fi
      skipping=0
      if [[ "$a" == *=* ]]; then PAL_SCRIPT_OPTIONS+=("$name ${a#*=}")
      elif [ $((i + 1)) -lt $((n - k)) ] && ! is_option "${call[i+1]}"; then PAL_SCRIPT_OPTIONS+=("$name ${call[i+1]}"); fi
    elif [ "$skipping" = 1 ]; then continue; fi
    PAL_COMMAND+=("$a")
  done
  PAL_COMMAND+=("${call[@]:n-k}")
}

# check_script_defaults: every path in PAL_SCRIPT_OPTIONS that comes from ENV_PATH_OPTIONS exists, else one line
# naming the variable that sets it, and exit 2.
check_script_defaults() {
  local entry option var kind value what
  for entry in "${ENV_PATH_OPTIONS[@]}"; do
    read -r option var kind <<< "$entry"
    for value in "${PAL_SCRIPT_OPTIONS[@]}"; do
      [ "${value%% *}" = "$option" ] || continue
      value="${value#* }"
      if [ "$kind" = dir ] && [ -d "$value" ]; then continue; fi
      if [ "$kind" = file ] && [ -f "$value" ]; then continue; fi
      if [ "$var" = PRETRAINED_MODEL_PATH ] && [[ "$value" =~ ^[^./~][^/]*/[^/]+$ ]]; then continue; fi  # a hub name
      if [ -e "$value" ]; then what="is not a $([ "$kind" = dir ] && echo folder || echo file)"; else
        what="no such $([ "$kind" = dir ] && echo folder || echo file)"; fi
      if [ -n "${!var:-}" ]; then
        if [ "$value" = "${!var}" ]; then value=""; else value=" $value:"; fi  # EXTRACTOR_DIR: its best/ is used
        echo "error: $var=${!var}:$value $what (it sets $option; unset it or append $option ${kind^^} to use another)" >&2
      else
        echo "error: $option $value: $what (the script's default; set $var=${kind^^} or append $option ${kind^^})" >&2
      fi
      exit 2
    done
  done
}

if [ "${1:-}" = "--check-env" ]; then
  check_environment
  return 0
fi
if [ "${1:-}" = "--help-hook" ]; then
  shift
  usage_and_exit_if_help "$@"
  return 0
fi
if [ "${BASH_SOURCE[0]}" = "$0" ]; then  # bash RUN/common.sh: help only; it is meant to be sourced
  usage_and_exit_if_help "$@"
  echo "error: RUN/common.sh is sourced by the RUN/*.sh scripts; run one of them (bash RUN/common.sh --help)" >&2
  exit 2
fi

PAL_HELP=0
PAL_USER_ARGS=("$@")  # the caller's arguments: `source` without arguments keeps them
check_environment
if wants_help "$@"; then
  PAL_HELP=1
  print_header "$PAL_SCRIPT"
  python() { effective_command "$@"; show_command_and_exit python "${PAL_COMMAND[@]}"; }
else
  source "$ROOT/RUN/setup_env.sh"
  default_cpu_threads
  python() { effective_command "$@"; check_script_defaults; command python "${PAL_COMMAND[@]}"; }
fi
# Paths stay relative to the caller's directory; R is the repository root relative to it ("" at the root), so the
# scripts and default data paths are "${R}codes/...", "${R}DATA/..." and a user's paths are taken as given.
R="$(realpath --relative-to=. "$ROOT")/"
if [ "$R" = "./" ]; then R=""; fi
PRETRAINED_ARGS=()
if [ -n "${PRETRAINED_MODEL_PATH:-}" ]; then PRETRAINED_ARGS+=(--pretrained_model_path "$PRETRAINED_MODEL_PATH"); fi

# set_launcher: LAUNCH=(python), or (python -m torch.distributed.run --standalone --nproc_per_node N, i.e. torchrun)
# when NPROC=N > 1 (N processes on this machine, e.g. one per GPU).
set_launcher() {
  local n="${NPROC:-1}"  # checked by check_environment
  LAUNCH=(python)
  if [ "$n" -gt 1 ]; then LAUNCH=(python -m torch.distributed.run --standalone --nproc_per_node "$n"); fi
}

# resume_run SCRIPT ARGS...: when --resume is among ARGS, runs "${LAUNCH[@]}" SCRIPT ARGS and exits: a resumed run
# takes its arguments from its run folder's args.json, so the values a training script passes for a new run are left
# out (an explicit one that would change the run is refused by the trainer). Otherwise returns.
resume_run() {
  local a
  for a in "${@:2}"; do
    case "$a" in
      --resume|--resume=*) "${LAUNCH[@]}" "$@"; exit 0 ;;
    esac
  done
}

# starts_with_checkpoint ARGS...: true when the first argument is a path (not an --option): the checkpoint.
starts_with_checkpoint() { [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; }

# newest_checkpoint RUNS_DIR TRAIN_SCRIPT: the highest epoch-N.bin of the run folder under RUNS_DIR that sorts last
# (timestamped names sort by time), or a one-line error. For paper numbers pass the epoch chosen by eval_log.csv.
newest_checkpoint() {
  local ckpt
  ckpt="$(ls -1 "$1"/*/epoch-*.bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -z "$ckpt" ] && [ "$PAL_HELP" = 1 ]; then
    ckpt="$1/<newest run>/epoch-<last>.bin"  # --help on a fresh clone: show where it would be
  elif [ -z "$ckpt" ]; then
    echo "error: no checkpoint given and none under $1/ (run RUN/$2 first)" >&2
    return 2
  fi
  echo "$ckpt"
}
