#!/usr/bin/env bash
# Can this judge be trusted? (codes/auto_eval/validate.py; README "Can this judge be trusted?"): the LLM judge compares
# pairs of real ESConv conversations whose help-seekers rated their supporters apart, in both orders, with the
# study's question of the matching criterion; its agreement with the seekers stands beside trivial baselines (random,
# longer supporter, more questions), and the report ends with whether it beats the best of them.
# Usage: bash RUN/validate_judge.sh --judge SPEC [--pairs N] [--rating empathy|relevance|improvement] [--output DIR]
#        [--esconv FILE] [--verdict prob|text] [RUN/python -m auto_eval validate options]
#   SPEC: any system spec (README "Comparing PAL with an LLM"); without name= it is named after its model.
#   Defaults: 200 pairs, empathy (5 against <= 3, same problem type), probability verdicts where the judge gives them,
#   ESConv from DATA/ESConv.json (else ../shared/data/esconv/ESConv.json beside the checkout), the report in
#   DATA/judge_validity/NAME-VERDICT-RATING/judge_validity.{json,md,png}. Killed, the same command finishes it.
# Examples:
#   bash RUN/validate_judge.sh --judge llm=smollm2        # about 22 min on one CPU thread (--bf16: ~3x less CPU)
#   bash RUN/validate_judge.sh --judge llm=smollm2 --verdict text --pairs 50
#   bash RUN/validate_judge.sh --judge name=qwen,endpoint=http://127.0.0.1:8001/v1,model=Qwen2.5-7B-Instruct --concurrency 8
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
python -m auto_eval validate "$@"
