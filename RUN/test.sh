#!/usr/bin/env bash
# Set up the environment (first run only) and run the whole test suite.
# Extra arguments go to pytest, e.g. `bash RUN/test.sh -k reformat -x`.
# pytest's own options: python -m pytest --help (in the environment of RUN/setup_env.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" --help-hook "$@"  # -h/--help: this header, nothing run
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/RUN/setup_env.sh"
cd "$ROOT"
set +e
python -m pytest "$@"
rc=$?
set -e
# pytest exits 5 when it collected no test: that is a failure, never a pass.
if [ "$rc" -eq 5 ]; then echo "ERROR: pytest ran no test" >&2; exit 1; fi
exit "$rc"
