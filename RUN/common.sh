#!/usr/bin/env bash
# Sourced by the RUN/*.sh entry points: environment, repository root, shared argument logic.
# Sets PRETRAINED_ARGS (--pretrained_model_path from $PRETRAINED_MODEL_PATH, when set).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/RUN/setup_env.sh"
cd "$ROOT"
PRETRAINED_ARGS=()
if [ -n "${PRETRAINED_MODEL_PATH:-}" ]; then PRETRAINED_ARGS+=(--pretrained_model_path "$PRETRAINED_MODEL_PATH"); fi

# starts_with_checkpoint ARGS...: true when the first argument is a path (not an --option): the checkpoint.
starts_with_checkpoint() { [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; }

# newest_checkpoint RUNS_DIR TRAIN_SCRIPT: the highest epoch-N.bin of the run folder under RUNS_DIR that sorts last
# (timestamped names sort by time), or a one-line error. For paper numbers pass the epoch chosen by eval_log.csv.
newest_checkpoint() {
  local ckpt
  ckpt="$(ls -1 "$1"/*/epoch-*.bin 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -z "$ckpt" ]; then
    echo "error: no checkpoint given and none under $1/ (run RUN/$2 first)" >&2
    return 2
  fi
  echo "$ckpt"
}
