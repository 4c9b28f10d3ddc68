"""The human-evaluation app's routes through Flask's test client, on tiny models: one full interactive task,
isolation between annotators, escaping, limits, resume after a restart, static and chat modes, setup errors;
sessions and forged requests, races between a message and the judgment, stale assignments, text hygiene, export."""
import json
import re
import sqlite3
import threading

import pytest

pytest.importorskip("flask", reason="the human-evaluation app needs flask (requirements.txt)")

from palkit.cli import UserError  # noqa: E402
from human_eval import serve  # noqa: E402
from human_eval.app import create_app  # noqa: E402
from human_eval.store import Store  # noqa: E402
from helpers.human_eval import FAST_DECODING, login, make_study_inputs, post, system_args, task_url  # noqa: E402

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
    store, tokens = serve.open_study(args, criteria, serve.build_tasks(args, criteria))
    store.close()
    app = create_app(args.db, serve.settings_from(args), criteria, serve.load_systems(args))
    return app.test_client(), tokens, args


def new_chat(client, token, system):
    """Chat mode: log in and start a conversation with `system`; its URL."""
    login(client, token)
    response = post(client, "/chat/new", {"system": system})
    assert response.status_code == 303
    return response.headers["Location"]


def chat(client, url, side, text):
    return post(client, url + "/say", {"side": side, "text": text})


def judge_all(client, url, choice="A", criteria=("Fluency", "Identification", "Comforting", "Suggestion", "Overall",
                                                 "Personalisation"), **extra):
    return post(client, url + "/judge", {**{c: choice for c in criteria}, **extra})


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
            assert chat(client, url, side, f"turn {turn} to {side}").status_code == 303
    page = client.get(url).get_data(as_text=True)
    assert 'id="submit-judgment"' in page and "[Question]" not in page  # strategies hidden by default
    assert judge_all(client, url).status_code == 303
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
    login(client, tokens["ann2"])  # the same browser, now ann2's session
    assert client.get(url1).status_code == 404  # ann2 has not been given that task yet
    assert chat(client, url1, "A", "x").status_code == 404
    url2 = task_url(client)
    assert "my secret message" not in client.get(url2).get_data(as_text=True)
    assert client.get("/a/not-a-token/").status_code == 404
    client.get("/a/not-a-token/")
    with client.session_transaction() as session:
        assert session.get("annotator") is not None  # an unknown link does not end the session it came with
    anonymous = client.application.test_client()
    assert anonymous.get(url2).status_code == 403 and anonymous.get("/home").status_code == 403


def test_html_is_escaped_and_limits_hold(inputs, tmp_path, tiny_blender_dir):
    client, tokens, _ = study(inputs, tmp_path, tiny_blender_dir, "--max_message_chars", "40",
                              "--min_seconds_between_messages", "60")
    url = task_url(client, tokens["ann1"])
    chat(client, url, "A", "<script>alert(1)</script>")
    page = client.get(url).get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    too_fast = chat(client, url, "B", "hello again")
    assert too_fast.status_code == 400 and "Too fast" in too_fast.get_data(as_text=True)
    assert 'value="hello again"' in too_fast.get_data(as_text=True)  # the typed text is kept for sending again
    long = chat(client, url, "B", "x" * 41).get_data(as_text=True)
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
    cookie = client.get_cookie("pal_eval").value
    client, tokens2, _ = study(inputs, tmp_path, tiny_blender_dir, db=args.db)  # a new server on the same DB
    assert tokens2 == {}  # nobody new; the old links still work
    client.set_cookie("pal_eval", cookie)  # the browser's session cookie, signed before the restart: still valid
    assert client.get(second).status_code == 200
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
            other = client.application.test_client()  # another annotator's browser
            chat(other, task_url(other, tokens["ann2"]), "A", "something else first")
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
    store, tokens = serve.open_study(args, criteria, serve.build_tasks(args, criteria))
    assert store.task_count() == 9
    client = create_app(args.db, serve.settings_from(args), criteria).test_client()
    url = task_url(client, tokens["a"])
    page = client.get(url).get_data(as_text=True)
    assert "hi, i have been really worried lately." in page  # the history from the test file
    assert "second &lt;i&gt;system&lt;/i&gt; 0" in page and "first system says hi 0" in page
    assert "reply comforts the seeker" in page and "comforting you" not in page  # static wording
    assert "Personalisation" not in page and 'id="persona"' not in page  # no persona shown: not asked about
    assert judge_all(client, url, "B", criteria=("Fluency", "Identification", "Comforting", "Suggestion",
                                                 "Overall")).status_code == 303
    assert Store(args.db).judgments(1, 1)["Overall"] == "B"


def test_chat_mode_shows_strategy_and_persona(inputs, tmp_path, tiny_blender_dir):
    client, tokens, _ = study(inputs, tmp_path, tiny_blender_dir, "--mode", "chat")
    url = new_chat(client, tokens["ann1"], "pal")
    for text in ("hi", "i am sad", "my dog died"):
        chat(client, url, "A", text)
    page = client.get(url).get_data(as_text=True)
    assert re.search(r'class="strategy">\[[A-Z][^\]]+\]', page)
    assert "persona: <bdi>&lt;input&gt;</bdi>" in page  # a fixed "<input>" persona without --persona_extractor
    new = post(client, "/chat/new", {"system": "pal"})
    assert new.status_code == 303
    fresh = new.headers["Location"]
    assert fresh != url and "my dog died" not in client.get(fresh).get_data(as_text=True)


def test_admin_links_and_export(inputs, tmp_path, tiny_blender_dir, capsys):
    from human_eval import admin
    client, tokens, args = study(inputs, tmp_path, tiny_blender_dir)
    admin.main(["--db", args.db, "--base_url", "http://127.0.0.1:5001/", "add", "ann3"])
    link = capsys.readouterr().out.strip()
    assert link.startswith("ann3: http://127.0.0.1:5001/a/") and link.endswith("/")
    token3 = link.rstrip("/").rsplit("/", 1)[1]
    assert token3 not in tokens.values() and client.get(f"/a/{token3}/").status_code == 303
    with pytest.raises(UserError, match="no server address recorded"):
        admin.main(["--db", args.db, "add", "ann4"])  # neither --base_url nor a server that recorded its address
    with pytest.raises(UserError, match="already exists"):
        admin.main(["--db", args.db, "--base_url", "http://127.0.0.1:5001", "add", "ann3"])
    for blank in ("", " ", "\u200b", "\u200b x "):
        with pytest.raises(UserError, match="non-blank"):
            admin.main(["--db", args.db, "--base_url", "http://127.0.0.1:5001", "add", blank])
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
    url = new_chat(client, tokens["ann1"], "pal")
    for text in ("hi", "i am a nurse", "i have two cats"):
        chat(client, url, "A", text)
    personas = [r[0] for r in sqlite3.connect(args.db).execute(
        "SELECT persona FROM messages WHERE speaker = 'sys' ORDER BY id")]
    # the persona is inferred from the seeker's 3rd turn on (docs/reproduction.md#featurization)
    assert personas[:2] == ["<input>", "<input>"]
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


def test_forged_and_unsafe_requests_change_nothing(inputs, tmp_path, tiny_blender_dir):
    """No CSRF token, a wrong one, another origin: 403 and nothing stored; GET assigns nothing; headers forbid
    framing, sniffing and referrers; the link's token leaves the URL at once."""
    client, tokens, args = study(inputs, tmp_path, tiny_blender_dir)
    response = login(client, tokens["ann1"])
    assert "HttpOnly" in response.headers["Set-Cookie"] and "SameSite=Lax" in response.headers["Set-Cookie"]
    assert "Secure" not in response.headers["Set-Cookie"]  # plain http on 127.0.0.1; behind HTTPS it is Secure:
    https, https_tokens, _ = study(inputs, tmp_path, tiny_blender_dir, "--base_url", "https://eval.example.org",
                                   db=tmp_path / "https.db")
    assert "Secure" in login(https, https_tokens["ann1"]).headers["Set-Cookie"]
    for name, value in {"Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
                        "X-Content-Type-Options": "nosniff"}.items():
        assert response.headers[name] == value
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert client.get("/next").status_code == 405 and client.get("/home").status_code == 200  # GET never assigns
    db = sqlite3.connect(args.db)
    assert db.execute("SELECT COUNT(*) FROM assignments").fetchone()[0] == 0
    assert client.post("/next").status_code == 403  # no token
    assert client.post("/next", data={"csrf_token": "guess"}).status_code == 403
    for headers in ({"Origin": "http://127.0.0.1:9999"}, {"Sec-Fetch-Site": "same-site"},
                    {"Sec-Fetch-Site": "cross-site", "Origin": "http://localhost"}, {"Origin": "null"}):
        assert post(client, "/next", headers=headers).status_code == 403, headers
    assert db.execute("SELECT COUNT(*) FROM assignments").fetchone()[0] == 0
    url = task_url(client)  # with the token, from our own origin: accepted
    assert post(client, url + "/say", {"side": "A", "text": "forged"}, headers={"Origin": "http://evil.test"}
                ).status_code == 403
    ok = post(client, url + "/say", {"side": "A", "text": "mine"},
              headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"})
    assert ok.status_code == 303
    assert [r[0] for r in db.execute("SELECT text FROM messages WHERE speaker = 'usr'")] == ["mine"]
    tokens_in_db = [r[0] for r in db.execute("SELECT token_sha256 FROM annotators")]
    assert not set(tokens.values()) & set(tokens_in_db) and all(len(t) == 64 for t in tokens_in_db)  # hashed


def test_plain_tokens_of_an_old_database_are_hashed_and_keep_working(inputs, tmp_path, tiny_blender_dir):
    """A database of the previous version (plain tokens, fewer columns) is migrated on open; its links still work."""
    db_path = tmp_path / "old.db"
    old = sqlite3.connect(db_path)
    old.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE annotators (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, token TEXT UNIQUE NOT NULL,
                                 created_at REAL NOT NULL);
        CREATE TABLE tasks (id INTEGER PRIMARY KEY, mode TEXT NOT NULL, source TEXT NOT NULL, system_a TEXT NOT NULL,
                            system_b TEXT NOT NULL, content TEXT NOT NULL);
        CREATE TABLE assignments (task_id INTEGER NOT NULL REFERENCES tasks(id), annotator_id INTEGER NOT NULL
            REFERENCES annotators(id), started_at REAL NOT NULL, finished_at REAL, PRIMARY KEY (task_id, annotator_id));
        INSERT INTO annotators VALUES (1, 'old1', 'plain-token-of-old1', 0);
        INSERT INTO tasks VALUES (1, 'interactive', 's', 'pal', 'joint', '{"criteria": ["Overall"], "card": {}}');
        INSERT INTO assignments VALUES (1, 1, 0, NULL);""")
    old.commit()
    old.close()
    store = Store(str(db_path))
    assert {"id": 1, "name": "old1"}.items() <= store.annotator_by_token("plain-token-of-old1").items()
    assert "plain-token-of-old1" not in open(db_path, "rb").read().decode("latin-1")
    assert store.assignment(1, 1)["skip_reason"] is None
    store.close()
    assert Store(str(db_path)).annotator_by_token("plain-token-of-old1")["id"] == 1  # migrating twice is harmless


def test_task_ids_out_of_range_are_404(inputs, tmp_path, tiny_blender_dir):
    client, tokens, _ = study(inputs, tmp_path, tiny_blender_dir)
    login(client, tokens["ann1"])
    for task_id in ("999", str(2**63), "9" * 40):
        page = client.get(f"/task/{task_id}")
        assert page.status_code == 404 and 'id="back"' in page.get_data(as_text=True), task_id  # links back
        assert post(client, f"/task/{task_id}/say", {"side": "A", "text": "x"}).status_code == 404


def test_message_racing_the_judgment_is_stored_before_it_or_refused(inputs, tmp_path, tiny_blender_dir):
    """Two threads, one sending a message and one judging the same task at the same moment: the message is either
    stored before the judgment or refused; never stored after it. Repeated on several tasks."""
    client, tokens, args = study(inputs, tmp_path, tiny_blender_dir, "--min_turns", "1", "--num_dialogues", "3")
    app = client.application
    outcomes = []
    for _ in range(3):
        url = task_url(client, tokens["ann1"])
        chat(client, url, "A", "first")
        chat(client, url, "B", "first")
        with client.session_transaction() as session:
            cookie_session = dict(session)
        clients = [app.test_client(), app.test_client()]
        for c in clients:
            with c.session_transaction() as session:
                session.update(cookie_session)  # two tabs of the same browser
        barrier = threading.Barrier(2)
        results = {}

        def send():
            barrier.wait()
            results["say"] = chat(clients[0], url, "A", "sent while judging").status_code

        def judge():
            barrier.wait()
            results["judge"] = judge_all(clients[1], url, "A").status_code

        threads = [threading.Thread(target=send), threading.Thread(target=judge)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        outcomes.append((results["say"], results["judge"]))
    assert all(judge in (200, 303) and say in (303, 400, 409) for say, judge in outcomes), outcomes  # 200: all done
    db = sqlite3.connect(args.db)
    late = db.execute("SELECT COUNT(*) FROM messages m JOIN assignments a USING (task_id, annotator_id) "
                      "WHERE m.created_at > a.finished_at").fetchone()[0]
    stored = db.execute("SELECT COUNT(*) FROM messages WHERE text = 'sent while judging'").fetchone()[0]
    assert late == 0 and stored == sum(say == 303 for say, _ in outcomes)


def test_stale_assignment_is_released_and_quota_shown(inputs, tmp_path, tiny_blender_dir):
    """With one annotator per task, a task opened and abandoned is offered to the next annotator once it has been
    idle longer than --assignment_timeout; each annotator's home page counts what is still open to them."""
    client, tokens, args = study(inputs, tmp_path, tiny_blender_dir, "--annotators_per_task", "1",
                                 "--num_dialogues", "2", "--assignment_timeout", "30")
    first = task_url(client, tokens["ann1"])  # ann1 opens task 1 and leaves
    second = task_url(client, tokens["ann2"])
    assert second != first
    login(client, tokens["ann2"])
    assert "0 done of 1" in client.get("/home").get_data(as_text=True)  # task 1 is ann1's: not counted
    assert post(client, second + "/skip", {"reason": "the situation is unclear"}).status_code == 200  # done page
    assert "1 done of 1" in client.get("/home").get_data(as_text=True)
    db = sqlite3.connect(args.db)
    with db:
        db.execute("UPDATE assignments SET started_at = started_at - 3600, last_active_at = last_active_at - 3600 "
                   "WHERE task_id = 1")  # ann1 has been away for an hour
    assert "1 done of 2" in client.get("/home").get_data(as_text=True)
    assert task_url(client) == first  # released to ann2
    reasons = [r[0] for r in db.execute("SELECT skip_reason FROM assignments WHERE skip_reason IS NOT NULL")]
    assert reasons == ["the situation is unclear"]


def test_invisible_and_bidi_text_and_export_cells(inputs, tmp_path, tiny_blender_dir):
    """A message of zero-width spaces is no turn; bidi overrides are removed; the CSV export escapes formulas and
    control characters; the judgment's comment is stored and exported."""
    from human_eval import admin
    client, tokens, args = study(inputs, tmp_path, tiny_blender_dir, "--min_turns", "1")
    url = task_url(client, tokens["ann1"])
    for invisible in ("\u200b\u200b\u200b", " \t ", "\u202e\u2066", "\ufeff\u0301"):
        refused = chat(client, url, "A", invisible)
        assert refused.status_code == 400 and "visible characters" in refused.get_data(as_text=True)
    assert chat(client, url, "A", "=HYPERLINK(\"http://x\",\"y\")").status_code == 303
    assert chat(client, url, "B", "a\u202egnp.exe b\x07").status_code == 303
    assert judge_all(client, url, "A", comment="@SUM(1) fine").status_code == 303
    db = sqlite3.connect(args.db)
    texts = [r[0] for r in db.execute("SELECT text FROM messages WHERE speaker = 'usr' ORDER BY id")]
    assert texts == ["=HYPERLINK(\"http://x\",\"y\")", "agnp.exe b"]
    admin.main(["--db", args.db, "export", str(tmp_path / "export")])
    messages = (tmp_path / "export" / "messages.csv").read_text()
    assert "'=HYPERLINK" in messages and ",=HYPERLINK" not in messages and '"=HYPERLINK' not in messages
    assignments = (tmp_path / "export" / "assignments.csv").read_text()
    assert "'@SUM(1) fine" in assignments
    assert json.loads((tmp_path / "export" / "assignments.json").read_text())[0]["comment"] == "@SUM(1) fine"
    from human_eval.text import spreadsheet_cell
    assert [spreadsheet_cell(v) for v in ("-1", "+1", "\t=1", "\r=1", "\x01=1", "a=1", 3)] == \
        ["'-1", "'+1", "'\t=1", "'\r=1", "'=1", "a=1", 3]


def test_chat_mode_reaches_every_system_and_counts_own_conversations(inputs, tmp_path, tiny_blender_dir):
    client, tokens, _ = study(inputs, tmp_path, tiny_blender_dir, "--mode", "chat")
    login(client, tokens["ann1"])
    home = client.get("/home").get_data(as_text=True)
    assert '<option value="pal"' in home and '<option value="joint"' in home
    urls = {system: new_chat(client, tokens["ann1"], system) for system in ("pal", "joint")}
    for system, url in urls.items():
        assert f"chat with {system}" in client.get(url).get_data(as_text=True)
    assert chat(client, urls["joint"], "A", "hello joint").status_code == 303
    closed = chat(client, urls["pal"], "A", "hello again")  # replaced by the joint conversation: closed
    assert closed.status_code == 400 and "closed" in closed.get_data(as_text=True)
    other = client.application.test_client()
    new_chat(other, tokens["ann2"], "pal")
    assert "Your conversations so far: 1." in other.get("/home").get_data(as_text=True)
    login(client, tokens["ann1"])
    assert "Your conversations so far: 2." in client.get("/home").get_data(as_text=True)


def test_printed_links_use_a_reachable_address(tmp_path):
    parse = serve.build_parser().parse_args
    assert serve.public_base_url(parse(["--host", "127.0.0.1"]), 5005) == "http://127.0.0.1:5005"
    wildcard = serve.public_base_url(parse(["--host", "0.0.0.0"]), 5005)
    assert "0.0.0.0" not in wildcard and wildcard.endswith(":5005")  # this machine's address instead
    assert serve.public_base_url(parse(["--host", "0.0.0.0", "--base_url", "https://eval.example.org/study/"]),
                                 5005) == "https://eval.example.org/study"
    with pytest.raises(UserError, match="expected http://HOST:PORT"):
        parse(["--base_url", "eval.example.org"])


def test_static_mode_shows_and_asks_about_the_persona_where_known(inputs, tmp_path):
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "gen.json").write_text(json.dumps(
            [{"sample_id": 0, "response": "r", "generation": f"{name} says hi", "persona": persona}
             for persona in ("<input> i am a nurse. <input>", "")]))
    args = serve.build_parser().parse_args(["--mode", "static", "--db", str(tmp_path / "s.db"), "--results",
                                            f"one={tmp_path / 'one'}", "--results", f"two={tmp_path / 'two'}"])
    criteria = serve.task_builders.load_criteria(args.criteria)
    tasks = serve.build_tasks(args, criteria)
    assert [t["content"]["persona"] for t in tasks] == ["i am a nurse.", None]
    assert ["Personalisation" in t["content"]["criteria"] for t in tasks] == [True, False]


def test_new_link_and_revoke_end_the_annotators_open_sessions(inputs, tmp_path, tiny_blender_dir, capsys):
    from human_eval import admin
    client, tokens, args = study(inputs, tmp_path, tiny_blender_dir)
    other = client.application.test_client()
    url = task_url(client, tokens["ann1"])
    task_url(other, tokens["ann2"])
    assert client.get("/home").status_code == 200 and client.get(url).status_code == 200
    admin.main(["--db", args.db, "--base_url", "http://127.0.0.1:5001", "new-link", "ann1"])
    new_token = capsys.readouterr().out.strip().rstrip("/").rsplit("/", 1)[1]
    response = client.get(url)  # the open session no longer reads ann1's pages ...
    assert response.status_code == 403 and "replaced or revoked" in response.get_data(as_text=True)
    assert client.get("/home").status_code == 403  # ... (its cookie was cleared on the way) ...
    assert post(client, "/next").status_code == 403  # ... nor takes tasks
    assert client.get(f"/a/{tokens['ann1']}/").status_code == 404
    assert task_url(client, new_token) == url and client.get("/home").status_code == 200  # the new link works
    assert other.get("/home").status_code == 200  # ann2's session is untouched
    admin.main(["--db", args.db, "revoke", "ann1"])
    assert "ann1: link revoked, open sessions ended" in capsys.readouterr().out
    assert client.get("/home").status_code == 403 and client.get(f"/a/{new_token}/").status_code == 404
    assert other.get("/home").status_code == 200
    with pytest.raises(UserError, match="no annotator 'nobody'"):
        admin.main(["--db", args.db, "revoke", "nobody"])


def form_key(page, form_id):
    """The one-time key of a form of a rendered page."""
    form = page[page.index(f'id="{form_id}"'):]
    return re.search(r'name="form_key" value="([^"]+)"', form[:form.index("</form>")]).group(1)


def test_a_replayed_form_is_stored_once(inputs, tmp_path, tiny_blender_dir):
    client, tokens, args = study(inputs, tmp_path, tiny_blender_dir)
    url = task_url(client, tokens["ann1"])
    page = client.get(url).get_data(as_text=True)
    key = form_key(page, "form-A")
    assert key != form_key(page, "form-B") and key != form_key(client.get(url).get_data(as_text=True), "form-A")
    answers = [post(client, url + "/say", {"side": "A", "text": "hello there", "form_key": key}) for _ in range(3)]
    assert [a.status_code for a in answers] == [303] * 3 and len({a.headers["Location"] for a in answers}) == 1
    store = Store(args.db)
    task_id = int(url.rsplit("/", 1)[1])
    assert [m["speaker"] for m in store.messages(task_id, 1, "A")] == ["usr", "sys"]
    fresh = form_key(client.get(url).get_data(as_text=True), "form-A")
    post(client, url + "/say", {"side": "A", "text": "hello there", "form_key": fresh})  # a new form: a new message
    assert [m["text"] for m in store.messages(task_id, 1, "A") if m["speaker"] == "usr"] == ["hello there"] * 2
    store.close()


def test_a_replayed_new_conversation_form_opens_one_conversation(inputs, tmp_path, tiny_blender_dir):
    client, tokens, args = study(inputs, tmp_path, tiny_blender_dir, "--mode", "chat")
    login(client, tokens["ann1"])
    key = form_key(client.get("/home").get_data(as_text=True), "new-chat")
    first, again = (post(client, "/chat/new", {"system": "pal", "form_key": key}) for _ in range(2))
    assert first.status_code == again.status_code == 303 and first.headers["Location"] == again.headers["Location"]
    store = Store(args.db)
    assert store.conversations(1) == 1
    store.close()
