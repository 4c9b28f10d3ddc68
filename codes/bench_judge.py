"""How fast an LLM judge gives probability verdicts: batched and prefix-cached against one prompt at a time.

    RUN/python codes/bench_judge.py [--judge llm=smollm2] [--pairs 3] [--questions 5] [--max_turns 12] [--esconv FILE]

The prompts are a study's: for each pair of ESConv conversations and each order, one prompt per criterion question
of the human study (they share everything up to the question). Timed in one run, in turn: one next-token read per
prompt (no batching, no shared prefix); right-padded batches without the shared prefix; batches with each pair's
prefix encoded once and its key-value cache reused per question (how auto_eval judges a study). Prints judgments/s
(wall and CPU seconds), the ratios to one at a time and the largest probability difference (README "Can this judge be
trusted?").
"""
import palkit.entry  # noqa: F401 -- first: outside the project's environment, one line saying how to run this
import json
import os
import time
from pathlib import Path

from palkit.argtypes import existing_file, positive_int
from palkit.loaders import load_json
from palkit.cli import ArgumentParser, DefaultsHelpFormatter, UserError, run_main

from auto_eval import judge as judging, validate
from auto_eval.cli import CRITERIA, model_spec
from chat_systems import load_system
from human_eval.tasks import load_criteria

DEMO_ESCONV = Path(__file__).resolve().parents[1] / "RUN" / "demo_data" / "ESConv_sample.json"


def study_prompts(dialogues, pairs, questions, max_turns):
    """[judge_messages] of consecutive dialogues taken two by two, both orders, every question (questions last)."""
    prompt = judging.load_judge_prompt(judging.JUDGE_PROMPT)
    out = []
    for k in range(pairs):
        a, b = (dialogues[(2 * k + j) % len(dialogues)] for j in range(2))
        card = validate.card_of(a)  # the study's form: one help-seeker's card for both conversations
        sides = [judging.side(validate.messages_of(d, "")[:max_turns], card) for d in (a, b)]
        for first, second in (sides, sides[::-1]):
            out += [judging.judge_messages(prompt, q, first, second) for q in questions]
    return out


def timed(label, read, conversations):
    """Wall and CPU seconds of one reading (on a shared machine the CPU seconds are the steadier measure)."""
    start, cpu = time.perf_counter(), time.process_time()
    values = read(conversations)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"label": label, "seconds": seconds, "cpu_seconds": cpu, "judgments_per_s": len(conversations) / seconds,
            "judgments_per_cpu_s": len(conversations) / cpu, "values": values}


def main(argv=None):
    p = ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
    p.add_argument("--judge", default="llm=smollm2", type=model_spec, metavar="SPEC", help="a local LLM")
    p.add_argument("--pairs", type=positive_int, default=3)
    p.add_argument("--questions", type=positive_int, default=5, help="criterion questions per pair and order")
    p.add_argument("--max_turns", type=positive_int, default=12, help="turns of each conversation shown")
    p.add_argument("--esconv", default=None, type=existing_file,
                   help="conversations (default: ESConv.json as the validation finds it, else the demo sample)")
    p.add_argument("--output", default=None, help="also write the results as JSON here")
    args = p.parse_args(argv)
    source = args.esconv or validate.default_esconv() or str(DEMO_ESCONV)
    dialogues = load_json(source, expect=list, hint="give an ESConv.json")
    questions = [judging.question_text(c, "interactive") for c in load_criteria(CRITERIA)][:args.questions]
    judge = load_system(args.judge, device="cpu")
    if not hasattr(judge, "next_token_logprobs") or not hasattr(judge, "prompt_token_counts"):
        raise UserError(f"--judge {judge.name}: the bench times a local LLM's next-token reads (llm=...)")
    conversations = study_prompts(dialogues, args.pairs, questions, args.max_turns)
    tokens = judge.prompt_token_counts(conversations)
    judge.next_token_logprobs(conversations[:1], judging.CANDIDATES)  # warm-up
    runs = [timed("one at a time", lambda cs: [judge.next_token_logprobs([c], judging.CANDIDATES)[0] for c in cs],
                  conversations),
            timed("batched", lambda cs: judge.next_token_logprobs(cs, judging.CANDIDATES, share_prefix=False),
                  conversations),
            timed("batched + prefix cache", lambda cs: judge.next_token_logprobs(cs, judging.CANDIDATES),
                  conversations)]
    base = runs[0]
    print(f"{len(conversations)} judgments ({args.pairs} pairs x 2 orders x {len(questions)} questions), prompts of "
          f"{min(tokens)}-{max(tokens)} tokens (mean {sum(tokens) / len(tokens):.0f}), judge {judge.name}, "
          f"{source}")
    print("| reading | seconds | judgments/s | x one at a time | CPU seconds | x one at a time (CPU) | max |Δp| |")
    print("|---|---|---|---|---|---|---|")
    for run in runs:
        diff = max(abs(a - b) for x, y in zip(base["values"], run["values"])
                   for a, b in zip(judging.normalised(x).values(), judging.normalised(y).values()))
        run["max_probability_difference"] = diff
        print(f"| {run['label']} | {run['seconds']:.1f} | {run['judgments_per_s']:.3f} | "
              f"{run['judgments_per_s'] / base['judgments_per_s']:.2f} | {run['cpu_seconds']:.1f} | "
              f"{base['cpu_seconds'] / run['cpu_seconds']:.2f} | {diff:.1e} |")
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w", encoding="utf-8") as f:
            json.dump({"judge": args.judge.identity(), "tokens": tokens,
                       "runs": [{k: v for k, v in r.items() if k != "values"} for r in runs]}, f, indent=2)


if __name__ == "__main__":
    run_main(main)
