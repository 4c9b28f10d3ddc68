"""Automatic evaluation: role cards, the simulated seeker's turns, the judge's swap logic (scripted judges), the
judge's agreement statistics against hand-computed values, and a resumed study against an uninterrupted one.

The seekers, supporters and judges here are small classes with the system layer's `reply` method whose answers are
scripted (tests/helpers/auto_eval_scripted.py), so the protocol's bookkeeping can be checked exactly; the full loop with real
models is in test_auto_eval_run.py.
"""
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from palkit.cli import UserError
from chat_systems import Capabilities

from auto_eval import cli, judge as judging, role_cards, seeker as seeker_mod, store as auto_store, study
from auto_eval.seeker import load_seeker_prompt
from human_eval.agreement import cohen_kappa, percent_agreement
from auto_eval.analyze import main as analyze_main
from human_eval.app import Settings, create_app
from helpers.auto_eval_scripted import (CRITERIA, Scripted, better_judge, judge_with, make_study, summary_of, supporter,
                                       write_test_file)
from helpers.human_eval import CARDS
from helpers.pal_models import DIALOGUES

TESTS = Path(__file__).resolve().parent


# ---- role cards ---------------------------------------------------------------------------------------------------
def test_role_cards_from_test_file_and_back(tmp_path):
    cards = role_cards.cards_from_test_file(write_test_file(tmp_path), 5)
    assert len(cards) == len(DIALOGUES)
    assert cards[0] == {"id": "test.txt#0", "emotion": "anxiety", "problem": "job crisis",
                        "situation": CARDS[0][2], "first_utterance": "hi, i have been really worried lately.",
                        "persona": ["i have two kids.", "i work at a company."],
                        "seeker_turns": [t["text"] for t in DIALOGUES[0]["dialog"] if t["speaker"] == "usr"]}
    assert role_cards.cards_from_test_file(write_test_file(tmp_path), 1, with_persona=False)[0]["persona"] == []
    original = [{"emotion_type": d["emotion_type"], "problem_type": d["problem_type"], "situation": d["situation"],
                 "dialog": [{"speaker": {"usr": "seeker", "sys": "supporter"}[t["speaker"]], "content": t["text"],
                             "annotation": {}} for t in d["dialog"]]}
                for d in map(json.loads, open(write_test_file(tmp_path)))]
    (tmp_path / "ESConv.json").write_text(json.dumps(original))
    from_esconv = role_cards.cards_from_test_file(str(tmp_path / "ESConv.json"), 5)
    def without(c):
        return {k: v for k, v in c.items() if k not in ("id", "persona", "seeker_turns")}
    assert [without(c) for c in from_esconv] == [without(c) for c in cards]  # the ESConv form gives the same cards
    assert all(c["persona"] == [] for c in from_esconv) and from_esconv[0]["id"] == "ESConv.json#0"
    path = tmp_path / "cards.json"
    cli.main(["cards", "--test_file", write_test_file(tmp_path), "--num_cards", "2", "--output", str(path)])
    data = json.loads(path.read_text())
    data["cards"][1]["situation"] = "edited by hand"
    del data["cards"][1]["persona"]
    path.write_text(json.dumps(data))
    loaded = role_cards.load_cards(str(path))
    assert loaded[1]["situation"] == "edited by hand" and loaded[1]["persona"] == []


@pytest.mark.parametrize("content, message", [
    ({"cards": []}, "expected"),
    ({"cards": [{"emotion": "x", "problem": "y", "situation": "z"}]}, "cards[0] needs a non-empty string "
                                                                      "'first_utterance'"),
    ({"cards": [{"emotion": "x", "problem": "y", "situation": "z", "first_utterance": "u", "persona": "s"}]},
     "'persona' must be a list"),
])
def test_bad_card_files(tmp_path, content, message):
    path = tmp_path / "cards.json"
    path.write_text(json.dumps(content))
    with pytest.raises(UserError, match=re.escape(message)):
        role_cards.load_cards(str(path))


# ---- the simulated seeker -----------------------------------------------------------------------------------------
def test_simulated_conversations_in_the_study_schema(tmp_path, capsys):
    store, systems, seeker = make_study(tmp_path, turns=4, cards=2)
    token = re.search(r"seeker:scripted-seeker: .* at /a/([^/]+)/", capsys.readouterr().out).group(1)
    tasks = study.interactive_tasks_in(store)
    assert len(tasks) == 2 and {t["system_a"] for t in tasks} <= {"good", "bad"}
    annotator = store.db.execute("SELECT id FROM annotators WHERE name = 'seeker:scripted-seeker'").fetchone()[0]
    for task in tasks:
        assert store.assignment(task["id"], annotator)["finished_at"] is not None
        for side in "AB":
            messages = store.messages(task["id"], annotator, side)
            system = task[f"system_{side.lower()}"]
            assert [m["speaker"] for m in messages] == ["usr", "sys"] * 3  # the 4th turn broke twice: ended
            assert {m["system"] for m in messages} == {system}
            assert messages[0]["text"] == task["content"]["role_card"]["first_utterance"]
            assert messages[2]["text"] == "I still feel bad (1)"  # "Seeker:" stripped
            assert messages[4]["text"] == "I still feel bad (2)"  # re-prompted once, then in role
            assert messages[1]["text"] == f"{system} answers {messages[0]['text']!r}"
    rows = store.db.execute("SELECT turn, seeker_calls, role_break FROM auto_turns ORDER BY task_id, side, "
                            "turn").fetchall()
    assert [tuple(r)[:2] for r in rows[:3]] == [(0, 0), (1, 1), (2, 2)]
    assert rows[0][2] is None and rows[1][2] is None and "matches" in rows[2][2]  # why turn 2 was asked again
    endings = store.db.execute("SELECT turn, reason, text, seeker_calls FROM auto_endings").fetchall()
    assert [tuple(e) for e in endings] == [(3, endings[0][1], "I'm here to help you.", 2)] * 4  # 2 tasks x 2 sides
    assert "matches" in endings[0][1]
    assert {t["id"] for t, _ in auto_store.judgeable(store)} == {1, 2}  # ended conversations are judged as they are
    # the human study's app shows the simulated conversations through the seeker annotator's link
    client = create_app(store.path, Settings(), CRITERIA).test_client()
    client.get(f"/a/{token}/", follow_redirects=True)  # the link opens the annotator's session where the app has one
    pages = [client.get(url).get_data(as_text=True) for url in (f"/task/{tasks[0]['id']}",
                                                                f"/a/{token}/task/{tasks[0]['id']}")]
    assert any("I still feel bad (2)" in p and "good answers" in p and "bad answers" in p for p in pages)
    # the seeker's view: the role card as system message, its own turns 'assistant', the supporter's 'user'
    messages, _ = seeker.calls[0]
    assert messages[0]["role"] == "system" and "job crisis" in messages[0]["content"]
    assert "i have two kids." in messages[0]["content"]
    assert [m["role"] for m in messages[1:]] == ["assistant", "user"]
    # seeded per (card, system, turn): the same seed for a card's turn with a system, whichever side it is on
    seeds = {}
    for system in systems.values():
        for messages, seed in system.calls:
            seeds.setdefault((system.name, messages[1]["content"], len(messages)), set()).add(seed)
    assert all(len(s) == 1 for s in seeds.values())


# ---- the judge ------------------------------------------------------------------------------------------------------
def test_judge_always_a_flips_every_pair(tmp_path):
    store, _, _ = make_study(tmp_path)
    judge_with(store, lambda messages: "A")
    (key, by_criterion), = summary_of(store).items()
    assert key == ("judge", "bad", "good")
    for s in by_criterion.values():
        assert s["units"] == 2 and s["ties"] == 2 and s["wins"] == s["losses"] == s["invalid"] == 0
        assert s["position_consistency"] == 0 and s["flips"] == 2 and s["first_shown_share"] == 1
    rows = store.db.execute("SELECT COUNT(*), COUNT(DISTINCT shown_first) FROM auto_judgments").fetchone()
    assert tuple(rows) == (2 * 2 * len(CRITERIA), 2)  # 2 tasks x 2 orders x 6 criteria (cards have a persona)


def test_judge_that_prefers_the_better_system_is_consistent(tmp_path):
    store, _, _ = make_study(tmp_path)
    judge = judge_with(store, better_judge("good"))
    for s in summary_of(store)[("judge", "bad", "good")].values():
        assert (s["wins"], s["ties"], s["losses"]) == (0, 0, 2)  # "good" (Y) wins everything
        assert s["position_consistency"] == 1 and s["flips"] == 0 and s["first_shown_share"] == 0.5
    # the judge saw the question of each criterion, as the human study's file words it
    questions = {c["question"] for c in CRITERIA}
    asked = {q for messages, _ in judge.calls for q in questions if q in messages[1]["content"]}
    assert asked == questions


def test_invalid_answers_are_retried_once_then_invalid_never_a_tie(tmp_path):
    store, _, _ = make_study(tmp_path, cards=1)
    judge = judge_with(store, lambda messages: "B" if len(messages) > 2 and "fluent" in messages[1]["content"]
                       else "maybe")  # unreadable at first; on the retry, readable for Fluency only
    rows = {(r[0], r[1]): (r[2], r[3]) for r in store.db.execute(
        "SELECT criterion, shown_first, verdict, attempts FROM auto_judgments")}
    assert rows["Fluency", "A"] == ("B", 2) and rows["Fluency", "B"] == ("A", 2)  # read on the retry
    assert rows["Overall", "A"] == ("invalid", 2)
    assert len(judge.calls) == 2 * len(rows)
    by_criterion = summary_of(store)[("judge", "bad", "good")]
    assert by_criterion["Overall"]["invalid"] == 1 and by_criterion["Overall"]["ties"] == 0
    assert by_criterion["Fluency"]["ties"] == 1 and by_criterion["Fluency"]["flips"] == 1


def test_criterion_wording_per_mode():
    assert judging.question_text({"question": "plain?"}, "static") == "plain?"
    both = {"question": {"interactive": "chat?", "static": "reply?"}}
    assert judging.question_text(both, "static") == "reply?" and judging.question_text(both, "interactive") == "chat?"
    loaded = {"question": "chat?", "questions": {"interactive": "chat?", "static": "reply?"}}
    assert judging.question_text(loaded, "static") == "reply?"


def test_verdict_parsing():
    cases = {"A": "A", "B.": "B", "**Tie**": "tie", "Answer: B": "B", "The answer is A": "A", "Supporter A is better":
             "A", "It's a tie": "tie", "A good supporter listens": None, "Neither": None, "": None, "AB": None, "A, B or tie.": None,
             "A or B": None, "A/B": None, "A, because B repeats itself": "A", "B, or so": "B"}
    assert {text: judging.parse_verdict(text) for text in cases} == cases


# ---- agreement ------------------------------------------------------------------------------------------------------
def test_cohen_kappa_known_example():
    # 50 items, rater 1 yes/rater 2 yes 20, yes/no 5, no/yes 10, no/no 15: p_o = 0.7, p_e = 0.5*0.6+0.5*0.4 = 0.5
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    assert percent_agreement(pairs) == pytest.approx(0.7)
    assert cohen_kappa(pairs) == pytest.approx(0.4)
    assert cohen_kappa([("a", "a")] * 3) is None and cohen_kappa([]) is None
    assert cohen_kappa([("a", "b"), ("b", "a")]) == pytest.approx(-1)


def test_judge_against_humans_on_the_same_conversations(tmp_path):
    """Two humans judged each of 3 tasks (their own conversations); the judge judged the same conversations."""
    store = auto_store.open_store(str(tmp_path / "s.db"))
    store.add_tasks([{"mode": "interactive", "source": f"t{i}", "system_a": a, "system_b": b,
                      "content": {"criteria": ["Overall"], "card": {}}}
                     for i, (a, b) in enumerate([("x", "y"), ("y", "x"), ("x", "y")])])
    for name in ("h1", "h2"):
        store.add_annotator(name)
    human = {(1, 1): "A", (1, 2): "A", (2, 1): "A", (2, 2): "tie", (3, 1): "B", (3, 2): "A"}  # task 2: A is y
    judge = {(1, 1): ("A", "A"), (1, 2): ("A", "B"), (2, 1): ("A", "A"), (2, 2): ("B", "B"), (3, 1): ("B", "B"),
             (3, 2): ("B", "B")}  # (shown first A, shown first B)
    for (task, annotator), choice in human.items():
        store.db.execute("INSERT INTO assignments (task_id, annotator_id, started_at) VALUES (?, ?, 0)",
                         (task, annotator))
        store.judge(store.task(task), annotator, {"Overall": choice})
        for first, verdict in zip("AB", judge[task, annotator]):
            auto_store.add_judgment(store, task, annotator, "j", first, "Overall", verdict, [verdict], {}, 0.0)
    s = summary_of(store)[("j", "x", "y")]["Overall"]
    # judge labels (x's view): t1 h1 win, h2 tie (flip); t2 h1 loss, h2 win; t3 h1 loss, h2 loss
    # human labels:             t1 h1 win, h2 win;        t2 h1 loss, h2 tie; t3 h1 loss, h2 win
    assert (s["wins"], s["ties"], s["losses"], s["flips"]) == (2, 1, 3, 1)
    h1, h2 = s["vs_humans"]["h1"], s["vs_humans"]["h2"]
    assert (h1["n"], h1["percent"], h1["kappa"]) == (3, 1.0, 1.0)
    # h2 pairs (judge, human): (tie, win), (win, tie), (loss, win): p_o 0; p_e = (1*1 [tie] + 1*2 [win]) / 9 = 1/3
    assert h2["percent"] == 0 and h2["kappa"] == pytest.approx((0 - 1 / 3) / (1 - 1 / 3))
    assert h2["n_without_ties"] == 1 and h2["percent_without_ties"] == 0
    # majorities: t1 judge (win, tie) none; t2 judge (loss, win) none; t3 judge loss, humans (loss, win) none
    assert s["vs_human_majority"]["n"] == 0
    # human-human on the 3 tasks: (win, win), (loss, tie), (loss, win): p_o 1/3;
    # rater 1 labels win, loss, loss; rater 2 win, tie, win: p_e = (1*2 [win]) / 9 = 2/9
    hh = s["human_human"]
    assert hh["n"] == 3 and hh["percent"] == pytest.approx(1 / 3)
    assert hh["kappa"] == pytest.approx((1 / 3 - 2 / 9) / (1 - 2 / 9))
    assert (hh["n_without_ties"], hh["percent_without_ties"]) == (2, 0.5)
    store.close()
    analyze_main([str(tmp_path / "s.db")])
    md = (tmp_path / "s.judge.md").read_text()
    assert "### judge j: x vs y" in md and "| Overall | j vs h1" not in md and "| Overall | h1 | 100% (3) |" in md
    assert (tmp_path / "s.judge.png").read_bytes()[:4] == b"\x89PNG"


# ---- resuming -------------------------------------------------------------------------------------------------------
def study_rows(path):
    db = sqlite3.connect(path)
    try:
        return {"messages": db.execute("SELECT task_id, annotator_id, side, system, speaker, text, strategy, persona "
                                       "FROM messages ORDER BY id").fetchall(),
                "turns": db.execute("SELECT task_id, side, turn, seeker_calls, role_break, seeker_usage, "
                                    "supporter_usage FROM auto_turns ORDER BY task_id, side, turn").fetchall(),
                "judgments": db.execute("SELECT task_id, conversation_of, judge, shown_first, criterion, verdict, "
                                        "answers, attempts FROM auto_judgments ORDER BY task_id, conversation_of, "
                                        "judge, shown_first, criterion").fetchall(),
                "tasks": db.execute("SELECT * FROM tasks ORDER BY id").fetchall()}
    finally:
        db.close()


def run_scripted(folder, kill_at):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "helpers.auto_eval_scripted", str(folder), str(kill_at)],
                          env=env, capture_output=True, text=True, timeout=300)


def test_killed_study_resumes_to_the_rows_of_an_uninterrupted_one(tmp_path):
    """SIGKILL during the simulation and during the judging; the same command again: the same rows, no
    duplicate (24 calls simulate the 2 tasks' 12 turns, 24 judge them)."""
    full = tmp_path / "full"
    full.mkdir()
    assert run_scripted(full, 0).returncode == 0
    expected = study_rows(str(full / "study.db"))
    assert len(expected["messages"]) == 24 and len(expected["judgments"]) == 24
    for kill_at in (11, 35):
        folder = tmp_path / f"killed_at_{kill_at}"
        folder.mkdir()
        assert run_scripted(folder, kill_at).returncode == -signal.SIGKILL
        partial = study_rows(str(folder / "study.db"))
        assert len(partial["messages"]) + len(partial["judgments"]) < 48
        assert run_scripted(folder, 0).returncode == 0
        assert study_rows(str(folder / "study.db")) == expected, kill_at


# ---- bad input ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra, message", [
    (["--system", "name=a,llm=smollm2"], "at least two --system"),
    (["--system", "name=a,llm=smollm2", "--system", "name=a,llm=smollm2"], "names must differ"),
    (["--system", "name=a,llm=smollm2", "--system", "name=b,llm=smollm2", "--no_cards"], "needs --cards FILE or"),
    (["--system", "name=a,llm=smollm2", "--system", "name=b,llm=smollm2", "--bad_prompt"], "unknown placeholder"),
])
def test_bad_runs_are_one_line_errors_before_anything_loads(tmp_path, extra, message):
    (tmp_path / "seeker.json").write_text(json.dumps({**json.loads(open(judging.SEEKER_PROMPT).read()),
                                                      "system": "You feel {mood}."}))
    args = ["run", "--db", str(tmp_path / "s.db"), "--seeker", "name=s,llm=smollm2", "--judge", "name=j,llm=smollm2"]
    args += [] if "--no_cards" in extra else ["--test_file", write_test_file(tmp_path)]
    args += ["--seeker_prompt", str(tmp_path / "seeker.json")] if "--bad_prompt" in extra else []
    with pytest.raises(UserError, match=re.escape(message)):
        cli.main(args + [a for a in extra if a not in ("--no_cards", "--bad_prompt")])
    assert not (tmp_path / "s.db").exists()


# ---- the seeker checked ---------------------------------------------------------------------------------------------
def test_a_seeker_that_repeats_is_asked_again_then_its_conversation_ends(tmp_path):
    """Turn 1 repeats the first utterance (asked again: fine); turn 2 repeats turn 1 twice: the conversation ends
    there, its reason recorded and counted for the seeker model; the report puts its turns beside the real ones."""
    from auto_eval import analyze
    cards = role_cards.cards_from_test_file(write_test_file(tmp_path), 1)
    store = study.open_study(str(tmp_path / "study.db"), {"mode": "simulated", "cards": cards},
                             study.simulation_tasks(cards, ["good", "bad"], CRITERIA, 13, "cards.json"))

    def answer(messages):
        own = [m["content"] for m in messages if m["role"] == "assistant"]
        if len(own) == 1 and "Remember" not in messages[0]["content"]:
            return own[-1].upper()  # the first utterance again (case aside)
        return own[-1] if len(own) == 2 else "Is it normal that I feel this way? I can't sleep."
    seeker = Scripted("repeater", answer)
    study.simulate(store, study.interactive_tasks_in(store), {n: supporter(n) for n in ("good", "bad")}, seeker,
                   seeker.name, load_seeker_prompt(judging.SEEKER_PROMPT), 4, 13, progress=False)
    turns = store.db.execute("SELECT side, turn, role_break FROM auto_turns ORDER BY side, turn").fetchall()
    assert [tuple(t) for t in turns] == [(s, t, r) for s in "AB" for t, r in ((0, None), (1, seeker_mod.REPEAT))]
    endings = store.db.execute("SELECT side, turn, reason, seeker_calls FROM auto_endings ORDER BY side").fetchall()
    assert [tuple(e) for e in endings] == [(s, 2, seeker_mod.REPEAT, 2) for s in "AB"]
    (summary,) = analyze.seeker_summary(store)
    assert summary["asked_again"] == {"repeat": 2} and summary["ended"] == {"repeat": 2}
    assert summary["conversations"] == 2 and summary["turns"] == 2
    simulated = ["Is it normal that I feel this way? I can't sleep."] * 2
    assert summary["simulated"] == seeker_mod.style(simulated)
    assert summary["simulated"]["question_share"] == 1 and summary["simulated"]["first_person_share"] == 1
    assert summary["simulated"]["distinct_2"] == pytest.approx(9 / 18)  # 9 bigrams per turn, the same twice
    real = cards[0]["seeker_turns"][1:]
    assert summary["real"] == seeker_mod.style(real) and summary["real"]["turns"] == len(real)
    assert summary["real"]["words_per_turn"] == pytest.approx(sum(len(t.split()) for t in real) / len(real))
    md = analyze.seeker_markdown([summary])
    assert "| repeater | 2 | 2 | 0 / 2 / 0 | 0 / 2 / 0 |" in md and "ESConv seekers (real, same cards)" in md
    # resumed: nothing more is asked of an ended conversation
    calls = len(seeker.calls)
    study.simulate(store, study.interactive_tasks_in(store), {n: supporter(n) for n in ("good", "bad")}, seeker,
                   seeker.name, load_seeker_prompt(judging.SEEKER_PROMPT), 4, 13, progress=False)
    assert len(seeker.calls) == calls
    store.close()


# ---- the judge's own bugs -------------------------------------------------------------------------------------------
def test_a_judge_is_greedy_unless_told_otherwise_and_usage_counts_a_retry_once(tmp_path):
    class Recording(Scripted):
        def reply(self, messages, *, seed=None, temperature=None, top_p=None, max_tokens=None):
            self.temperatures.append(temperature)
            reply = super().reply(messages, seed=seed, temperature=temperature, top_p=top_p, max_tokens=max_tokens)
            reply.usage = {"prompt_tokens": 100 if len(messages) == 2 else 100 + 3 + 20, "completion_tokens": 3}
            return reply
    judge = Recording("j", lambda m: "B" if len(m) > 2 else "hmm")
    judge.temperatures = []
    prompt = judging.load_judge_prompt(judging.JUDGE_PROMPT)
    first = judging.side([{"speaker": "usr", "text": "hi"}, {"speaker": "sys", "text": "hello"}], {})
    (answer,) = judging.ask_text(judge, [judging.judge_messages(prompt, "Which?", first, first)], prompt, [1], None)
    assert judge.temperatures == [0.0, 0.0]  # temperature None is greedy, never the LLM's sampling default
    assert answer.verdict == "B" and answer.calls == 2 and answer.answers == ["hmm", "B"]
    assert answer.usage == {"prompt_tokens": 120, "completion_tokens": 6}  # the retry's 20 new prompt tokens only
    assert judging.to_task_side("invalid", "B") == "invalid" and judging.to_task_side("tie", "B") == "tie"
    assert judging.to_task_side("A", "B") == "B"
    with pytest.raises(ValueError):
        judging.to_task_side("maybe", "B")


def test_an_unreadable_answer_of_a_judge_with_probabilities_gets_a_constrained_answer(tmp_path):
    class WithProbabilities(Scripted):
        capabilities = Capabilities(next_token_logprobs=True)

        def next_token_logprobs(self, conversations, candidates, single_token=False):
            return [{"A": -3.0, "B": -0.5, "tie": -2.0} for _ in conversations]
    judge = WithProbabilities("j", lambda m: "You are a single letter.")
    prompt = judging.load_judge_prompt(judging.JUDGE_PROMPT)
    first = judging.side([{"speaker": "usr", "text": "hi"}], {})
    (answer,) = judging.ask_text(judge, [judging.judge_messages(prompt, "Which?", first, first)], prompt, [1])
    assert answer.verdict == "B" and answer.answers == ["You are a single letter.", "(constrained) B"]
    assert len(judge.calls) == 1 and answer.probabilities["B"] > answer.probabilities["tie"]


def test_judge_messages_one_entry_point_for_every_material():
    prompt = judging.load_judge_prompt(judging.JUDGE_PROMPT, judging.VALIDATION_PROMPT)
    card = {"emotion_type": "anxiety", "problem_type": "job crisis", "situation": "laid off"}
    one = judging.side([{"speaker": "usr", "text": "u1"}, {"speaker": "sys", "text": "s1"}], card)
    two = judging.side([{"speaker": "usr", "text": "u2"}, {"speaker": "sys", "text": "s2"}], card)
    same = judging.judge_messages(prompt, "Q?", one, two)[1]["content"]  # one help-seeker: the study's template
    assert same.startswith("The help-seeker feels anxiety about job crisis") and same.endswith("Q?\nGive your verdict "
                                                                                                 "as a single letter (A or B), or the word tie.\nVerdict:")
    assert same.index("Seeker: u1") < same.index("Seeker: u2")
    other = judging.side(two["transcript"], {"emotion": "sadness", "problem": "breakup", "situation": "alone"})
    both = judging.judge_messages(prompt, "Q?", other, one)  # two help-seekers: each with its own card
    assert "Help-seeker A feels sadness about breakup" in both[1]["content"]
    assert "Help-seeker B feels anxiety about job crisis" in both[1]["content"]
    assert both[0]["content"] == json.loads(open(judging.VALIDATION_PROMPT).read())["system"]
    static = judging.judge_messages(prompt, "Q?", judging.side([{"speaker": "sys", "text": "r1"}]),
                                    judging.side([{"speaker": "sys", "text": "r2"}]),
                                    history=[{"speaker": "usr", "text": "h"}])
    assert "Next reply of supporter A: r1\nNext reply of supporter B: r2" in static[1]["content"]


# ---- the reports say what they mean ---------------------------------------------------------------------------------
def test_the_chart_and_table_tell_a_tie_answer_from_an_order_flip(tmp_path):
    store, _, _ = make_study(tmp_path)
    judge_with(store, lambda messages: "tie", name="says_tie")
    judge_with(store, lambda messages: "A", name="follows_position")
    summary = summary_of(store)
    for s in summary[("says_tie", "bad", "good")].values():
        assert (s["ties"], s["tie_answers"], s["order_flips"]) == (2, 2, 0) and s["position_consistency"] == 1
    for s in summary[("follows_position", "bad", "good")].values():
        assert (s["ties"], s["tie_answers"], s["order_flips"]) == (2, 0, 2) and s["position_consistency"] == 0
    store.close()
    analyze_main([str(tmp_path / "study.db")])
    md = (tmp_path / "study.judge.md").read_text()
    assert "| Overall | 0 | 2 (2 / 0) | 0 |" in md and "| Overall | 0 | 2 (0 / 2) | 0 |" in md
    assert "tie (said / order flip)" in md


def test_human_analyze_of_a_judge_only_database_points_to_the_judges_tables(tmp_path, capsys):
    from human_eval.analyze import main as human_analyze
    store, _, _ = make_study(tmp_path)
    judge_with(store, better_judge("good"))
    store.close()
    human_analyze([str(tmp_path / "study.db")])
    out = capsys.readouterr().out
    assert "No human judgments in" in out and f"RUN/python -m auto_eval.analyze {tmp_path / 'study.db'}" in out
    assert not (tmp_path / "study.md").exists()


def test_each_database_keeps_its_own_report(tmp_path):
    from human_eval.analyze import main as human_analyze
    from human_eval.store import Store
    for name, winner in (("study", "A"), ("static", "B")):
        store = Store(str(tmp_path / f"{name}.db"))
        store.add_tasks([{"mode": "static", "source": "t", "system_a": "x", "system_b": "y",
                          "content": {"criteria": ["Overall"]}}])
        store.add_annotator("h")
        store.current_or_next_task(1, 0)
        store.judge(store.task(1), 1, {"Overall": winner})
        store.close()
        human_analyze([str(tmp_path / f"{name}.db")])
    assert json.loads((tmp_path / "study.json").read_text())[0]["wins"] == 1
    assert json.loads((tmp_path / "static.json").read_text())[0]["losses"] == 1  # not overwritten by the other
    (tmp_path / "elsewhere").mkdir()
    human_analyze([str(tmp_path / "static.db"), "--output", str(tmp_path / "elsewhere" / "report.md")])
    assert (tmp_path / "elsewhere" / "report.md").exists() and (tmp_path / "elsewhere" / "report.png").exists()


def test_a_database_of_another_setup_names_what_differs(tmp_path):
    cards = role_cards.cards_from_test_file(write_test_file(tmp_path), 1)
    tasks = study.simulation_tasks(cards, ["good", "bad"], CRITERIA, 13, "cards.json")
    study.open_study(str(tmp_path / "s.db"), {"mode": "simulated", "turns": 3, "cards": cards}, tasks).close()
    with pytest.raises(UserError, match=r"another setup \(turns: 3 stored, 5 now\)"):
        study.open_study(str(tmp_path / "s.db"), {"mode": "simulated", "turns": 5, "cards": cards}, tasks)
    with pytest.raises(UserError, match=r"another setup \(cards differs\)"):
        study.open_study(str(tmp_path / "s.db"), {"mode": "simulated", "turns": 3, "cards": cards[:0]}, tasks)


def test_a_judge_name_keeps_one_verdict_mode_per_study(tmp_path):
    store, _, _ = make_study(tmp_path)
    judge_with(store, better_judge("good"))
    with pytest.raises(UserError, match="another judge"):
        study.judge_study(store, Scripted("judge", lambda m: "A"), "judge",
                          judging.load_judge_prompt(judging.JUDGE_PROMPT), CRITERIA, 13,
                          key={"model": "another"}, progress=False)
    store.close()
