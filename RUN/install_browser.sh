#!/usr/bin/env bash
# Install the headless browser the human-evaluation browser test drives: Debian's chromium and chromium-driver.
# (selenium comes from requirements.txt; it uses this system chromedriver and never downloads a browser.)
# Idempotent: does nothing when both are installed. Never fails: without apt-get or root it says so and exits 0,
# and tests/test_human_eval_browser.py then skips with the reason.
# Usage: bash RUN/install_browser.sh
[ -n "${BASH_VERSION:-}" ] || { echo "error: $0 is a bash script: run it as  bash $0" >&2; exit 2; }
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" --help-hook "$@"  # -h/--help: this header, nothing run
set +e  # common.sh sets -e; this script never fails (header)
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  echo "[browser] chromium and chromedriver are installed"; exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "[browser] no apt-get here: install chromium and its chromedriver yourself; the browser tests will skip (and .ci/run fails)"; exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "[browser] not root and no password-less sudo: cannot install chromium; the browser tests will skip (and .ci/run fails)"; exit 0
  fi
fi
echo "[browser] installing chromium and chromium-driver with apt-get"
if $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver \
    >/dev/null; then
  echo "[browser] installed: $(chromium --version 2>/dev/null | head -n 1)"
else
  echo "[browser] apt-get could not install chromium; the browser tests will skip (and .ci/run fails)"
fi
exit 0
