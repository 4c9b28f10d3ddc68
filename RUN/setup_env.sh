#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv from requirements.txt.
# Idempotent: re-running with an unchanged requirements.txt does nothing.
# Usage: source RUN/setup_env.sh   (or bash RUN/setup_env.sh)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" --help-hook "$@"  # -h/--help: this header, nothing run
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PAL_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
stamp="$VENV/.requirements.sha256"
want="$(sha256sum "$ROOT/requirements.txt" | cut -c1-64)"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment in $VENV"
  "$PYTHON" -m venv "$VENV"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing requirements.txt into $VENV (first run takes about a minute)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r "$ROOT/requirements.txt"
  echo "$want" > "$stamp"
fi
# nltk's punkt_tab: use ../shared/nltk_data when present, otherwise NLTK's own search path.
if [ -z "${NLTK_DATA:-}" ] && [ -d "$ROOT/../shared/nltk_data" ]; then
  export NLTK_DATA="$(cd "$ROOT/../shared/nltk_data" && pwd)"
fi
export PATH="$VENV/bin:$PATH"
