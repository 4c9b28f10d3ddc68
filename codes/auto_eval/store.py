"""The automatic evaluation's own rows in a study database (beside the human study's tables, same file).

The study's tables (tasks, annotators, assignments, messages, judgments) are read and written only through
human_eval.store's public functions; this module owns the auto_* tables. auto_turns: one row per simulated turn
(task, seeker, side, turn), written in the transaction that stores the turn's two messages, so its primary key makes
a rerun skip the turn instead of repeating it. auto_judgments: one row per (task, conversation, judge, order,
criterion), verdict in the task's A/B terms or 'invalid'.
"""
import json
import time

from human_eval.store import Store

SCHEMA = """
CREATE TABLE IF NOT EXISTS auto_seekers (
    annotator_id INTEGER PRIMARY KEY REFERENCES annotators(id), model TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS auto_turns (
    task_id INTEGER NOT NULL, annotator_id INTEGER NOT NULL, side TEXT NOT NULL CHECK (side IN ('A', 'B')),
    turn INTEGER NOT NULL, system TEXT NOT NULL, seeker_model TEXT NOT NULL, seeker_calls INTEGER NOT NULL,
    role_break TEXT, seeker_usage TEXT NOT NULL, seeker_seconds REAL NOT NULL, supporter_usage TEXT NOT NULL,
    supporter_seconds REAL NOT NULL, PRIMARY KEY (task_id, annotator_id, side, turn));
CREATE TABLE IF NOT EXISTS auto_judgments (
    task_id INTEGER NOT NULL, conversation_of INTEGER NOT NULL, judge TEXT NOT NULL,
    shown_first TEXT NOT NULL CHECK (shown_first IN ('A', 'B')), criterion TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('A', 'B', 'tie', 'invalid')), answers TEXT NOT NULL,
    attempts INTEGER NOT NULL, usage TEXT NOT NULL, seconds REAL NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (task_id, conversation_of, judge, shown_first, criterion));
"""
STATIC_CONVERSATION = 0  # conversation_of for a static task (one pair of replies, no conversation per annotator)


def open_store(path):
    store = Store(path)
    store.db.executescript(SCHEMA)
    return store


def seeker_annotator(store, model):
    """The annotator id of the simulated seeker named after its model (created once; its access link, which shows
    the conversations in the human-evaluation app, is printed then)."""
    name = f"seeker:{model}"
    annotator = store.annotator_named(name)
    if annotator is None:
        token = store.add_annotator(name)
        print(f"simulated seeker {name}: its conversations in the human-evaluation app (RUN/python -m human_eval --db "
              f"{store.path} ...) at /a/{token}/")
        annotator = store.annotator_named(name)
    with store.transaction():
        store.db.execute("INSERT OR IGNORE INTO auto_seekers VALUES (?, ?)", (annotator, model))
    return annotator


def seeker_ids(store):
    return {r[0] for r in store.db.execute("SELECT annotator_id FROM auto_seekers")}


def done_turns(store, annotator_id):
    return {(r[0], r[1], r[2]) for r in store.db.execute(
        "SELECT task_id, side, turn FROM auto_turns WHERE annotator_id = ?", (annotator_id,))}


def add_turn(store, task_id, annotator_id, side, turn, system, seeker_model, seeker_text, reply, seeker, supporter):
    """The seeker's message, the supporter's reply and the turn's record in one transaction.

    seeker / supporter: dicts with calls, role_break (seeker), usage, seconds."""
    def record(db):
        db.execute("INSERT INTO auto_turns VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (task_id, annotator_id, side, turn, system, seeker_model, seeker["calls"], seeker["role_break"],
                    json.dumps(seeker["usage"], sort_keys=True), seeker["seconds"],
                    json.dumps(supporter["usage"], sort_keys=True), supporter["seconds"]))
    store.add_exchange(task_id, annotator_id, side, system, seeker_text, (reply.text, reply.strategy, reply.persona),
                       also=record)


def judgeable(store):
    """[(task, conversation_of)]: every static task once, every conversation of an interactive task with both
    sides that is complete: a human's once they judged it (not one they skipped), a simulated seeker's once all its
    turns are in."""
    seekers = seeker_ids(store)
    units = []
    for task_id in store.task_ids(("static", "interactive")):
        task = store.task(task_id)
        if not task["content"].get("criteria"):
            continue
        if task["mode"] == "static":
            units.append((task, STATIC_CONVERSATION))
            continue
        units += [(task, annotator) for annotator, judged in store.finished_conversations(task_id)
                  if judged or annotator in seekers]
    return units


def done_judgments(store, judge):
    return {tuple(r) for r in store.db.execute(
        "SELECT task_id, conversation_of, shown_first, criterion FROM auto_judgments WHERE judge = ?", (judge,))}


def add_judgment(store, task_id, conversation_of, judge, shown_first, criterion, verdict, answers, usage, seconds):
    with store.transaction():
        store.db.execute("INSERT INTO auto_judgments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (task_id, conversation_of, judge, shown_first, criterion, verdict, json.dumps(answers),
                          len(answers), json.dumps(usage, sort_keys=True), seconds, time.time()))
