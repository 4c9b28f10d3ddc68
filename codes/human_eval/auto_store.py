"""The automatic evaluation's rows in a study database (beside the human study's tables, same file).

auto_turns: one row per simulated turn (task, seeker, side, turn), written in the transaction that stores the
turn's two messages, so its primary key makes a rerun skip the turn instead of repeating it. auto_judgments: one
row per (task, conversation, judge, order, criterion), verdict in the task's A/B terms or 'invalid'.
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
    row = store.db.execute("SELECT id FROM annotators WHERE name = ?", (name,)).fetchone()
    if row is None:
        token = store.add_annotator(name)
        print(f"simulated seeker {name}: its conversations in the human-evaluation app (RUN/python -m human_eval --db "
              f"{store.path} ...) at /a/{token}/")
        row = store.db.execute("SELECT id FROM annotators WHERE name = ?", (name,)).fetchone()
    with store.transaction():
        store.db.execute("INSERT OR IGNORE INTO auto_seekers VALUES (?, ?)", (row["id"], model))
    return row["id"]


def start_conversation(store, task_id, annotator_id):
    with store.transaction():
        store.db.execute("INSERT OR IGNORE INTO assignments (task_id, annotator_id, started_at) VALUES (?, ?, ?)",
                         (task_id, annotator_id, time.time()))


def done_turns(store, annotator_id):
    return {(r[0], r[1], r[2]) for r in store.db.execute(
        "SELECT task_id, side, turn FROM auto_turns WHERE annotator_id = ?", (annotator_id,))}


def add_turn(store, task_id, annotator_id, side, turn, system, seeker_model, seeker_text, reply, seeker, supporter):
    """The seeker's message, the supporter's reply and the turn's record in one transaction.

    seeker / supporter: dicts with calls, role_break (seeker), usage, seconds."""
    now = time.time()
    with store.transaction():
        store.db.execute("INSERT INTO auto_turns VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (task_id, annotator_id, side, turn, system, seeker_model, seeker["calls"],
                          seeker["role_break"], json.dumps(seeker["usage"], sort_keys=True), seeker["seconds"],
                          json.dumps(supporter["usage"], sort_keys=True), supporter["seconds"]))
        store.db.execute("INSERT INTO messages (task_id, annotator_id, side, system, speaker, text, created_at) "
                         "VALUES (?, ?, ?, ?, 'usr', ?, ?)", (task_id, annotator_id, side, system, seeker_text, now))
        store.db.execute("INSERT INTO messages (task_id, annotator_id, side, system, speaker, text, strategy, persona, "
                         "created_at) VALUES (?, ?, ?, ?, 'sys', ?, ?, ?, ?)",
                         (task_id, annotator_id, side, system, reply.text, reply.strategy, reply.persona, now))


def finish_conversation(store, task_id, annotator_id):
    with store.transaction():
        store.db.execute("UPDATE assignments SET finished_at = ? WHERE task_id = ? AND annotator_id = ? AND "
                         "finished_at IS NULL", (time.time(), task_id, annotator_id))


def judgeable(store):
    """[(task, conversation_of)]: every static task once, every conversation of an interactive task with both
    sides that is complete: a human's once they judged it (not one they skipped), a simulated seeker's once all its
    turns are in."""
    units = []
    for row in store.db.execute("SELECT id, mode FROM tasks WHERE mode IN ('static', 'interactive') ORDER BY id"):
        task = store.task(row["id"])
        if not task["content"].get("criteria"):
            continue
        if row["mode"] == "static":
            units.append((task, STATIC_CONVERSATION))
            continue
        for a in store.db.execute(
                "SELECT a.annotator_id FROM assignments a WHERE a.task_id = ? AND a.finished_at IS NOT NULL AND "
                "(SELECT COUNT(DISTINCT side) FROM messages m WHERE m.task_id = a.task_id AND "
                "m.annotator_id = a.annotator_id) = 2 AND (a.annotator_id IN (SELECT annotator_id FROM auto_seekers) "
                "OR EXISTS (SELECT 1 FROM judgments j WHERE j.task_id = a.task_id AND j.annotator_id = a.annotator_id)) "
                "ORDER BY a.annotator_id", (row["id"],)):
            units.append((task, a["annotator_id"]))
    return units


def done_judgments(store, judge):
    return {tuple(r) for r in store.db.execute(
        "SELECT task_id, conversation_of, shown_first, criterion FROM auto_judgments WHERE judge = ?", (judge,))}


def add_judgment(store, task_id, conversation_of, judge, shown_first, criterion, verdict, answers, usage, seconds):
    with store.transaction():
        store.db.execute("INSERT INTO auto_judgments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (task_id, conversation_of, judge, shown_first, criterion, verdict, json.dumps(answers),
                          len(answers), json.dumps(usage, sort_keys=True), seconds, time.time()))
