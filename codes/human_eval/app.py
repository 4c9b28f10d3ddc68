"""The Flask app. An annotator's link /a/<token>/ starts a session (a signed HttpOnly cookie) and redirects to pages
without the token; every read and write is keyed by the session's annotator.

Pages are server-rendered forms, so the study works without JavaScript. Every state-changing request is a POST with
the session's CSRF token, refused when the browser says it comes from another origin; GET changes nothing. Jinja
escapes everything it renders. Each model reply is generated outside any database transaction (the systems lock
their own model); the write re-checks, in its transaction, that the conversation is still open and unchanged.
See README "Human evaluation" for the security model.
"""
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass

from flask import Flask, g, redirect, render_template, request, session, url_for
from werkzeug.exceptions import HTTPException

from human_eval.store import AlreadyJudged, FormReplayed, HistoryChanged, Store
from human_eval.text import clean_message, has_visible

CHOICES = ("A", "B", "tie")
MAX_TASK_ID = 2**63 - 1  # SQLite's largest integer; above it a task id is a 404, not an overflow
LINK = re.compile(r"/a/[^/\s\"?]+")  # an access link's path, as it must never appear in a log
ACCESS_LOG = logging.getLogger("human_eval.access")
SECURITY_HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
                               "object-src 'none'",
    "Cache-Control": "no-store",
}


@dataclass
class Settings:
    """The study's rules (serve.py's command line)."""
    mode: str = "interactive"          # interactive | static | chat
    min_turns: int = 3                 # seeker turns with each system before judging (interactive)
    max_turns: int = 20                # seeker turns with one system at most
    max_message_chars: int = 500
    min_seconds_between_messages: float = 1.0
    annotators_per_task: int = 0       # 0: every annotator may do every task
    assignment_timeout: float = 1800   # seconds without activity after which an open task no longer holds its place
    show_strategy: bool = False        # show each reply's strategy and the persona (demos; always in chat mode)
    https: bool = False                # annotators reach the server over HTTPS (a proxy): the cookie is Secure


class HttpError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


def redact(text):
    """`text` with every access link's token replaced (log lines)."""
    return LINK.sub("/a/<token>", text)


class RedactLinks(logging.Filter):
    def filter(self, record):
        record.msg, record.args = redact(record.getMessage()), None
        return True


def same_origin_request():
    """False when the browser says this request comes from another page than ours (forged forms, framed pages).

    Sec-Fetch-Site (set by the browser, not by pages) decides where present; else the Origin header. Under
    Referrer-Policy no-referrer browsers send `Origin: null` for our own forms, so "null" is left to Sec-Fetch-Site.
    A request with neither header is not from a browser (no cookie to abuse); the CSRF token still has to match."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    return origin == request.host_url.rstrip("/")


def create_app(db_path, settings, criteria, systems=None):
    """The app on the database at db_path; `systems` (human_eval.systems.Systems) for interactive and chat mode."""
    app = Flask(__name__)
    app.logger.addFilter(RedactLinks())
    store = Store(db_path)
    app.secret_key = store.secret("session_secret")  # in the database: a restart keeps everyone's session
    store.close()
    app.config.update(MAX_CONTENT_LENGTH=64 * 1024, SESSION_COOKIE_NAME="pal_eval", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_SECURE=settings.https)
    questions = {mode: {c["name"]: c["questions"][mode] for c in criteria} for mode in ("interactive", "static")}

    @app.before_request
    def open_store():
        g.store = Store(db_path)
        g.started = time.time()
        if request.method == "POST":
            expected = session.get("csrf", "")
            if not same_origin_request() or not expected or not hmac.compare_digest(
                    expected, request.form.get("csrf_token", "")):
                raise HttpError(403, "This form did not come from your evaluation page (or your session expired): "
                                     "open your personal link again.")

    @app.teardown_request
    def close_store(_exc):
        store = g.pop("store", None)
        if store is not None:
            store.close()

    @app.after_request
    def headers_and_log(response):
        response.headers.update(SECURITY_HEADERS)
        ACCESS_LOG.info('%s "%s %s" %s', request.remote_addr, request.method, redact(request.path),
                        response.status_code)
        return response

    @app.errorhandler(HttpError)
    def http_error(e):
        return render_template("error.html", message=e.message, back=back_link()), e.status

    @app.errorhandler(HTTPException)
    def other_http_error(e):
        message = "No such page." if e.code == 404 else f"{e.name}."
        return render_template("error.html", message=message, back=back_link()), e.code

    def back_link():
        return url_for("home") if session.get("annotator") else url_for("index")

    @app.context_processor
    def csrf_token():
        # form_key(): a one-time key per rendered form that changes something, so that a replay is stored once
        return {"csrf_token": session.get("csrf", ""), "form_key": lambda: secrets.token_urlsafe(16)}

    def current_annotator():
        annotator = g.store.annotator(session.get("annotator", -1))
        if annotator is None:
            raise HttpError(403, "Open the personal link you were given to start (or resume) your evaluation.")
        if not hmac.compare_digest(session.get("link", ""), annotator["session"]):
            session.clear()  # the link that opened this session was replaced or revoked (human_eval.admin)
            raise HttpError(403, "Your access link was replaced or revoked: open the link the study's organiser gave "
                                 "you last.")
        return annotator

    def own_task(annotator, task_id):
        """The task, only when it was assigned to this annotator (nobody reads another's task page)."""
        task = g.store.task(task_id)
        if task is None or g.store.assignment(task_id, annotator["id"]) is None:
            raise HttpError(404, "No such task for you.")
        return task

    def progress(annotator):
        return g.store.progress(annotator["id"], settings.annotators_per_task, settings.assignment_timeout)

    @app.get("/")
    def index():
        return render_template("index.html", mode=settings.mode)

    @app.get("/a/<token>/")
    def link(token):
        """The personal link: a new session for its annotator, then the home page (the token leaves the URL)."""
        annotator = g.store.annotator_by_token(token)
        if annotator is None:
            raise HttpError(404, "Unknown access link: ask the study's organiser for yours.")
        session.clear()
        session.update(annotator=annotator["id"], link=annotator["session"], csrf=secrets.token_urlsafe(24))
        return redirect(url_for("home"), 303)

    @app.get("/home")
    def home():
        annotator = current_annotator()
        done, total = progress(annotator)
        return render_template("home.html", name=annotator["name"], done=done, total=total, mode=settings.mode,
                               settings=settings,
                               current=g.store.current_task(annotator["id"]), chat_systems=g.store.chat_systems(),
                               conversations=g.store.conversations(annotator["id"]))

    @app.post("/next")
    def next_task():
        annotator = current_annotator()
        return to_next_task(annotator)

    def to_next_task(annotator):
        task_id = g.store.current_or_next_task(annotator["id"], settings.annotators_per_task,
                                               settings.assignment_timeout)
        if task_id is None:
            return render_template("done.html", name=annotator["name"], progress=progress(annotator))
        return redirect(url_for("task_page", task_id=task_id), 303)

    @app.get(f"/task/<int(max={MAX_TASK_ID}):task_id>")
    def task_page(task_id):
        annotator = current_annotator()
        return render_task(annotator, own_task(annotator, task_id))

    def render_task(annotator, task, status=200, error=None, draft=None, chosen=None, comment=""):
        """The task page; after a refused form, with the error and what the annotator had typed or chosen."""
        messages = g.store.messages(task["id"], annotator["id"])
        sides = {side: [m for m in messages if m["side"] == side] for side in ("A", "B")}
        turns = {side: sum(m["speaker"] == "usr" for m in ms) for side, ms in sides.items()}
        assignment = g.store.assignment(task["id"], annotator["id"])
        can_judge = task["mode"] == "static" or all(n >= settings.min_turns for n in turns.values())
        template = {"interactive": "task.html", "static": "static.html", "chat": "chat.html"}[task["mode"]]
        return render_template(
            template, task=task, sides=sides, turns=turns, judged=g.store.judgments(task["id"], annotator["id"]),
            closed=assignment["finished_at"] is not None, skipped=assignment["skip_reason"], can_judge=can_judge,
            settings=settings, questions=questions.get(task["mode"], {}), choices=CHOICES, mode=task["mode"],
            show_strategy=settings.show_strategy or task["mode"] == "chat", error=error, draft=draft or {},
            chosen=chosen or {}, comment=comment, progress=progress(annotator),
            chat_systems=g.store.chat_systems()), status

    @app.post(f"/task/<int(max={MAX_TASK_ID}):task_id>/say")
    def say(task_id):
        annotator = current_annotator()
        task = own_task(annotator, task_id)
        side = request.form.get("side", "")
        if task["mode"] == "static" or side not in (("A",) if task["mode"] == "chat" else ("A", "B")):
            raise HttpError(400, "This task has no chat with that system.")
        typed = request.form.get("text", "")
        form_key = request.form.get("form_key", "")[:64]
        if form_key and g.store.replayed_form(form_key, annotator["id"]) is not None:  # a replay: already stored
            return redirect(url_for("task_page", task_id=task_id) + f"#chat-{side}", 303)
        text = clean_message(typed)
        problem = message_problem(annotator, task_id, side, text)
        if problem:
            return render_task(annotator, task, 400, problem, {side: typed})
        system = task["system_a"] if side == "A" else task["system_b"]
        stored = g.store.messages(task_id, annotator["id"], side)
        history = [{"speaker": m["speaker"], "text": m["text"], "strategy": m["strategy"]} for m in stored]
        reply = systems.reply(system, history, text, (task_id, annotator["id"], side, len(history)))
        try:
            g.store.add_exchange(task_id, annotator["id"], side, system, text, reply, turns_before=len(stored),
                                 form_key=form_key)
        except FormReplayed:  # the same form, sent twice at once: the first one is stored
            pass
        except AlreadyJudged:
            raise HttpError(409, "This conversation is closed (judged, skipped or replaced by a new one); your "
                                 "message was not stored.")
        except HistoryChanged:
            return render_task(annotator, task, 409, "Another message reached this conversation first (a second "
                                                     "tab?); yours was not stored: send it again.", {side: typed})
        return redirect(url_for("task_page", task_id=task_id) + f"#chat-{side}", 303)

    def message_problem(annotator, task_id, side, text):
        if g.store.assignment(task_id, annotator["id"])["finished_at"] is not None:
            return "This conversation is closed; your message was not sent."
        if not has_visible(text):
            return "Please write a message first (it needs visible characters)."
        if len(text) > settings.max_message_chars:
            return f"Messages are at most {settings.max_message_chars} characters (yours has {len(text)})."
        turns = sum(m["speaker"] == "usr" for m in g.store.messages(task_id, annotator["id"], side))
        if turns >= settings.max_turns:
            return f"That conversation has reached its {settings.max_turns} turns."
        last = g.store.last_user_message_time(annotator["id"])
        if last is not None and time.time() - last < settings.min_seconds_between_messages:
            return "Too fast: please wait a moment, then send your message again."
        return None

    @app.post(f"/task/<int(max={MAX_TASK_ID}):task_id>/judge")
    def judge(task_id):
        annotator = current_annotator()
        task = own_task(annotator, task_id)
        criteria_names = task["content"]["criteria"]
        if task["mode"] == "chat" or not criteria_names:
            raise HttpError(400, "This task has nothing to judge.")
        choices = {c: request.form.get(c) for c in criteria_names}
        comment = clean_message(request.form.get("comment", ""))[:2000]
        missing = [c for c, v in choices.items() if v not in CHOICES]
        if missing:
            return render_task(annotator, task, 400, f"Please choose A, B or tie for: {', '.join(missing)}.",
                               chosen=choices, comment=comment)
        try:
            g.store.judge(task, annotator["id"], choices, comment if has_visible(comment) else None,
                          settings.min_turns if task["mode"] == "interactive" else 0)
        except AlreadyJudged:
            raise HttpError(409, "You already finished this task; your first answers are kept.")
        except ValueError as e:
            raise HttpError(400, str(e))
        return to_next_task(annotator)

    @app.post(f"/task/<int(max={MAX_TASK_ID}):task_id>/skip")
    def skip(task_id):
        """Skip the task / report a problem with it: the reason is stored and exported, then the next task."""
        annotator = current_annotator()
        task = own_task(annotator, task_id)
        reason = clean_message(request.form.get("reason", ""))[:2000]
        if task["mode"] == "chat":
            raise HttpError(400, "A chat has nothing to skip: start a new conversation instead.")
        if not has_visible(reason):
            return render_task(annotator, task, 400, "Please say why you skip this task (or what the problem is).")
        try:
            g.store.skip(task_id, annotator["id"], reason)
        except AlreadyJudged:
            raise HttpError(409, "You already finished this task.")
        return to_next_task(annotator)

    @app.post("/chat/new")
    def new_conversation():
        """Chat mode: a fresh conversation with the chosen system (the annotator's open one is closed and kept)."""
        annotator = current_annotator()
        template = g.store.chat_systems().get(request.form.get("system", ""))
        if settings.mode != "chat" or template is None:
            raise HttpError(400, "No such system to chat with.")
        try:
            task_id = g.store.new_chat(template, annotator["id"], request.form.get("form_key", "")[:64])
        except FormReplayed as replayed:  # a replay leads where the first submission did
            task_id = replayed.task_id
        return redirect(url_for("task_page", task_id=task_id), 303)

    return app
