"""The chat-backend change drill (docs/architecture.md, "Add a chat backend"): a new kind of system, declared and
registered in this file alone, goes through the spec parser, `require`, codes/infer_chat.py and codes/serve.py
without a line changed anywhere else.

The backend is a canned-reply supporter (`name=NAME,canned=FILE[,start=K]`: reply k of a conversation is line
(start + k + seed) of FILE), small enough to read, with its own key checks and a capability it lacks (it ignores
system messages). Each command it goes through is one test function over the `registered` fixture; a command that
takes systems joins the drill as one more such function. `python tests/test_backend_drill.py serve ARGS` registers
the backend and runs codes/serve.py (the server test starts it so).
"""
import json
import os
import sys

import pytest
import requests

from chat_systems import Backend, Capabilities, Reply, load_system, register_backend, unregister_backend
from palkit.cli import UserError

from helpers.paths import load_script
from helpers.serving import start_server


# ---- the new backend: everything it takes ------------------------------------------------------------------------
class CannedSystem:
    """chat_systems.system.System: canned replies, a function of the conversation's length and the seed."""

    def __init__(self, spec):
        self.spec, self.name, self.kind, self.capabilities = spec, spec.name, spec.kind, spec.capabilities
        with open(spec.canned, encoding="utf-8") as f:
            self.lines = [line.strip() for line in f if line.strip()]

    def identity(self):
        return self.spec.identity()

    def reply(self, messages, *, seed=None, temperature=None, top_p=None, max_tokens=None, **more):
        turn = sum(m["role"] == "assistant" for m in messages)
        text = self.lines[(int(self.spec.start) + turn + (seed or 0)) % len(self.lines)]
        words = text.split()[:max_tokens]
        return Reply(text=" ".join(words), usage={"prompt_tokens": sum(len(m["content"].split()) for m in messages),
                                                  "completion_tokens": len(words)})

    def reply_batch(self, conversations, *, seed=None, **decoding):
        seeds = seed if isinstance(seed, list) else [seed] * len(conversations)
        return [self.reply(m, seed=s, **decoding) for m, s in zip(conversations, seeds)]


def check_canned(spec):
    if not os.path.isfile(spec.canned):
        raise UserError(f"system {spec.name}: key 'canned': {spec.canned}: no such file (one reply per line)")
    if spec.start is None:
        spec.start = "0"
    if not spec.start.isdigit():
        raise UserError(f"system {spec.name}: key 'start': {spec.start!r} is not a number")
    return spec


CANNED = Backend(name="canned", key="canned", keys=("start",), form="name=NAME,canned=FILE[,start=K]",
                 summary="canned replies, one per line of FILE", check=check_canned,
                 load=lambda spec, device="cpu", **options: CannedSystem(spec), path_keys=("canned",),
                 capabilities=Capabilities(system_messages="ignored",
                                           notes={"system_messages": "it reads the seeker's turns only"}))
REPLIES = ["I hear you.", "That sounds hard, tell me more.", "What would help you right now?"]


# ---- the drill -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def registered():
    register_backend(CANNED)
    yield
    unregister_backend(CANNED.name)


@pytest.fixture(scope="module")
def canned_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("canned") / "replies.txt"
    path.write_text("\n".join(REPLIES) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def test_file(tmp_path_factory):
    from helpers.pal_models import DIALOGUES, write_dialogues
    return str(write_dialogues(tmp_path_factory.mktemp("data") / "test.txt", DIALOGUES))


def test_spec_keys_checks_and_capabilities(registered, canned_file):
    from chat_systems import parse_system_spec, require
    spec = parse_system_spec(f"name=c,canned={canned_file},start=1")
    assert (spec.kind, spec.canned, spec.start) == ("canned", canned_file, "1")
    assert spec.identity() == {"kind": "canned", "name": "c", "canned": os.path.abspath(canned_file), "start": "1"}
    for text, complaint in [("name=c,canned=/no/such/file", "key 'canned': /no/such/file: no such file"),
                            (f"name=c,canned={canned_file},start=x", "key 'start'"),
                            (f"name=c,canned={canned_file},model=m", "key 'model' does not apply to a canned system"),
                            ("name=c,start=1", "give exactly one of the keys checkpoint, llm, endpoint, canned")]:
        with pytest.raises(UserError, match=complaint):
            parse_system_spec(text)
    with pytest.raises(UserError, match="ignores system messages; it reads the seeker's turns only"):
        require(load_system(spec), "system_messages", "a test")


def test_infer_chat(registered, canned_file, test_file, tmp_path, punkt):
    infer_chat = load_script("codes/infer_chat.py")
    out = str(tmp_path / "canned")
    infer_chat.main(["--system", f"name=c,canned={canned_file}", "--infer_input_file", test_file, "--output_dir", out])
    with open(os.path.join(out, "gen.json")) as f:
        records = json.load(f)
    assert records and {r["generation"] for r in records} <= set(REPLIES) and "ppl" not in records[0]
    with pytest.raises(UserError, match="--ask_strategy .*system c \\(canned\\) ignores system messages"):
        infer_chat.main(["--system", f"name=c,canned={canned_file}", "--infer_input_file", test_file,
                         "--output_dir", str(tmp_path / "asked"), "--ask_strategy"])


def test_serve(registered, canned_file, test_file):
    """codes/serve.py serving the new backend on 127.0.0.1 answers what the system answers in-process."""
    from chat_systems.supporter import supporter_examples, supporter_messages
    server = start_server(__file__, "serve", "--system", f"name=c,canned={canned_file}", "--port", "0")
    try:
        system = load_system(f"name=c,canned={canned_file}")
        for _, history, _ in supporter_examples(test_file):
            messages = supporter_messages(history)
            answer = requests.post(f"{server.url}/chat/completions", json={"messages": messages, "seed": 2},
                                   timeout=(5, 60)).json()
            assert answer["choices"][0]["message"]["content"] == system.reply(messages, seed=2).text
    finally:
        server.stop()


def test_automatic_evaluation(registered, canned_file, tmp_path):
    """auto_eval run: two canned supporters, a canned seeker, a canned judge (text verdicts: it gives no token
    probabilities, and asking for them is the protocol's one line)."""
    import sqlite3
    from auto_eval import cli
    from helpers.auto_eval_scripted import write_test_file
    test_file = write_test_file(tmp_path)  # ESConv dialogues with their cards (emotion, problem, situation)
    judge_file = tmp_path / "judge.txt"
    judge_file.write_text("A\n")
    argv = ["run", "--db", str(tmp_path / "study.db"), "--test_file", test_file, "--num_cards", "1", "--turns", "2",
            "--system", f"name=one,canned={canned_file}", "--system", f"name=two,canned={canned_file},start=1",
            "--seeker", f"name=seeker,canned={canned_file},start=2", "--judge", f"name=j,canned={judge_file}",
            "--no_progress"]
    with pytest.raises(UserError, match="--verdict prob: system j \\(canned\\) cannot read the next token's "
                                        "probabilities after a prompt; use --verdict text"):
        cli.main(argv + ["--verdict", "prob"])
    cli.main(argv)
    db = sqlite3.connect(tmp_path / "study.db")
    try:
        assert db.execute("SELECT COUNT(*) FROM auto_turns").fetchone()[0] == 4  # 1 card x 2 sides x 2 turns
        verdicts = db.execute("SELECT DISTINCT verdict_mode, answers FROM auto_judgments").fetchall()
        assert verdicts == [("text", '["A"]')]
    finally:
        db.close()


if __name__ == "__main__":  # python tests/test_backend_drill.py serve ARGS: codes/serve.py with the backend registered
    from palkit.cli import run_main
    register_backend(CANNED)
    serve = load_script("codes/serve.py")
    run_main(serve.main, sys.argv[2:])
