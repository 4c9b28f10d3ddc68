"""The automatic evaluation's study: role-card tasks, the simulated help-seeker's conversations with each system,
and the judge's verdicts on every (task, conversation, criterion, order), stored in the human study's schema.

Everything is stored in the human study's SQLite schema (conversations as tasks and messages, the seeker an
annotator named after its model) plus the auto_* tables (auto_eval.store). Every turn and every judgment is seeded by
what it is and committed on its own, so a killed run finishes with the same command and ends with the rows of an
uninterrupted one. README "Automatic evaluation" has the protocol; auto_eval.cli the commands.
"""
import itertools
import os
import random
import time
from collections import Counter

from palkit.cli import UserError

from chat_systems.supporter import supporter_messages
from auto_eval import judge as judging, role_cards, store as auto_store
from human_eval.tasks import criteria_for, load_criteria



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
        store.open_conversation(task["id"], annotator)
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
        store.close_conversation(task["id"], annotator)
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
        store.create_study(setup, tasks)
    elif store.get_meta("setup") != setup:
        store.close()
        raise UserError(f"{db}: this database holds a study with another setup; pass a new --db for a new study, or "
                        f"the same arguments (cards, systems, seeker, turns, criteria, prompt, seed) to resume")
    return store


def canonical(value):
    import json
    return json.dumps(value, sort_keys=True)


def interactive_tasks_in(store):
    return [store.task(task_id) for task_id in store.task_ids(("interactive",))]
