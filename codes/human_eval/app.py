"""The Flask app: per-annotator pages under /a/<token>/..., every read and write keyed by that token's annotator.

Pages are server-rendered forms (post, then redirect), so the study works without JavaScript and a reload never
re-sends a message. Jinja escapes everything it renders: model output and annotator input are never HTML.
"""
import threading
import time
from dataclasses import dataclass

from flask import Flask, g, redirect, render_template, request, url_for

from human_eval.store import AlreadyJudged, Store

CHOICES = ("A", "B", "tie")


@dataclass
class Settings:
    """The study's rules (serve.py's command line)."""
    mode: str = "interactive"          # interactive | static | chat
    min_turns: int = 3                 # seeker turns with each system before judging (interactive)
    max_turns: int = 20                # seeker turns with one system at most
    max_message_chars: int = 500
    min_seconds_between_messages: float = 1.0
    annotators_per_task: int = 0       # 0: every annotator may do every task
    show_strategy: bool = False        # show each reply's strategy and the persona (demos; always in chat mode)


class HttpError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


def create_app(db_path, settings, criteria, systems=None):
    """The app on the database at db_path; `systems` (human_eval.systems.Systems) for interactive and chat mode."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    questions = {c["name"]: c["question"] for c in criteria}
    say_lock = threading.Lock()  # read history, generate, store: one exchange at a time (two tabs cannot interleave)

    @app.before_request
    def open_store():
        g.store = Store(db_path)

    @app.teardown_request
    def close_store(_exc):
        store = g.pop("store", None)
        if store is not None:
            store.close()

    @app.errorhandler(HttpError)
    def http_error(e):
        return render_template("error.html", message=e.message), e.status

    def annotator_or_404(token):
        annotator = g.store.annotator_by_token(token)
        if annotator is None:
            raise HttpError(404, "Unknown access link: ask the study's organiser for yours.")
        return annotator

    def own_task(annotator, task_id):
        """The task, only when it was assigned to this annotator (nobody reads another's task page)."""
        task = g.store.task(task_id)
        if task is None or g.store.assignment(task_id, annotator["id"]) is None:
            raise HttpError(404, "No such task for this link.")
        return task

    @app.get("/")
    def index():
        return render_template("index.html", mode=settings.mode)

    @app.get("/a/<token>/")
    def home(token):
        annotator = annotator_or_404(token)
        done, total = g.store.progress(annotator["id"])
        return render_template("home.html", token=token, name=annotator["name"], done=done, total=total,
                               mode=settings.mode)

    @app.get("/a/<token>/next")
    def next_task(token):
        annotator = annotator_or_404(token)
        task_id = g.store.current_or_next_task(annotator["id"], settings.annotators_per_task)
        if task_id is None:
            return render_template("done.html", token=token, name=annotator["name"])
        return redirect(url_for("task_page", token=token, task_id=task_id))

    @app.get("/a/<token>/task/<int:task_id>")
    def task_page(token, task_id):
        annotator = annotator_or_404(token)
        task = own_task(annotator, task_id)
        messages = g.store.messages(task_id, annotator["id"])
        sides = {side: [m for m in messages if m["side"] == side] for side in ("A", "B")}
        turns = {side: sum(m["speaker"] == "usr" for m in ms) for side, ms in sides.items()}
        judged = g.store.judgments(task_id, annotator["id"])
        can_judge = settings.mode == "static" or all(n >= settings.min_turns for n in turns.values())
        template = {"interactive": "task.html", "static": "static.html", "chat": "chat.html"}[task["mode"]]
        return render_template(template, token=token, task=task, sides=sides, turns=turns, judged=judged,
                               can_judge=can_judge, settings=settings, questions=questions, choices=CHOICES,
                               show_strategy=settings.show_strategy or task["mode"] == "chat",
                               error=request.args.get("error"), progress=g.store.progress(annotator["id"]))

    @app.post("/a/<token>/task/<int:task_id>/say")
    def say(token, task_id):
        annotator = annotator_or_404(token)
        task = own_task(annotator, task_id)
        side = request.form.get("side", "")
        if task["mode"] == "static" or side not in (("A",) if task["mode"] == "chat" else ("A", "B")):
            raise HttpError(400, "This task has no chat with that system.")
        if g.store.judgments(task_id, annotator["id"]):
            raise HttpError(409, "This task is already judged; its conversations are closed.")
        text = " ".join(request.form.get("text", "").split())
        with say_lock:
            problem = message_problem(annotator, task_id, side, text)
            if problem:
                return redirect(url_for("task_page", token=token, task_id=task_id, error=problem) + f"#chat-{side}")
            system = task["system_a"] if side == "A" else task["system_b"]
            history = [{"speaker": m["speaker"], "text": m["text"], "strategy": m["strategy"]}
                       for m in g.store.messages(task_id, annotator["id"], side)]
            key = (task_id, annotator["id"], side, len(history))
            reply = systems.reply(system, history, text, key)
            g.store.add_exchange(task_id, annotator["id"], side, system, text, reply)
        return redirect(url_for("task_page", token=token, task_id=task_id) + f"#chat-{side}")

    def message_problem(annotator, task_id, side, text):
        if not text:
            return "Please write a message first."
        if len(text) > settings.max_message_chars:
            return f"Messages are at most {settings.max_message_chars} characters (yours has {len(text)})."
        turns = sum(m["speaker"] == "usr" for m in g.store.messages(task_id, annotator["id"], side))
        if turns >= settings.max_turns:
            return f"That conversation has reached its {settings.max_turns} turns."
        last = g.store.last_user_message_time(annotator["id"])
        if last is not None and time.time() - last < settings.min_seconds_between_messages:
            return "Too fast: please wait a moment before sending the next message."
        return None

    @app.post("/a/<token>/task/<int:task_id>/judge")
    def judge(token, task_id):
        annotator = annotator_or_404(token)
        task = own_task(annotator, task_id)
        criteria_names = task["content"]["criteria"]
        choices = {c: request.form.get(c) for c in criteria_names}
        if task["mode"] == "chat" or not criteria_names:
            raise HttpError(400, "This task has nothing to judge.")
        missing = [c for c, v in choices.items() if v not in CHOICES]
        if missing:
            return redirect(url_for("task_page", token=token, task_id=task_id,
                                    error=f"Please choose A, B or tie for: {', '.join(missing)}."))
        if task["mode"] == "interactive":
            messages = g.store.messages(task_id, annotator["id"])
            for side in ("A", "B"):
                if sum(m["speaker"] == "usr" and m["side"] == side for m in messages) < settings.min_turns:
                    raise HttpError(400, f"Chat at least {settings.min_turns} turns with both systems first.")
        try:
            g.store.judge(task, annotator["id"], choices)
        except AlreadyJudged:
            raise HttpError(409, "You already judged this task; your first answers are kept.")
        return redirect(url_for("next_task", token=token))

    @app.post("/a/<token>/task/<int:task_id>/new_conversation")
    def new_conversation(token, task_id):
        """Chat mode: a fresh conversation is a fresh task of the same system (the old one stays stored)."""
        annotator = annotator_or_404(token)
        task = own_task(annotator, task_id)
        if task["mode"] != "chat":
            raise HttpError(400, "Only the chat can start over.")
        g.store.finish_chat(task_id, annotator["id"])
        return redirect(url_for("next_task", token=token))

    return app
