"""The SQLite database of a human evaluation: annotators, tasks, assignments, messages, judgments.

Every write is one transaction (`with self.db:`), so a crash or a closed tab loses nothing already submitted. Every
read and write of an annotator's work is keyed by that annotator's id: no query reaches another annotator's rows.
"""
import json
import secrets
import sqlite3
import time

from palkit.cli import UserError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS annotators (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, token TEXT UNIQUE NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY, mode TEXT NOT NULL, source TEXT NOT NULL,
    system_a TEXT NOT NULL, system_b TEXT NOT NULL, content TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS assignments (
    task_id INTEGER NOT NULL REFERENCES tasks(id), annotator_id INTEGER NOT NULL REFERENCES annotators(id),
    started_at REAL NOT NULL, finished_at REAL, PRIMARY KEY (task_id, annotator_id));
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY, task_id INTEGER NOT NULL, annotator_id INTEGER NOT NULL, side TEXT NOT NULL,
    system TEXT NOT NULL, speaker TEXT NOT NULL, text TEXT NOT NULL, strategy TEXT, persona TEXT,
    created_at REAL NOT NULL, FOREIGN KEY (task_id, annotator_id) REFERENCES assignments(task_id, annotator_id));
CREATE TABLE IF NOT EXISTS judgments (
    task_id INTEGER NOT NULL, annotator_id INTEGER NOT NULL, criterion TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('A', 'B', 'tie')), winner TEXT NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (task_id, annotator_id, criterion),
    FOREIGN KEY (task_id, annotator_id) REFERENCES assignments(task_id, annotator_id));
"""


class AlreadyJudged(Exception):
    """The annotator already submitted judgments for this task."""


class Store:
    def __init__(self, path):
        self.path = path
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)  # one per request
        self.db.row_factory = sqlite3.Row
        try:
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA journal_mode = WAL")  # readers never block the writer; survives a killed process
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:  # a file that is not SQLite, or a damaged one
            self.db.close()
            raise UserError(f"{path}: not a human-evaluation database ({e}); pass a new --db for a new study")

    def close(self):
        self.db.close()

    def transaction(self):
        """`with store.transaction():` one atomic write (BEGIN IMMEDIATE ... COMMIT, ROLLBACK on error)."""
        return _Transaction(self.db)

    # ---- setup (admin) ----------------------------------------------------------------------------------------------
    def get_meta(self, key):
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row["value"])

    def set_meta(self, key, value):
        with self.transaction():
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value, sort_keys=True)))

    def add_tasks(self, tasks):
        """tasks: dicts with mode, source, system_a, system_b, content (a JSON-serialisable dict)."""
        with self.transaction():
            self.db.executemany(
                "INSERT INTO tasks (mode, source, system_a, system_b, content) VALUES (?, ?, ?, ?, ?)",
                [(t["mode"], t["source"], t["system_a"], t["system_b"], json.dumps(t["content"])) for t in tasks])

    def task_count(self):
        return self.db.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]

    def add_annotator(self, name):
        """The new annotator's access token; the name must be new."""
        token = secrets.token_urlsafe(18)
        try:
            with self.transaction():
                self.db.execute("INSERT INTO annotators (name, token, created_at) VALUES (?, ?, ?)",
                                (name, token, time.time()))
        except sqlite3.IntegrityError:
            raise ValueError(f"annotator {name!r} already exists")
        return token

    def annotators(self):
        return [dict(r) for r in self.db.execute("SELECT id, name, token FROM annotators ORDER BY id")]

    def annotator_by_token(self, token):
        row = self.db.execute("SELECT id, name FROM annotators WHERE token = ?", (token,)).fetchone()
        return None if row is None else dict(row)

    # ---- an annotator's work ----------------------------------------------------------------------------------------
    def task(self, task_id):
        row = self.db.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
        if row is None:
            return None
        return {**dict(row), "content": json.loads(row["content"])}

    def assignment(self, task_id, annotator_id):
        row = self.db.execute("SELECT * FROM assignments WHERE task_id = ? AND annotator_id = ?",
                              (task_id, annotator_id)).fetchone()
        return None if row is None else dict(row)

    def current_or_next_task(self, annotator_id, max_annotators):
        """The annotator's unfinished task (resume), else assign the next task they have not done (None: all done).

        A task goes to at most `max_annotators` different annotators (0: no limit)."""
        with self.transaction():
            row = self.db.execute("SELECT task_id FROM assignments WHERE annotator_id = ? AND finished_at IS NULL "
                                  "ORDER BY started_at LIMIT 1", (annotator_id,)).fetchone()
            if row is not None:
                return row["task_id"]
            row = self.db.execute(
                "SELECT t.id FROM tasks t WHERE NOT EXISTS (SELECT 1 FROM assignments a WHERE a.task_id = t.id "
                "AND a.annotator_id = ?) AND (? = 0 OR (SELECT COUNT(*) FROM assignments a WHERE a.task_id = t.id) < ?) "
                "ORDER BY (SELECT COUNT(*) FROM assignments a WHERE a.task_id = t.id), t.id LIMIT 1",
                (annotator_id, max_annotators, max_annotators)).fetchone()
            if row is None:
                return None
            self.db.execute("INSERT INTO assignments (task_id, annotator_id, started_at) VALUES (?, ?, ?)",
                            (row["id"], annotator_id, time.time()))
            return row["id"]

    def progress(self, annotator_id):
        done = self.db.execute("SELECT COUNT(*) FROM assignments WHERE annotator_id = ? AND finished_at IS NOT NULL",
                               (annotator_id,)).fetchone()[0]
        return done, self.task_count()

    def messages(self, task_id, annotator_id, side=None):
        sql = "SELECT * FROM messages WHERE task_id = ? AND annotator_id = ?"
        params = [task_id, annotator_id]
        if side is not None:
            sql += " AND side = ?"
            params.append(side)
        return [dict(r) for r in self.db.execute(sql + " ORDER BY id", params)]

    def add_exchange(self, task_id, annotator_id, side, system, user_text, reply):
        """The seeker's message and the system's reply (text, strategy, persona), stored together."""
        now = time.time()
        with self.transaction():
            self.db.execute("INSERT INTO messages (task_id, annotator_id, side, system, speaker, text, created_at) "
                            "VALUES (?, ?, ?, ?, 'usr', ?, ?)", (task_id, annotator_id, side, system, user_text, now))
            self.db.execute("INSERT INTO messages (task_id, annotator_id, side, system, speaker, text, strategy, "
                            "persona, created_at) VALUES (?, ?, ?, ?, 'sys', ?, ?, ?, ?)",
                            (task_id, annotator_id, side, system, reply[0], reply[1], reply[2], time.time()))

    def last_user_message_time(self, annotator_id):
        row = self.db.execute("SELECT MAX(created_at) FROM messages WHERE annotator_id = ? AND speaker = 'usr'",
                              (annotator_id,)).fetchone()
        return row[0]

    def judge(self, task, annotator_id, choices):
        """Store {criterion: 'A'|'B'|'tie'} and finish the assignment, all in one transaction."""
        now = time.time()
        winners = {"A": task["system_a"], "B": task["system_b"], "tie": "tie"}
        with self.transaction():
            row = self.db.execute("SELECT finished_at FROM assignments WHERE task_id = ? AND annotator_id = ?",
                                  (task["id"], annotator_id)).fetchone()
            if row is None or row["finished_at"] is not None:
                raise AlreadyJudged()
            self.db.executemany("INSERT INTO judgments VALUES (?, ?, ?, ?, ?, ?)",
                                [(task["id"], annotator_id, c, v, winners[v], now) for c, v in choices.items()])
            self.db.execute("UPDATE assignments SET finished_at = ? WHERE task_id = ? AND annotator_id = ?",
                            (now, task["id"], annotator_id))

    def finish_chat(self, task_id, annotator_id):
        """Close a chat-mode conversation and open a fresh one with the same system, assigned to this annotator."""
        now = time.time()
        with self.transaction():
            self.db.execute("UPDATE assignments SET finished_at = ? WHERE task_id = ? AND annotator_id = ? AND "
                            "finished_at IS NULL", (now, task_id, annotator_id))
            cursor = self.db.execute("INSERT INTO tasks (mode, source, system_a, system_b, content) SELECT mode, "
                                     "source, system_a, system_b, content FROM tasks WHERE id = ?", (task_id,))
            self.db.execute("INSERT INTO assignments (task_id, annotator_id, started_at) VALUES (?, ?, ?)",
                            (cursor.lastrowid, annotator_id, now))

    def judgments(self, task_id, annotator_id):
        return {r["criterion"]: r["choice"] for r in self.db.execute(
            "SELECT criterion, choice FROM judgments WHERE task_id = ? AND annotator_id = ?", (task_id, annotator_id))}

    # ---- export -----------------------------------------------------------------------------------------------------
    def export_rows(self, table):
        """Every row of a table, joined with annotator names where it has annotator ids (tokens never leave)."""
        queries = {
            "judgments": "SELECT j.task_id, an.name AS annotator, t.mode, t.source, t.system_a, t.system_b, "
                         "j.criterion, j.choice, j.winner, j.created_at FROM judgments j JOIN tasks t ON "
                         "t.id = j.task_id JOIN annotators an ON an.id = j.annotator_id ORDER BY j.task_id, an.name, "
                         "j.criterion",
            "messages": "SELECT m.id, m.task_id, an.name AS annotator, m.side, m.system, m.speaker, m.text, m.strategy, "
                        "m.persona, m.created_at FROM messages m JOIN annotators an ON an.id = m.annotator_id "
                        "ORDER BY m.id",
            "assignments": "SELECT a.task_id, an.name AS annotator, a.started_at, a.finished_at FROM assignments a "
                           "JOIN annotators an ON an.id = a.annotator_id ORDER BY a.task_id, an.name",
            "tasks": "SELECT * FROM tasks ORDER BY id",
        }
        return [dict(r) for r in self.db.execute(queries[table])]


class _Transaction:
    def __init__(self, db):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        return False
