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
# --help never creates .venv, deletes or writes anything.
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
  echo "It runs (values from the environment and your arguments; a later option overrides an earlier one):"
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
if wants_help "$@"; then  # the caller's arguments: `source` without arguments keeps them
  PAL_HELP=1
  print_header "$PAL_SCRIPT"
  python() { show_command_and_exit python "$@"; }
else
  source "$ROOT/RUN/setup_env.sh"
  default_cpu_threads
fi
# Paths stay relative to the caller's directory; R is the repository root relative to it ("" at the root), so the
# scripts and default data paths are "${R}codes/...", "${R}DATA/..." and a user's paths are taken as given.
R="$(realpath --relative-to=. "$ROOT")/"
if [ "$R" = "./" ]; then R=""; fi
PRETRAINED_ARGS=()
if [ -n "${PRETRAINED_MODEL_PATH:-}" ]; then PRETRAINED_ARGS+=(--pretrained_model_path "$PRETRAINED_MODEL_PATH"); fi

# set_launcher: LAUNCH=(python), or (python -m torch.distributed.run --standalone --nproc_per_node N, i.e. torchrun)
# when NPROC=N > 1 (N processes on this
# machine, e.g. one per GPU); an NPROC that is not a positive integer is a one-line error (exit 2).
set_launcher() {
  local n="${NPROC:-1}"
  if ! [[ "$n" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: NPROC=$n: expected a positive integer (the number of processes, e.g. NPROC=2; unset: one)" >&2
    exit 2
  fi
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
