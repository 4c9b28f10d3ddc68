"""The automatic evaluation's study: role-card tasks, the simulated help-seeker's conversations with each system,
and the judge's verdicts on every (task, conversation, criterion, order), stored in the human study's schema.

Everything is stored in the human study's SQLite schema (conversations as tasks and messages, the seeker an
annotator named after its model) plus the auto_* tables (auto_eval.store). Every turn and every judgment is seeded by
what it is and committed on its own, so a killed run finishes with the same command and ends with the rows of an
uninterrupted one. README "Automatic evaluation" has the protocol; auto_eval.cli the commands.
"""
import itertools
import json
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor

from tqdm import tqdm

from palkit.cli import UserError

from auto_eval import judge as judging, store as auto_store
from auto_eval.judge import numeric
from auto_eval.seeker import seeker_turn
from chat_systems import load_system
from chat_systems.supporter import supporter_messages
from human_eval.tasks import criteria_for


# ---- systems --------------------------------------------------------------------------------------------------------
def load_models(specs, device):
    """[loaded system] for specs of the seeker / judge; a spec given twice (a seeker that judges) is loaded once."""
    loaded = {}
    for spec in specs:
        key = canonical(spec.identity())
        if key not in loaded:
            loaded[key] = load_system(spec, device=device)
    return [loaded[canonical(spec.identity())] for spec in specs]


# ---- the simulated seeker's conversations ---------------------------------------------------------------------------
def simulate(store, tasks, systems, seeker, seeker_model, prompt, turns, seed, progress=True):
    """Every turn of every task's two conversations not yet stored; one transaction per turn. A conversation whose
    seeker broke its role twice in a turn ends there (auto_store.add_ending); the other side goes on."""
    annotator = auto_store.seeker_annotator(store, seeker_model)
    done, ended = auto_store.done_turns(store, annotator), auto_store.ended_sides(store, annotator)
    total = len(tasks) * 2 * turns
    skipped = sum(turns - sum(1 for t, s, _ in done if (t, s) == key) for key in ended)
    bar = progress_bar(total, len(done) + skipped, "simulated turns", "turn", progress)
    for task in tasks:
        store.open_conversation(task["id"], annotator)
        card = task["content"]["role_card"]
        for side in ("A", "B"):
            system = task["system_a"] if side == "A" else task["system_b"]
            for turn in range(turns):
                if (task["id"], side) in ended:
                    break
                if (task["id"], side, turn) in done:
                    continue
                history = store.messages(task["id"], annotator, side)
                if turn == 0:
                    text = card["first_utterance"]
                    record = {"calls": 0, "role_break": None, "usage": {}, "seconds": 0.0}
                else:
                    text, record = seeker_turn(seeker, prompt, card, history,
                                               judging.unit_seed(seed, card["id"], system, turn, "seeker"))
                if text is None:
                    auto_store.add_ending(store, task["id"], annotator, side, turn, system, seeker_model, record)
                    ended.add((task["id"], side))
                    bar.update(turns - turn)
                    break
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
def judge_study(store, judge, judge_name, prompt, criteria, seed, *, mode=None, temperature=0.0,
                tie_margin=judging.TIE_MARGIN, key=None, concurrency=1, bf16=False, progress=True):
    """Every (task, conversation, criterion, order) of the database not yet judged by `judge_name`, in `mode`
    (None: prob where the judge gives probabilities). The questions about one conversation in one order are asked
    together (a local LLM encodes their shared beginning once) and stored in one transaction; `concurrency` such
    groups at a time (an endpoint judge). `key`: what the judge is (auto_eval.validity.judge_key), recorded."""
    mode = judging.verdict_mode(judge, mode)
    auto_store.register_judge(store, judge_name, key or {"name": judge_name}, mode,
                              tie_margin if mode == "prob" else None)
    by_name = {c["name"]: c for c in criteria}
    done = auto_store.done_judgments(store, judge_name)
    units = [(task, conv, c, first) for task, conv in auto_store.judgeable(store) for first in judging.ORDERS
             for c in task["content"]["criteria"]]
    unknown = sorted({c for _, _, c, _ in units if c not in by_name})
    if unknown:
        raise UserError(f"the database's tasks ask {unknown}, which --criteria does not define; pass the study's "
                        f"criteria file")
    todo = [u for u in units if (u[0]["id"], u[1], u[3], u[2]) not in done]
    groups = [list(g) for _, g in itertools.groupby(todo, key=lambda u: (u[0]["id"], u[1], u[3]))]
    bar = progress_bar(len(units), len(units) - len(todo), f"judgments ({judge_name}, {mode})", "question", progress)

    def prompts(group):  # read in this thread (the store's connection belongs to it)
        task, conv, _, first = group[0]
        first_side, second_side, history = sides_of(store, task, conv, first)
        return ([judging.judge_messages(prompt, judging.question_text(by_name[c], task["mode"]), first_side,
                                        second_side, history) for _, _, c, _ in group],
                [judging.unit_seed(seed, task["id"], conv, c, first) for _, _, c, _ in group])

    def ask(asked):
        start = time.perf_counter()
        conversations, seeds = asked
        answers = judging.ask(judge, conversations, mode, prompt, seeds, temperature, bf16)
        return answers, (time.perf_counter() - start) / len(answers)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for group, (answers, seconds) in zip(groups, pool.map(ask, [prompts(g) for g in groups])):
            auto_store.add_judgments(store, [
                {"task_id": task["id"], "conversation_of": conv, "judge": judge_name, "shown_first": first,
                 "criterion": criterion, "verdict": judging.to_task_side(a.verdict, first), "answers": a.answers,
                 "attempts": a.calls, "usage": a.usage, "seconds": seconds, "verdict_mode": mode,
                 "probabilities": a.probabilities and judging.to_task_probabilities(a.probabilities, first)}
                for (task, conv, criterion, first), a in zip(group, answers)])
            bar.update(len(group))
    bar.close()


def sides_of(store, task, conv, shown_first):
    """(the side shown first, the other, the history before the replies or None) of a task's conversation."""
    content = task["content"]
    order = judging.ORDERS if shown_first == "A" else judging.ORDERS[::-1]
    if task["mode"] == "static":
        sides = {s: judging.side([{"speaker": "sys", "text": content[f"reply_{s.lower()}"]}]) for s in "AB"}
        return sides[order[0]], sides[order[1]], content["history"]
    messages = store.messages(task["id"], conv)
    card = content.get("card", {})
    sides = {s: judging.side([m for m in messages if m["side"] == s], card) for s in "AB"}
    return sides[order[0]], sides[order[1]], None


def progress_bar(total, initial, desc, unit, enabled):
    """A bar with the rate and the time left (ETA), starting at what an earlier run already did."""
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
    """The database with this setup's tasks (created once); a database made for another setup is refused, naming
    what differs."""
    os.makedirs(os.path.dirname(os.path.abspath(db)), exist_ok=True)
    store = auto_store.open_store(db)
    if store.task_count() == 0:
        store.create_study(setup, tasks)
    elif store.get_meta("setup") != json.loads(canonical(setup)):
        stored = store.get_meta("setup")
        store.close()
        raise UserError(f"{db}: this database holds a study with another setup ({auto_store.setup_difference(stored, setup)}); "
                        f"pass a new --db for a new study, or the same arguments to resume")
    return store


def canonical(value):
    return json.dumps(value, sort_keys=True)


def interactive_tasks_in(store):
    return [store.task(task_id) for task_id in store.task_ids(("interactive",))]
