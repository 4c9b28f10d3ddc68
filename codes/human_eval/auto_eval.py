"""Automatic interactive evaluation: a simulated help-seeker talks with each system, a pairwise LLM judge compares.

    RUN/python -m human_eval.auto_eval cards --test_file DATA/pesconv/test.txt --num_cards 20 --output cards.json
    RUN/python -m human_eval.auto_eval run --db auto.db --cards cards.json --system SPEC --system SPEC \
        --seeker llm=smollm2 --judge llm=smollm2 --turns 5
    RUN/python -m human_eval.auto_eval static --db static.db --results pal=RES1 --results joint=RES2 --judge SPEC
    RUN/python -m human_eval.auto_eval judge --db HUMAN_STUDY.db --judge SPEC    # the humans' own conversations

Everything is stored in the human study's SQLite schema (conversations as tasks and messages, the seeker an
annotator named after its model) plus the auto_* tables (auto_store.py); `RUN/python -m human_eval.analyze DB` reports
it. Every turn and every judgment is seeded by what it is and committed on its own, so a killed run finishes with
the same command and ends with the rows of an uninterrupted one. README "Automatic evaluation" has the protocol.
"""
import argparse
import itertools
import os
import random
import time
from collections import Counter

from palkit.argtypes import existing_dir, existing_file, int_range, non_negative_float, output_file, positive_int
from palkit.cli import ArgumentParser, UserError, resolve_device, run_main

from chat_systems import parse_system_spec
from chat_systems.supporter import supporter_messages
from human_eval import auto_store, judge as judging, role_cards
from human_eval.tasks import criteria_for, load_criteria

CRITERIA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "criteria.json")


# ---- systems --------------------------------------------------------------------------------------------------------
def load_models(specs, device):
    """[loaded system] for specs of the seeker / judge; a spec given twice (a seeker that judges) is loaded once."""
    from chat_systems import load_system
    loaded = {}
    for spec in specs:
        key = canonical(spec.identity())
        if key not in loaded:
            loaded[key] = load_system(spec, device=device)
    return [loaded[canonical(spec.identity())] for spec in specs]


# ---- the simulated seeker -------------------------------------------------------------------------------------------
def seeker_system_message(prompt, card):
    persona = prompt["persona"].format(sentences=" ".join(card["persona"])) if card["persona"] else ""
    return prompt["system"].format(emotion=card["emotion"], problem=card["problem"], situation=card["situation"],
                                   persona=persona)


def seeker_view(history):
    """The conversation from the seeker's side: its own turns are 'assistant', the supporter's 'user'."""
    return [{"role": "assistant" if m["speaker"] == "usr" else "user", "content": m["text"]} for m in history]


def role_break(text, prompt):
    """Why the seeker's text is not a help-seeker's turn (None when it is)."""
    if not text:
        return "empty"
    return next((f"matches {p.pattern!r}" for p in prompt["compiled"] if p.search(text)), None)


def clean(text, prompt):
    return prompt["strip"].sub("", " ".join(text.split()), count=1)


def seeker_turn(seeker, prompt, card, history, seed):
    """(text, record): the seeker's next message; a role break is asked again once (reprompt), then marked."""
    system = seeker_system_message(prompt, card)
    record = {"calls": 0, "role_break": None, "usage": Counter(), "seconds": 0.0}
    for attempt in range(2):
        if attempt:
            system = system + " " + prompt["reprompt"]
        start = time.perf_counter()
        reply = seeker.reply([{"role": "system", "content": system}] + seeker_view(history), seed=seed + attempt,
                             max_tokens=prompt["max_tokens"])
        record["seconds"] += time.perf_counter() - start
        record["calls"] += 1
        record["usage"].update(numeric(reply.usage))
        text = clean(reply.text, prompt)
        record["role_break"] = role_break(text, prompt)
        if record["role_break"] is None:
            break
    record["usage"] = dict(record["usage"])
    return text, record


def numeric(usage):
    return {k: v for k, v in (usage or {}).items() if isinstance(v, (int, float))}


def simulate(store, tasks, systems, seeker, seeker_model, prompt, turns, seed, progress=True):
    """Every turn of every task's two conversations not yet stored; one transaction per turn."""
    annotator = auto_store.seeker_annotator(store, seeker_model)
    done = auto_store.done_turns(store, annotator)
    total = len(tasks) * 2 * turns
    bar = progress_bar(total, len(done), "simulated turns", "turn", progress)
    for task in tasks:
        auto_store.start_conversation(store, task["id"], annotator)
        card = task["content"]["role_card"]
        for side in ("A", "B"):
            system = task["system_a"] if side == "A" else task["system_b"]
            for turn in range(turns):
                if (task["id"], side, turn) in done:
                    continue
                history = store.messages(task["id"], annotator, side)
                if turn == 0:
                    text = card["first_utterance"]
                    record = {"calls": 0, "role_break": None, "usage": {}, "seconds": 0.0}
                else:
                    text, record = seeker_turn(seeker, prompt, card, history,
                                               judging.unit_seed(seed, card["id"], system, turn, "seeker"))
                start = time.perf_counter()
                reply = systems[system].reply(supporter_messages(history, text),
                                              seed=judging.unit_seed(seed, card["id"], system, turn, "supporter"))
                supporter = {"usage": numeric(reply.usage), "seconds": time.perf_counter() - start}
                auto_store.add_turn(store, task["id"], annotator, side, turn, system, seeker_model, text, reply,
                                    record, supporter)
                bar.update(1)
        auto_store.finish_conversation(store, task["id"], annotator)
    bar.close()


# ---- the judge ------------------------------------------------------------------------------------------------------
def judge_study(store, judge, judge_name, prompt, criteria, seed, temperature=None, progress=True):
    """Every (task, conversation, criterion, order) of the database not yet judged by `judge_name`."""
    by_name = {c["name"]: c for c in criteria}
    done = auto_store.done_judgments(store, judge_name)
    units = [(task, conv, c, first) for task, conv in auto_store.judgeable(store)
             for c in task["content"]["criteria"] for first in judging.ORDERS]
    unknown = sorted({c for _, _, c, _ in units if c not in by_name})
    if unknown:
        raise UserError(f"the database's tasks ask {unknown}, which --criteria does not define; pass the study's "
                        f"criteria file")
    todo = [u for u in units if (u[0]["id"], u[1], u[3], u[2]) not in done]
    bar = progress_bar(len(units), len(units) - len(todo), f"judgments ({judge_name})", "question", progress)
    conversation, sides = None, None  # the conversation last read (units come grouped by conversation)
    for task, conv, criterion, first in todo:
        if task["mode"] == "interactive" and conversation != (task["id"], conv):
            messages = store.messages(task["id"], conv)
            conversation, sides = (task["id"], conv), {s: [m for m in messages if m["side"] == s] for s in "AB"}
        question = judging.question_text(by_name[criterion], task["mode"])
        messages = judging.judge_messages(prompt, task, sides, question, first)
        verdict, answers, usage, seconds = judging.ask(
            judge, messages, judging.unit_seed(seed, task["id"], conv, criterion, first), prompt, first, temperature)
        auto_store.add_judgment(store, task["id"], conv, judge_name, first, criterion, verdict, answers, usage, seconds)
        bar.update(1)
    bar.close()


def progress_bar(total, initial, desc, unit, enabled):
    """A bar with the rate and the time left (ETA), starting at what an earlier run already did."""
    from tqdm import tqdm
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, disable=not enabled)


# ---- the studies ----------------------------------------------------------------------------------------------------
def simulation_tasks(cards, names, criteria, seed, source):
    """One task per (card, pair of systems); which system is A is drawn per task (seeded), as in the human study."""
    rng = random.Random(seed)
    tasks = []
    for card in cards:
        for first, second in itertools.combinations(names, 2):
            a, b = (second, first) if rng.random() < 0.5 else (first, second)
            tasks.append({"mode": "interactive", "source": f"{source}#{card['id']}", "system_a": a, "system_b": b,
                          "content": {"card": {"emotion_type": card["emotion"], "problem_type": card["problem"],
                                               "situation": card["situation"]},
                                      "role_card": card, "criteria": criteria_for(criteria, bool(card["persona"]))}})
    return tasks


def open_study(db, setup, tasks):
    """The database with this setup's tasks (created once); a database made for another setup is refused."""
    os.makedirs(os.path.dirname(os.path.abspath(db)), exist_ok=True)
    store = auto_store.open_store(db)
    if store.task_count() == 0:
        with store.transaction():
            store.db.execute("INSERT OR REPLACE INTO meta VALUES ('setup', ?)", (canonical(setup),))
            store.db.executemany(
                "INSERT INTO tasks (mode, source, system_a, system_b, content) VALUES (?, ?, ?, ?, ?)",
                [(t["mode"], t["source"], t["system_a"], t["system_b"], canonical(t["content"])) for t in tasks])
    elif store.get_meta("setup") != setup:
        store.close()
        raise UserError(f"{db}: this database holds a study with another setup; pass a new --db for a new study, or "
                        f"the same arguments (cards, systems, seeker, turns, criteria, prompt, seed) to resume")
    return store


def canonical(value):
    import json
    return json.dumps(value, sort_keys=True)


def interactive_tasks_in(store):
    return [store.task(r["id"]) for r in store.db.execute("SELECT id FROM tasks WHERE mode = 'interactive' ORDER BY id")]


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
    prompt = judging.load_seeker_prompt(args.seeker_prompt)
    judge_prompt = judging.load_prompt(args.judge_prompt, judging.JUDGE_FIELDS)
    cards, source = cards_for(args)
    setup = {"mode": "simulated", "criteria": [c["name"] for c in criteria],
             "systems": [s.identity() for s in args.system], "seeker": args.seeker.identity(), "turns": args.turns,
             "seed": args.seed, "cards": cards,
             "seeker_prompt": {k: v for k, v in prompt.items() if k not in ("compiled", "strip")}}
    store = open_study(args.db, setup, simulation_tasks(cards, names, criteria, args.seed, source))
    try:
        from human_eval.systems import Systems
        device = resolve_device(args.device)
        supporters = Systems(args.system, args.pretrained_model_path, args.persona_extractor, device=device).systems
        seeker, judge = load_models([args.seeker, args.judge], device)
        simulate(store, interactive_tasks_in(store), supporters, seeker, seeker.name, prompt, args.turns, args.seed,
                 not args.no_progress)
        judge_study(store, judge, judge.name, judge_prompt, criteria, args.seed, args.judge_temperature,
                    not args.no_progress)
        report(store, args.db)
    finally:
        store.close()


def static(args):
    """A static study of two gen.json folders (the human app's --mode static database), judged."""
    from human_eval import serve
    criteria = load_criteria(args.criteria)
    judge_prompt = judging.load_prompt(args.judge_prompt, judging.JUDGE_FIELDS)
    argv = ["--mode", "static", "--db", args.db, "--criteria", args.criteria, "--seed", str(args.seed)]
    argv += [a for r in args.results for a in ("--results", r)]
    argv += ["--test_file", args.test_file] if args.test_file else []
    human_args = serve.build_parser().parse_args(argv)  # the app's own setup record: humans can join the study
    open_study(args.db, serve.setup_record(human_args, criteria), serve.build_tasks(human_args, criteria)).close()
    judge_existing(args, criteria, judge_prompt)


def judge_only(args):
    if not os.path.isfile(args.db):
        raise UserError(f"{args.db}: no such database")
    judge_existing(args, load_criteria(args.criteria), judging.load_prompt(args.judge_prompt, judging.JUDGE_FIELDS))


def judge_existing(args, criteria, judge_prompt):
    judge, = load_models([args.judge], resolve_device(args.device))
    store = auto_store.open_store(args.db)
    try:
        judge_study(store, judge, judge.name, judge_prompt, criteria, args.seed, args.judge_temperature,
                    not args.no_progress)
        report(store, args.db)
    finally:
        store.close()


def report(store, db):
    from human_eval.auto_analysis import usage_markdown
    print(usage_markdown(store.db), end="")
    print(f"study: {db}; the analysis: RUN/python -m human_eval.analyze {db}")


# ---- command line ---------------------------------------------------------------------------------------------------
def build_parser():
    p = ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    cards = sub.add_parser("cards", help="role cards from a reformatted test file, as an editable JSON file",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    cards.add_argument("--test_file", required=True, type=existing_file)
    cards.add_argument("--num_cards", type=positive_int, default=20, help="the first N dialogues with a seeker turn")
    cards.add_argument("--no_persona", action="store_true", help="leave out the seeker's persona sentences")
    cards.add_argument("--output", required=True, type=output_file)

    def common(q):
        q.add_argument("--db", required=True, type=output_file, help="the study database (created when absent)")
        q.add_argument("--judge", required=True, type=parse_system_spec, metavar="SPEC",
                       help="the judge's system spec, e.g. name=smollm2,llm=smollm2")
        q.add_argument("--criteria", default=CRITERIA, type=existing_file, help="the human study's criteria file")
        q.add_argument("--judge_prompt", default=judging.JUDGE_PROMPT, type=existing_file)
        q.add_argument("--judge_temperature", type=non_negative_float, default=0.0,
                       help="0: greedy (an order effect is then not sampling noise)")
        q.add_argument("--seed", type=int_range(0, 2**31 - 1), default=13,
                       help="A/B order per task and every seeded call")
        q.add_argument("--device", default="auto")
        q.add_argument("--no_progress", action="store_true", help="no progress bars")

    r = sub.add_parser("run", help="simulate the conversations, then judge them",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    common(r)
    r.add_argument("--system", action="append", default=[], type=parse_system_spec, metavar="SPEC",
                   help="a supporter (2 or more): name=NAME,checkpoint=...|llm=...|endpoint=... (README \"Comparing PAL "
                        "with an LLM\")")
    r.add_argument("--seeker", required=True, type=parse_system_spec, metavar="SPEC",
                   help="the simulated help-seeker, e.g. name=smollm2,llm=smollm2")
    r.add_argument("--pretrained_model_path", default=None, help="PAL systems: the tokenizer folder (default: the "
                                                                 "run's)")
    r.add_argument("--persona_extractor", default=None, type=existing_dir,
                   help="PAL systems: a persona extractor directory (live persona)")
    r.add_argument("--cards", default=None, type=existing_file, help="a role-card file (see the cards command)")
    r.add_argument("--test_file", default=None, type=existing_file,
                   help="without --cards: make the cards from this file (written to cards.json beside --db)")
    r.add_argument("--num_cards", type=positive_int, default=20)
    r.add_argument("--no_persona", action="store_true", help="cards without the seeker's persona sentences")
    r.add_argument("--turns", type=positive_int, default=5, help="seeker turns with each system")
    r.add_argument("--seeker_prompt", default=judging.SEEKER_PROMPT, type=existing_file)

    s = sub.add_parser("static", help="judge the replies of two gen.json result folders (a static study)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    common(s)
    s.add_argument("--results", action="append", default=[], metavar="NAME=DIR", help="two result folders")
    s.add_argument("--test_file", default=None, type=existing_file, help="the test file the results were made from")

    common(sub.add_parser("judge", help="judge every task of an existing study (a human study's conversations too)",
                          formatter_class=argparse.ArgumentDefaultsHelpFormatter))
    return p


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
    else:
        judge_only(args)


if __name__ == "__main__":
    run_main(main)
