"""The SQLite database of a human evaluation: annotators, tasks, assignments, messages, judgments.

Every write is one transaction (BEGIN IMMEDIATE), and every check that guards a write (already judged, conversation
closed, history changed) runs inside that write's transaction. Every read and write of an annotator's work is keyed by
that annotator's id. Access tokens are stored as SHA-256 hashes only; a database of an older version (plain tokens,
fewer assignment columns) is migrated when opened, so the links of a running study keep working. A session is bound
to the link that opened it (`session_stamp`): a new link or a revoked one ends it. A form that changes something
carries a one-time key (`forms`): a replayed form is stored once.
"""
import hashlib
import json
import secrets
import sqlite3
import time

from palkit.cli import UserError

from human_eval.text import has_visible

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS annotators (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, token_sha256 TEXT UNIQUE NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY, mode TEXT NOT NULL, source TEXT NOT NULL,
    system_a TEXT NOT NULL, system_b TEXT NOT NULL, content TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS assignments (
    task_id INTEGER NOT NULL REFERENCES tasks(id), annotator_id INTEGER NOT NULL REFERENCES annotators(id),
    started_at REAL NOT NULL, finished_at REAL, last_active_at REAL, comment TEXT, skip_reason TEXT,
    PRIMARY KEY (task_id, annotator_id));
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY, task_id INTEGER NOT NULL, annotator_id INTEGER NOT NULL, side TEXT NOT NULL,
    system TEXT NOT NULL, speaker TEXT NOT NULL, text TEXT NOT NULL, strategy TEXT, persona TEXT,
    created_at REAL NOT NULL, FOREIGN KEY (task_id, annotator_id) REFERENCES assignments(task_id, annotator_id));
CREATE TABLE IF NOT EXISTS judgments (
    task_id INTEGER NOT NULL, annotator_id INTEGER NOT NULL, criterion TEXT NOT NULL,
    choice TEXT NOT NULL CHECK (choice IN ('A', 'B', 'tie')), winner TEXT NOT NULL, created_at REAL NOT NULL,
    PRIMARY KEY (task_id, annotator_id, criterion),
    FOREIGN KEY (task_id, annotator_id) REFERENCES assignments(task_id, annotator_id));
CREATE TABLE IF NOT EXISTS forms (
    key TEXT PRIMARY KEY, annotator_id INTEGER NOT NULL REFERENCES annotators(id), task_id INTEGER NOT NULL,
    created_at REAL NOT NULL);
"""


# columns added after the first version: (table, column, declaration), added to an older database when opened
ADDED_COLUMNS = (("assignments", "last_active_at", "REAL"), ("assignments", "comment", "TEXT"),
                 ("assignments", "skip_reason", "TEXT"))


class AlreadyJudged(Exception):
    """The annotator already finished (judged, skipped or closed) this task."""


class HistoryChanged(Exception):
    """The conversation got another message while this one was being answered (a second tab)."""


class FormReplayed(Exception):
    """This form (its one-time key) was already stored; `task_id` is the task its first submission led to."""

    def __init__(self, task_id):
        super().__init__(task_id)
        self.task_id = task_id


def hash_token(token):
    return hashlib.sha256(token.encode()).hexdigest()


def session_stamp(token_sha256):
    """What a session keeps of the link that opened it (not the stored hash itself): it changes with the link."""
    return hash_token(f"session:{token_sha256}")[:24]


class Store:
    def __init__(self, path):
        self.path = path
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)  # one per request
        self.db.row_factory = sqlite3.Row
        try:
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA journal_mode = WAL")  # readers never block the writer; survives a killed process
            self.db.executescript(SCHEMA)
            self._migrate()
        except sqlite3.DatabaseError as e:  # a file that is not SQLite, or a damaged one
            self.db.close()
            raise UserError(f"{path}: not a human-evaluation database ({e}); pass a new --db for a new study")

    def _columns(self, table):
        return {r["name"] for r in self.db.execute(f"PRAGMA table_info({table})")}

    def _migrate(self):
        """Bring a database of an older version up to this schema (plain tokens become hashes), atomically."""
        if "token" in self._columns("annotators") or any(c not in self._columns(t) for t, c, _ in ADDED_COLUMNS):
            with self.transaction():
                if "token" in self._columns("annotators"):
                    rows = self.db.execute("SELECT id, token FROM annotators").fetchall()
                    self.db.execute("ALTER TABLE annotators RENAME COLUMN token TO token_sha256")
                    self.db.executemany("UPDATE annotators SET token_sha256 = ? WHERE id = ?",
                                        [(hash_token(r["token"]), r["id"]) for r in rows])
                for table, column, declaration in ADDED_COLUMNS:
                    if column not in self._columns(table):
                        self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            self.db.execute("VACUUM")  # rewrite the file: no freed page keeps a plain token
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

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

    def secret(self, key):
        """A random secret kept in meta under `key` (made on first use), e.g. the session-signing key."""
        with self.transaction():
            self.db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, json.dumps(secrets.token_hex(32))))
        return self.get_meta(key)

    def add_annotator(self, name):
        """The new annotator's access token (only its hash is stored); the name must be new and not blank."""
        if not has_visible(name) or name != name.strip():
            raise ValueError(f"annotator name {name!r}: names must be non-blank without surrounding spaces")
        token = secrets.token_urlsafe(18)
        try:
            with self.transaction():
                self.db.execute("INSERT INTO annotators (name, token_sha256, created_at) VALUES (?, ?, ?)",
                                (name, hash_token(token), time.time()))
        except sqlite3.IntegrityError:
            raise ValueError(f"annotator {name!r} already exists")
        return token

    def new_token(self, name):
        """A fresh access token for an existing annotator (their old link stops working)."""
        token = secrets.token_urlsafe(18)
        with self.transaction():
            cursor = self.db.execute("UPDATE annotators SET token_sha256 = ? WHERE name = ?", (hash_token(token), name))
        if cursor.rowcount != 1:
            raise ValueError(f"no annotator {name!r}")
        return token

    def revoke(self, name):
        """The annotator's link stops working and their open sessions end (a token nobody is given replaces it)."""
        self.new_token(name)

    def annotators(self):
        """[{id, name}] (tokens are not stored, only their hashes)."""
        return [dict(r) for r in self.db.execute("SELECT id, name FROM annotators ORDER BY id")]

    def annotator(self, annotator_id):
        """{id, name, session}: `session` the session_stamp of the annotator's current link."""
        row = self.db.execute("SELECT id, name, token_sha256 FROM annotators WHERE id = ?", (annotator_id,)).fetchone()
        return None if row is None else _annotator(row)

    def annotator_by_token(self, token):
        row = self.db.execute("SELECT id, name, token_sha256 FROM annotators WHERE token_sha256 = ?",
                              (hash_token(token),)).fetchone()
        return None if row is None else _annotator(row)

    # ---- one-time form keys -----------------------------------------------------------------------------------------
    def replayed_form(self, key, annotator_id):
        """The task a form with this key led to when it was first stored (by this annotator), else None."""
        row = self.db.execute("SELECT task_id FROM forms WHERE key = ? AND annotator_id = ?",
                              (key, annotator_id)).fetchone()
        return None if row is None else row["task_id"]

    def _claim_form(self, key, annotator_id, task_id):
        """Inside a write transaction: record the form's key; FormReplayed when it was stored before."""
        if not key:
            return
        task = self.replayed_form(key, annotator_id)
        if task is not None:
            raise FormReplayed(task)
        try:
            self.db.execute("INSERT INTO forms VALUES (?, ?, ?, ?)", (key, annotator_id, task_id, time.time()))
        except sqlite3.IntegrityError:  # another annotator's key: never theirs to replay
            raise FormReplayed(None)

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

    def current_task(self, annotator_id):
        """The annotator's unfinished task (what they were doing), or None; assigns nothing."""
        row = self.db.execute("SELECT task_id FROM assignments WHERE annotator_id = ? AND finished_at IS NULL "
                              "ORDER BY started_at LIMIT 1", (annotator_id,)).fetchone()
        return None if row is None else row["task_id"]

    # a task counts towards --annotators_per_task while judged, or open and active within the timeout
    _HOLDERS = ("(SELECT COUNT(*) FROM assignments h WHERE h.task_id = t.id AND h.skip_reason IS NULL AND "
                "(h.finished_at IS NOT NULL OR COALESCE(h.last_active_at, h.started_at) >= :since))")
    _AVAILABLE = ("FROM tasks t WHERE t.mode != 'chat' AND NOT EXISTS (SELECT 1 FROM assignments a WHERE "
                  "a.task_id = t.id AND a.annotator_id = :annotator) AND (:cap = 0 OR " + _HOLDERS + " < :cap)")

    def current_or_next_task(self, annotator_id, max_annotators, stale_after=None):
        """The annotator's unfinished task (resume), else assign the next task they have not done (None: all done).

        A task goes to at most `max_annotators` different annotators (0: no limit); an open assignment with no
        activity for `stale_after` seconds no longer holds its place (None: never released)."""
        with self.transaction():
            current = self.current_task(annotator_id)
            if current is not None:
                return current
            params = self._available_params(annotator_id, max_annotators, stale_after)
            row = self.db.execute(f"SELECT t.id {self._AVAILABLE} ORDER BY {self._HOLDERS}, t.id LIMIT 1",
                                  params).fetchone()
            if row is None:
                return None
            now = time.time()
            self.db.execute("INSERT INTO assignments (task_id, annotator_id, started_at, last_active_at) "
                            "VALUES (?, ?, ?, ?)", (row["id"], annotator_id, now, now))
            return row["id"]

    @staticmethod
    def _available_params(annotator_id, max_annotators, stale_after):
        since = float("-inf") if stale_after is None else time.time() - stale_after
        return {"annotator": annotator_id, "cap": max_annotators, "since": since}

    def progress(self, annotator_id, max_annotators=0, stale_after=None):
        """(done, total) of this annotator: total = done + their open task + the tasks they could still get now."""
        done = self.db.execute("SELECT COUNT(*) FROM assignments WHERE annotator_id = ? AND finished_at IS NOT NULL",
                               (annotator_id,)).fetchone()[0]
        still_open = int(self.current_task(annotator_id) is not None)
        available = self.db.execute(f"SELECT COUNT(*) {self._AVAILABLE}",
                                    self._available_params(annotator_id, max_annotators, stale_after)).fetchone()[0]
        return done, done + still_open + available

    def messages(self, task_id, annotator_id, side=None):
        sql = "SELECT * FROM messages WHERE task_id = ? AND annotator_id = ?"
        params = [task_id, annotator_id]
        if side is not None:
            sql += " AND side = ?"
            params.append(side)
        return [dict(r) for r in self.db.execute(sql + " ORDER BY id", params)]

    def add_exchange(self, task_id, annotator_id, side, system, user_text, reply, turns_before=None, form_key=None,
                     also=None):
        """The seeker's message and the system's reply (text, strategy, persona), stored together.

        Refused (AlreadyJudged) when the conversation is closed, (HistoryChanged) when `turns_before`, the number
        of messages the reply was generated after, no longer matches, and (FormReplayed) when the form's one-time
        `form_key` was stored before: all checked in the writing transaction. `also(connection)`, when given, writes
        the caller's own rows in the same transaction (the automatic evaluation's turn record), so the exchange and
        that record are stored together or not at all."""
        with self.transaction():
            self._claim_form(form_key, annotator_id, task_id)
            self._require_open(task_id, annotator_id)
            if turns_before is not None and len(self.messages(task_id, annotator_id, side)) != turns_before:
                raise HistoryChanged()
            now = time.time()
            self.db.execute("INSERT INTO messages (task_id, annotator_id, side, system, speaker, text, created_at) "
                            "VALUES (?, ?, ?, ?, 'usr', ?, ?)", (task_id, annotator_id, side, system, user_text, now))
            self.db.execute("INSERT INTO messages (task_id, annotator_id, side, system, speaker, text, strategy, "
                            "persona, created_at) VALUES (?, ?, ?, ?, 'sys', ?, ?, ?, ?)",
                            (task_id, annotator_id, side, system, reply[0], reply[1], reply[2], now))
            self.db.execute("UPDATE assignments SET last_active_at = ? WHERE task_id = ? AND annotator_id = ?",
                            (now, task_id, annotator_id))
            if also is not None:
                also(self.db)

    def _require_open(self, task_id, annotator_id):
        row = self.db.execute("SELECT finished_at FROM assignments WHERE task_id = ? AND annotator_id = ?",
                              (task_id, annotator_id)).fetchone()
        if row is None or row["finished_at"] is not None:
            raise AlreadyJudged()

    def last_user_message_time(self, annotator_id):
        row = self.db.execute("SELECT MAX(created_at) FROM messages WHERE annotator_id = ? AND speaker = 'usr'",
                              (annotator_id,)).fetchone()
        return row[0]

    def judge(self, task, annotator_id, choices, comment=None, min_turns=0):
        """Store {criterion: 'A'|'B'|'tie'} (and an optional comment) and finish the assignment, in one transaction
        that also checks it is still open and, with `min_turns`, that each side has that many seeker turns."""
        now = time.time()
        winners = {"A": task["system_a"], "B": task["system_b"], "tie": "tie"}
        with self.transaction():
            self._require_open(task["id"], annotator_id)
            messages = self.messages(task["id"], annotator_id)
            for side in ("A", "B"):
                if min_turns and sum(m["speaker"] == "usr" and m["side"] == side for m in messages) < min_turns:
                    raise ValueError(f"Chat at least {min_turns} turns with both systems first.")
            self.db.executemany("INSERT INTO judgments VALUES (?, ?, ?, ?, ?, ?)",
                                [(task["id"], annotator_id, c, v, winners[v], now) for c, v in choices.items()])
            self.db.execute("UPDATE assignments SET finished_at = ?, last_active_at = ?, comment = ? WHERE "
                            "task_id = ? AND annotator_id = ?", (now, now, comment or None, task["id"], annotator_id))

    def skip(self, task_id, annotator_id, reason):
        """Finish the assignment without judgments, with the annotator's reason (skip / report a problem)."""
        now = time.time()
        with self.transaction():
            self._require_open(task_id, annotator_id)
            self.db.execute("UPDATE assignments SET finished_at = ?, last_active_at = ?, skip_reason = ? WHERE "
                            "task_id = ? AND annotator_id = ?", (now, now, reason, task_id, annotator_id))

    def finish_chat(self, task_id, annotator_id):
        """Close a chat-mode conversation and open a fresh one with the same system, assigned to this annotator."""
        return self.new_chat(task_id, annotator_id)

    def chat_systems(self):
        """{system: the chat task it was set up with} of a chat-mode study (conversations are copies of these)."""
        return {r["system_a"]: r["id"] for r in self.db.execute(
            "SELECT system_a, MIN(id) AS id FROM tasks WHERE mode = 'chat' GROUP BY system_a ORDER BY MIN(id)")}

    def new_chat(self, template_task_id, annotator_id, form_key=None):
        """Close the annotator's open chat conversations and open a fresh one like `template_task_id` (its id);
        FormReplayed when the form's one-time `form_key` was stored before."""
        now = time.time()
        with self.transaction():
            replayed = self.replayed_form(form_key, annotator_id) if form_key else None
            if replayed is not None:
                raise FormReplayed(replayed)
            self.db.execute("UPDATE assignments SET finished_at = ? WHERE annotator_id = ? AND finished_at IS NULL "
                            "AND task_id IN (SELECT id FROM tasks WHERE mode = 'chat')", (now, annotator_id))
            cursor = self.db.execute("INSERT INTO tasks (mode, source, system_a, system_b, content) SELECT mode, "
                                     "source, system_a, system_b, content FROM tasks WHERE id = ?", (template_task_id,))
            self.db.execute("INSERT INTO assignments (task_id, annotator_id, started_at, last_active_at) "
                            "VALUES (?, ?, ?, ?)", (cursor.lastrowid, annotator_id, now, now))
            self._claim_form(form_key, annotator_id, cursor.lastrowid)
            return cursor.lastrowid

    def conversations(self, annotator_id):
        """How many chat conversations this annotator has (closed and open)."""
        return self.db.execute("SELECT COUNT(*) FROM assignments a JOIN tasks t ON t.id = a.task_id WHERE "
                               "a.annotator_id = ? AND t.mode = 'chat'", (annotator_id,)).fetchone()[0]

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
            "assignments": "SELECT a.task_id, an.name AS annotator, a.started_at, a.finished_at, a.last_active_at, "
                           "a.comment, a.skip_reason FROM assignments a "
                           "JOIN annotators an ON an.id = a.annotator_id ORDER BY a.task_id, an.name",
            "tasks": "SELECT * FROM tasks ORDER BY id",
        }
        return [dict(r) for r in self.db.execute(queries[table])]

    # ---- what the automatic evaluation (package auto_eval) needs: the study's tables are read and written here only
    def create_study(self, setup, tasks):
        """A new study: its setup (meta 'setup') and its tasks, in one transaction (a killed start leaves none)."""
        with self.transaction():
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('setup', ?)", (json.dumps(setup, sort_keys=True),))
            self.db.executemany(
                "INSERT INTO tasks (mode, source, system_a, system_b, content) VALUES (?, ?, ?, ?, ?)",
                [(t["mode"], t["source"], t["system_a"], t["system_b"], json.dumps(t["content"], sort_keys=True))
                 for t in tasks])

    def annotator_named(self, name):
        """The id of the annotator called `name`, or None."""
        row = self.db.execute("SELECT id FROM annotators WHERE name = ?", (name,)).fetchone()
        return None if row is None else row["id"]

    def task_ids(self, modes=None):
        """The ids of the study's tasks (of the given modes), in order."""
        rows = self.db.execute("SELECT id, mode FROM tasks ORDER BY id").fetchall()
        return [r["id"] for r in rows if modes is None or r["mode"] in modes]

    def open_conversation(self, task_id, annotator_id):
        """Assign the task to the annotator (no-op when it already is)."""
        with self.transaction():
            self.db.execute("INSERT OR IGNORE INTO assignments (task_id, annotator_id, started_at) VALUES (?, ?, ?)",
                            (task_id, annotator_id, time.time()))

    def close_conversation(self, task_id, annotator_id):
        """Finish the annotator's assignment without judgments (no-op when it is already finished)."""
        with self.transaction():
            self.db.execute("UPDATE assignments SET finished_at = ? WHERE task_id = ? AND annotator_id = ? AND "
                            "finished_at IS NULL", (time.time(), task_id, annotator_id))

    def finished_conversations(self, task_id):
        """[(annotator id, judged)] of the task's finished assignments with messages on both sides, by annotator id;
        judged: the annotator stored judgments (a skipped or closed conversation has none)."""
        return [(r["annotator_id"], bool(r["judged"])) for r in self.db.execute(
            "SELECT a.annotator_id, EXISTS (SELECT 1 FROM judgments j WHERE j.task_id = a.task_id AND "
            "j.annotator_id = a.annotator_id) AS judged FROM assignments a WHERE a.task_id = ? AND "
            "a.finished_at IS NOT NULL AND (SELECT COUNT(DISTINCT side) FROM messages m WHERE m.task_id = a.task_id "
            "AND m.annotator_id = a.annotator_id) = 2 ORDER BY a.annotator_id", (task_id,))]

    # ---- reading a study (analysis) ---------------------------------------------------------------------------------
    @classmethod
    def read_only(cls, path):
        """The study at `path` opened for reading only (no schema change, no migration)."""
        store = cls.__new__(cls)
        store.path = path
        store.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        store.db.row_factory = sqlite3.Row
        try:
            store.db.execute("SELECT COUNT(*) FROM tasks").fetchone()
        except sqlite3.DatabaseError as e:
            store.db.close()
            raise UserError(f"{path}: not a human-evaluation database ({e})")
        return store

    def tables(self):
        """The names of the database's tables (the study's and any a tool added beside them)."""
        return [r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]

    def has_rows(self, table):
        """Whether the database has `table` (one of self.tables()) and it holds a row."""
        return table in self.tables() and bool(self.db.execute(f"SELECT EXISTS (SELECT 1 FROM {table})").fetchone()[0])

    def task_systems(self):
        """{task id: (mode, system_a, system_b)}."""
        return {r["id"]: (r["mode"], r["system_a"], r["system_b"])
                for r in self.db.execute("SELECT id, mode, system_a, system_b FROM tasks")}

    def all_judgments(self):
        """[(task_id, annotator_id, system_a, system_b, criterion, choice, winner)] of every human judgment."""
        return [tuple(r) for r in self.db.execute(
            "SELECT j.task_id, j.annotator_id, t.system_a, t.system_b, j.criterion, j.choice, j.winner FROM judgments j "
            "JOIN tasks t ON t.id = j.task_id ORDER BY j.task_id, j.annotator_id, j.criterion")]

    def annotator_names(self):
        """{annotator id: name}."""
        return {r["id"]: r["name"] for r in self.db.execute("SELECT id, name FROM annotators")}


class _Transaction:
    def __init__(self, db):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        return False


def _annotator(row):
    return {"id": row["id"], "name": row["name"], "session": session_stamp(row["token_sha256"])}
