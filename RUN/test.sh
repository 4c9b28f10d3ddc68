#!/usr/bin/env bash
# Set up the environment (first run only) and run the test suite.
#   bash RUN/test.sh          the fast loop: every test except those marked slow (a few minutes on 2 cores)
#   bash RUN/test.sh --fast   the model-work inner loop: neither slow nor robustness (bad-input, crash tables)
#   bash RUN/test.sh --all    every test, slow ones included (what CI runs: .ci/run)
# Other arguments go to pytest, e.g. `bash RUN/test.sh -k reformat -x` or `bash RUN/test.sh --all -m slow`.
# pytest's own options: python -m pytest --help (in the environment of RUN/setup_env.sh).
[ -n "${BASH_VERSION:-}" ] || { echo "error: $0 is a bash script: run it as  bash $0" >&2; exit 2; }
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh" --help-hook "$@"  # -h/--help: this header, nothing run
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/RUN/setup_env.sh"
cd "$ROOT"
SELECT=(-m "not slow")
case "${1:-}" in
    --all) SELECT=(); shift ;;
    --fast) SELECT=(-m "not slow and not robustness"); shift ;;
esac
set +e
python -m pytest "${SELECT[@]}" "$@"
rc=$?
set -e
# pytest exits 5 when it collected no test: that is a failure, never a pass.
if [ "$rc" -eq 5 ]; then echo "ERROR: pytest ran no test" >&2; exit 1; fi
exit "$rc"
