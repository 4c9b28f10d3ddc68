#!/usr/bin/env bash
# Serve a PAL-family checkpoint as an OpenAI-compatible chat endpoint (codes/serve.py; README "Comparing PAL with an
# LLM"): POST /v1/chat/completions, GET /v1/models, on 127.0.0.1 unless --host.
# Usage: bash RUN/serve.sh RUN_DIR|epoch-N.bin [--port P] [--host H] [--persona_extractor DIR] [codes/serve.py options]
# Example (after bash RUN/demo.sh):
#   bash RUN/serve.sh demo_out/strat.strat/demo_run --port 8000
#   curl -d '{"messages":[{"role":"user","content":"I lost my job"}]}' http://127.0.0.1:8000/v1/chat/completions
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
python "${R}codes/serve.py" "${PRETRAINED_ARGS[@]}" "$@"
