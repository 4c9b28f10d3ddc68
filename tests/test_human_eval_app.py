"""The human-evaluation app's routes through Flask's test client, on tiny models: one full interactive task,
isolation between annotators, escaping, limits, resume after a restart, static and chat modes, setup errors."""
import json
import re
import sqlite3

import pytest

pytest.importorskip("flask", reason="the human-evaluation app needs flask (requirements.txt)")

from pal.cli import UserError  # noqa: E402
from human_eval import serve  # noqa: E402
from human_eval.app import create_app  # noqa: E402
from human_eval.store import Store  # noqa: E402
from human_eval_setup import FAST_DECODING, make_study_inputs, system_args  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_blender_dir):
    return make_study_inputs(tmp_path_factory.mktemp("human_eval"), tiny_blender_dir)


def study(inputs, tmp_path, tiny_blender_dir, *extra, db=None):
    """(app, args) as serve.main builds them, without starting the HTTP server."""
    argv = ["--db", str(db or tmp_path / "study.db"), "--test_file", inputs["test_file"], "--annotators", "ann1,ann2",
            "--pretrained_model_path", tiny_blender_dir, "--min_seconds_between_messages", "0", "--device", "cpu",
            *FAST_DECODING, *system_args(inputs), *extra]
    args = serve.build_parser().parse_args(argv)
    criteria = serve.task_builders.load_criteria(args.criteria)
    store = serve.open_study(args, criteria, serve.build_tasks(args, criteria))
    tokens = {a["name"]: a["token"] for a in store.annotators()}
    store.close()
    app = create_app(args.db, serve.settings_from(args), criteria, serve.load_systems(args))
    return app.test_client(), tokens, args


def task_url(client, token):
    response = client.get(f"/a/{token}/next")
    assert response.status_code == 302
    return response.headers["Location"]


def chat(client, url, side, text):
    return client.post(url + "/say", data={"side": side, "text": text})


def judge_all(client, url, choice="A", criteria=("Fluency", "Identification", "Comforting", "Suggestion", "Overall",
                                                 "Personalisation")):
    return client.post(url + "/judge", data={c: choice for c in criteria})


def test_full_interactive_task_is_stored(inputs, tmp_path, tiny_blender_dir):
    client, tokens, args = study(inputs, tmp_path, tiny_blender_dir)
    assert client.get("/").status_code == 200
    url = task_url(client, tokens["ann1"])
    page = client.get(url).get_data(as_text=True)
    assert "job crisis" in page and "anxiety" in page  # the seeker card of dialogue 1
    assert 'id="judge-later"' in page  # no judging before 3 turns each
    assert judge_all(client, url).status_code == 400
    for side in "AB":
        for turn in range(3):
            assert chat(client, url, side, f"turn {turn} to {side}").status_code == 302
    page = client.get(url).get_data(as_text=True)
    assert 'id="submit-judgment"' in page and "[Question]" not in page  # strategies hidden by default
    assert judge_all(client, url).status_code == 302
    db = sqlite3.connect(args.db)
    rows = db.execute("SELECT side, system, speaker, strategy FROM messages ORDER BY id").fetchall()
    task = db.execute("SELECT system_a, system_b FROM tasks WHERE id = 1").fetchone()
    assert [r[:3] for r in rows] == [(s, task[0] if s == "A" else task[1], sp) for s in "AB" for _ in range(3)
                                     for sp in ("usr", "sys")]
    assert all((r[3] is not None) == (r[2] == "sys") for r in rows)  # every reply records its strategy
    judgments = db.execute("SELECT criterion, choice, winner FROM judgments").fetchall()
    assert sorted(c for c, _, _ in judgments) == sorted(["Fluency", "Identification", "Comforting", "Suggestion",
                                                         "Overall", "Personalisation"])  # PAL compared: +persona
    assert {(ch, w) for _, ch, w in judgments} == {("A", task[0])}
    assert judge_all(client, url).status_code == 409  # not twice
    assert db.execute("SELECT COUNT(*) FROM judgments").fetchone()[0] == 6
    assert task_url(client, tokens["ann1"]) != url  # the next task


def test_annotators_cannot_reach_each_others_work(inputs, tmp_path, tiny_blender_dir):
    client, tokens, _ = study(inputs, tmp_path, tiny_blender_dir)
    url1 = task_url(client, tokens["ann1"])
    chat(client, url1, "A", "my secret message")
    other = url1.replace(tokens["ann1"], tokens["ann2"])
    assert client.get(other).status_code == 404  # ann2 has not been given that task yet
    url2 = task_url(client, tokens["ann2"])
    assert "my secret message" not in client.get(url2).get_data(as_text=True)
    assert chat(client, url1.replace(tokens["ann1"], "not-a-token"), "A", "x").status_code == 404
    assert client.get("/a/not-a-token/").status_code == 404


def test_html_is_escaped_and_limits_hold(inputs, tmp_path, tiny_blender_dir):
    client, tokens, _ = study(inputs, tmp_path, tiny_blender_dir, "--max_message_chars", "40",
                              "--min_seconds_between_messages", "60")
    url = task_url(client, tokens["ann1"])
    chat(client, url, "A", "<script>alert(1)</script>")
    page = client.get(url).get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    too_fast = client.get(chat(client, url, "B", "hello again").headers["Location"]).get_data(as_text=True)
    assert "Too fast" in too_fast
    long = client.get(chat(client, url, "B", "x" * 41).headers["Location"]).get_data(as_text=True)
    assert "at most 40 characters" in long
    assert chat(client, url, "C", "hi").status_code == 400


def test_restart_resumes_and_keeps_judgments(inputs, tmp_path, tiny_blender_dir):
    client, tokens, args = study(inputs, tmp_path, tiny_blender_dir)
    url = task_url(client, tokens["ann1"])
    for side in "AB":
        for turn in range(3):
            chat(client, url, side, f"hello {turn}")
    judge_all(client, url, "tie")
    second = task_url(client, tokens["ann1"])
    chat(client, second, "A", "half-way message")
    client, tokens2, _ = study(inputs, tmp_path, tiny_blender_dir, db=args.db)  # a new server on the same DB
    assert tokens2 == tokens
    assert task_url(client, tokens["ann1"]) == second  # resumes the unfinished task
    assert "half-way message" in client.get(second).get_data(as_text=True)
    db = sqlite3.connect(args.db)
    assert db.execute("SELECT COUNT(*) FROM judgments WHERE choice = 'tie'").fetchone()[0] == 6


def test_replies_do_not_depend_on_server_history(inputs, tmp_path, tiny_blender_dir):
    """Replies are seeded per (task, annotator, side, turn): two servers give the same conversation."""
    texts = []
    for name in ("one.db", "two.db"):
        client, tokens, args = study(inputs, tmp_path, tiny_blender_dir, db=tmp_path / name)
        url = task_url(client, tokens["ann1"])
        if name == "two.db":  # the model samples for another conversation first
            chat(client, task_url(client, tokens["ann2"]), "A", "something else first")
        chat(client, url, "A", "i lost my job")
        texts.append(sqlite3.connect(args.db).execute(
            "SELECT text FROM messages m JOIN annotators a ON a.id = m.annotator_id WHERE a.name = 'ann1' AND "
            "speaker = 'sys'").fetchall())
    assert texts[0] == texts[1] and texts[0]


def test_other_setup_on_same_db_is_refused(inputs, tmp_path, tiny_blender_dir):
    _, _, args = study(inputs, tmp_path, tiny_blender_dir)
    with pytest.raises(UserError, match="another setup"):
        study(inputs, tmp_path, tiny_blender_dir, "--num_dialogues", "1", db=args.db)


@pytest.mark.parametrize("bad,match", [
    (["--system", "name=x,config=strat,checkpoint=/nope/epoch-1.bin"], "checkpoint not found"),
    (["--system", "name=x,config=nosuch,checkpoint=CKPT"], "unknown config"),
    (["--system", "config=strat"], "missing key 'name'"),
    (["--criteria", "CRIT"], "crit.json: invalid JSON at line 1"),
])
def test_setup_errors_are_one_line_before_serving(inputs, tmp_path, tiny_blender_dir, capsys, bad, match):
    (tmp_path / "crit.json").write_text("{oops")
    bad = [b.replace("CKPT", inputs["strat"]).replace("CRIT", str(tmp_path / "crit.json")) for b in bad]
    with pytest.raises(SystemExit) as exit_info:
        serve.run_main(serve.main, ["--db", str(tmp_path / "x.db"), "--test_file", inputs["test_file"],
                                    *system_args(inputs), *bad])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and re.search(match, err), err
    assert not (tmp_path / "x.db").exists()


def test_static_mode_pairs_two_result_folders(inputs, tmp_path):
    for name, reply in (("one", "first system says hi"), ("two", "second <i>system</i>")):
        folder = tmp_path / name
        folder.mkdir()
        records = [{"sample_id": s, "post": "p", "response": f"r{i}", "generation": f"{reply} {i}",
                    "pred_strat_id": 0} for i, s in enumerate([0, 0, 0, 0, 1, 1, 1, 2, 2])]
        (folder / "gen.json").write_text(json.dumps(records))
    args = serve.build_parser().parse_args(["--mode", "static", "--db", str(tmp_path / "s.db"), "--test_file",
                                            inputs["test_file"], "--results", f"one={tmp_path / 'one'}",
                                            "--results", f"two={tmp_path / 'two'}", "--annotators", "a"])
    criteria = serve.task_builders.load_criteria(args.criteria)
    store = serve.open_study(args, criteria, serve.build_tasks(args, criteria))
    token = store.annotators()[0]["token"]
    assert store.task_count() == 9
    client = create_app(args.db, serve.settings_from(args), criteria).test_client()
    url = task_url(client, token)
    page = client.get(url).get_data(as_text=True)
    assert "hi, i have been really worried lately." in page  # the history from the test file
    assert "second &lt;i&gt;system&lt;/i&gt; 0" in page and "first system says hi 0" in page
    assert judge_all(client, url, "B", criteria=("Fluency", "Identification", "Comforting", "Suggestion",
                                                 "Overall")).status_code == 302
    assert Store(args.db).judgments(1, 1)["Overall"] == "B"


def test_chat_mode_shows_strategy_and_persona(inputs, tmp_path, tiny_blender_dir):
    client, tokens, _ = study(inputs, tmp_path, tiny_blender_dir, "--mode", "chat")
    url = task_url(client, tokens["ann1"])
    for text in ("hi", "i am sad", "my dog died"):
        chat(client, url, "A", text)
    page = client.get(url).get_data(as_text=True)
    assert re.search(r'class="strategy">\[[A-Z][^\]]+\]', page)
    assert "persona: &lt;input&gt;" in page  # a fixed "<input>" persona without --persona_extractor
    new = client.post(url + "/new_conversation")
    assert new.status_code == 302
    fresh = task_url(client, tokens["ann1"])
    assert fresh != url and "my dog died" not in client.get(fresh).get_data(as_text=True)


def test_admin_links_and_export(inputs, tmp_path, tiny_blender_dir, capsys):
    from human_eval import admin
    client, tokens, args = study(inputs, tmp_path, tiny_blender_dir)
    admin.main(["--db", args.db, "--base_url", "http://127.0.0.1:5001/", "add", "ann3"])
    link = capsys.readouterr().out.strip()
    assert link.startswith("ann3: http://127.0.0.1:5001/a/") and link.endswith("/")
    token3 = link.rstrip("/").rsplit("/", 1)[1]
    assert token3 not in tokens.values() and client.get(f"/a/{token3}/").status_code == 200
    with pytest.raises(UserError, match="already exists"):
        admin.main(["--db", args.db, "add", "ann3"])
    url = task_url(client, tokens["ann1"])
    for side in "AB":
        for turn in range(3):
            chat(client, url, side, f"t{turn}")
    judge_all(client, url, "B")
    admin.main(["--db", args.db, "export", str(tmp_path / "export")])
    judgments = json.loads((tmp_path / "export" / "judgments.json").read_text())
    assert len(judgments) == 6 and {j["annotator"] for j in judgments} == {"ann1"}
    assert all(j["winner"] == j["system_b"] for j in judgments)
    csv_lines = (tmp_path / "export" / "messages.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + 12 and csv_lines[0].startswith("id,task_id,annotator,side,system,speaker,text")
    exported = "".join(p.read_text() for p in (tmp_path / "export").iterdir())
    assert not any(t in exported for t in [*tokens.values(), token3])  # tokens never leave the database


def test_chat_mode_with_live_persona_extractor(inputs, tmp_path, tiny_blender_dir):
    from persona_extractor.tiny_bart import make_tiny_bart_dir
    extractor = make_tiny_bart_dir(str(tmp_path / "extractor"))
    client, tokens, args = study(inputs, tmp_path, tiny_blender_dir, "--mode", "chat", "--persona_extractor",
                                 extractor)
    url = task_url(client, tokens["ann1"])
    for text in ("hi", "i am a nurse", "i have two cats"):
        chat(client, url, "A", text)
    personas = [r[0] for r in sqlite3.connect(args.db).execute(
        "SELECT persona FROM messages WHERE speaker = 'sys' ORDER BY id")]
    assert personas[:2] == ["<input>", "<input>"]  # inferred from the seeker's 3rd turn on (SPEC stage 3)
    assert len(personas) == 3 and personas[2].endswith("<input>")


def test_static_results_of_other_contexts_are_refused(inputs, tmp_path):
    for name, n in (("one", 9), ("two", 8)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "gen.json").write_text(json.dumps(
            [{"sample_id": 0, "response": f"r{i}", "generation": "g"} for i in range(n)]))
    args = serve.build_parser().parse_args(["--mode", "static", "--results", f"one={tmp_path / 'one'}",
                                            "--results", f"two={tmp_path / 'two'}"])
    with pytest.raises(UserError, match="not generations for the same test contexts"):
        serve.build_tasks(args, serve.task_builders.load_criteria(args.criteria))
