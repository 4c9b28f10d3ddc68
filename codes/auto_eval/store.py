"""The automatic evaluation's own rows in a study database (beside the human study's tables, same file).

The study's tables (tasks, annotators, assignments, messages, judgments) are read and written only through
human_eval.store's public functions; this module owns the auto_* tables. auto_turns: one row per simulated turn
(task, seeker, side, turn), written in the transaction that stores the turn's two messages, so its primary key makes
a rerun skip the turn instead of repeating it. auto_judgments: one row per (task, conversation, judge, order,
criterion), verdict in the task's A/B terms or 'invalid', and (prob verdicts) that order's probabilities in the
task's terms. auto_judges: what each judge name was (its validity key: auto_eval.validity) and its verdict mode.
auto_endings: a simulated conversation that ended early (the seeker broke its role twice) and why.
The judge's validation keeps its rows in a database of its own (open_validation).
"""
import json
import sqlite3
import time

from palkit.cli import UserError

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
CREATE TABLE IF NOT EXISTS auto_judges (
    judge TEXT PRIMARY KEY, key TEXT NOT NULL, verdict_mode TEXT NOT NULL, tie_margin REAL);
CREATE TABLE IF NOT EXISTS auto_endings (
    task_id INTEGER NOT NULL, annotator_id INTEGER NOT NULL, side TEXT NOT NULL CHECK (side IN ('A', 'B')),
    turn INTEGER NOT NULL, system TEXT NOT NULL, seeker_model TEXT NOT NULL, reason TEXT NOT NULL, text TEXT NOT NULL,
    seeker_calls INTEGER NOT NULL, seeker_usage TEXT NOT NULL, seeker_seconds REAL NOT NULL,
    PRIMARY KEY (task_id, annotator_id, side));
"""
# columns added after the first version (a database made before gets them when opened): (table, column, declaration)
ADDED_COLUMNS = (("auto_judgments", "verdict_mode", "TEXT NOT NULL DEFAULT 'text'"),
                 ("auto_judgments", "probabilities", "TEXT"))
STATIC_CONVERSATION = 0  # conversation_of for a static task (one pair of replies, no conversation per annotator)


def open_store(path):
    store = Store(path)
    store.db.executescript(SCHEMA)
    with store.transaction():
        for table, column, declaration in ADDED_COLUMNS:
            if column not in {r["name"] for r in store.db.execute(f"PRAGMA table_info({table})")}:
                store.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
    return store


def setup_difference(stored, wanted):
    """The keys in which two setup records differ, as one phrase ('turns: 3 stored, 5 now; cards differ')."""
    parts = []
    for key in sorted(set(stored) | set(wanted)):
        old, new = stored.get(key), wanted.get(key)
        if old == new:
            continue
        short = all(isinstance(v, (int, float, str, type(None))) and len(str(v)) <= 60 for v in (old, new))
        parts.append(f"{key}: {old!r} stored, {new!r} now" if short else f"{key} differs")
    return "; ".join(parts)


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


def add_judgments(store, rows):
    """Judgments in one transaction; each row: dict with task_id, conversation_of, judge, shown_first, criterion,
    verdict (pair terms), answers, attempts, usage, seconds, verdict_mode, probabilities (pair terms or None)."""
    now = time.time()
    with store.transaction():
        store.db.executemany(
            "INSERT INTO auto_judgments (task_id, conversation_of, judge, shown_first, criterion, verdict, answers, "
            "attempts, usage, seconds, created_at, verdict_mode, probabilities) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(r["task_id"], r["conversation_of"], r["judge"], r["shown_first"], r["criterion"], r["verdict"],
              json.dumps(r["answers"]), r["attempts"], json.dumps(r["usage"], sort_keys=True), r["seconds"], now,
              r["verdict_mode"], None if r["probabilities"] is None else json.dumps(r["probabilities"], sort_keys=True))
             for r in rows])


def add_judgment(store, task_id, conversation_of, judge, shown_first, criterion, verdict, answers, usage, seconds,
                 verdict_mode="text", probabilities=None):
    """One judgment (add_judgments)."""
    add_judgments(store, [{"task_id": task_id, "conversation_of": conversation_of, "judge": judge,
                           "shown_first": shown_first, "criterion": criterion, "verdict": verdict, "answers": answers,
                           "attempts": len(answers), "usage": usage, "seconds": seconds,
                           "verdict_mode": verdict_mode, "probabilities": probabilities}])


def register_judge(store, judge, key, verdict_mode, tie_margin):
    """Record what the judge called `judge` is (its validity key) and how it gives verdicts; a name that judged
    this study as another judge or in another mode is refused (its rows would mix two judges)."""
    row = store.db.execute("SELECT key, verdict_mode, tie_margin FROM auto_judges WHERE judge = ?", (judge,)).fetchone()
    record = (json.dumps(key, sort_keys=True), verdict_mode, tie_margin)
    if row is not None and not store.db.execute("SELECT 1 FROM auto_judgments WHERE judge = ? LIMIT 1",
                                                (judge,)).fetchone():
        row = None  # registered, but no verdict stored yet (a run that failed at once): the name is free
        with store.transaction():
            store.db.execute("DELETE FROM auto_judges WHERE judge = ?", (judge,))
    if row is None:
        judged = store.db.execute("SELECT DISTINCT verdict_mode FROM auto_judgments WHERE judge = ?",
                                  (judge,)).fetchall()
        if judged and {r[0] for r in judged} != {verdict_mode}:
            raise UserError(f"{store.path}: judge {judge} judged this study with {judged[0][0]} verdicts; give this "
                            f"judge another name (name=...) to judge it with {verdict_mode} verdicts too")
        with store.transaction():
            store.db.execute("INSERT INTO auto_judges VALUES (?, ?, ?, ?)", (judge, *record))
    elif tuple(row) != record:
        stored = setup_difference({"judge": json.loads(row[0]), "verdict_mode": row[1], "tie_margin": row[2]},
                                  {"judge": key, "verdict_mode": verdict_mode, "tie_margin": tie_margin})
        raise UserError(f"{store.path}: a judge named {judge} judged this study as another judge ({stored}); give "
                        f"this one another name (name=...)")


def judges(store):
    """{judge name: (key, verdict_mode, tie_margin)} of the judges registered in an open study."""
    if "auto_judges" not in store.tables():
        return {}
    return {r[0]: (json.loads(r[1]), r[2], r[3]) for r in store.db.execute("SELECT * FROM auto_judges")}


def add_ending(store, task_id, annotator_id, side, turn, system, seeker_model, record):
    """A conversation with one supporter ends at `turn`: the seeker's re-asked reply broke its role too."""
    with store.transaction():
        store.db.execute("INSERT INTO auto_endings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (task_id, annotator_id, side, turn, system, seeker_model, record["ended"], record["text"],
                          record["calls"], json.dumps(record["usage"], sort_keys=True), record["seconds"]))


def ended_sides(store, annotator_id):
    return {(r[0], r[1]) for r in store.db.execute(
        "SELECT task_id, side FROM auto_endings WHERE annotator_id = ?", (annotator_id,))}


# ---- the judge's validation (its own database: DIR/judge_validity.db) ----------------------------------------------
VALIDATION_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS judgments (
    pair INTEGER NOT NULL, shown_first TEXT NOT NULL CHECK (shown_first IN ('better', 'worse')),
    verdict TEXT NOT NULL CHECK (verdict IN ('better', 'worse', 'tie', 'invalid')), probabilities TEXT,
    answers TEXT NOT NULL, calls INTEGER NOT NULL, usage TEXT NOT NULL, seconds REAL NOT NULL,
    PRIMARY KEY (pair, shown_first));
"""


def open_validation(path, setup):
    """The validation's database at `path` for `setup` (created when new); one made for another setup is refused,
    naming what differs."""
    try:
        db = sqlite3.connect(path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.executescript(VALIDATION_SCHEMA)
        row = db.execute("SELECT value FROM meta WHERE key = 'setup'").fetchone()
    except sqlite3.DatabaseError as e:
        raise UserError(f"{path}: not a judge validation's database ({e}); pass another --output")
    if row is None:
        db.execute("INSERT INTO meta VALUES ('setup', ?)", (json.dumps(setup, sort_keys=True),))
    elif json.loads(row[0]) != json.loads(json.dumps(setup)):
        db.close()
        raise UserError(f"{path}: holds a validation with another setup ({setup_difference(json.loads(row[0]), setup)}"
                        f"); pass another --output, or the same arguments to finish it")
    return db


def validation_rows(db):
    """{(pair, shown_first): row dict} of a validation's database."""
    rows = {}
    for pair, first, verdict, probabilities, answers, calls, usage, seconds in db.execute(
            "SELECT * FROM judgments ORDER BY pair, shown_first"):
        rows[pair, first] = {"verdict": verdict, "probabilities": probabilities and json.loads(probabilities),
                             "answers": json.loads(answers), "calls": calls, "usage": json.loads(usage),
                             "seconds": seconds}
    return rows


def add_validation_rows(db, rows):
    """[(pair, shown_first, row dict)] in one transaction."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.executemany("INSERT INTO judgments VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       [(pair, first, r["verdict"], None if r["probabilities"] is None else
                         json.dumps(r["probabilities"], sort_keys=True), json.dumps(r["answers"]), r["calls"],
                         json.dumps(r["usage"], sort_keys=True), r["seconds"]) for pair, first, r in rows])
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
