"""The judge's validation against ESConv's help-seekers (auto_eval.validate, RUN/validate_judge.sh): pair drawing,
the report's baselines recomputed here, probability verdicts (mirrored by a side swap, batched == one at a time,
served == in process), a killed validation resumed, the validity printed with the judge's tables, bad input.

Fast tests use a tiny random chat Llama and a small ESConv with survey scores (tests/helpers/esconv_survey.py);
SmolLM2 from its wheel where a real model's numbers matter (slow mark where it takes long)."""
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from palkit.cli import UserError, run_main

from auto_eval import cli, judge as judging, validate, validity
from auto_eval.analyze import main as analyze_main
from chat_systems import load_system
from chat_systems.llm import shared_prefix_groups
from helpers.esconv_survey import supporter_counts, write_esconv
from helpers.paths import REPO_ROOT, SHARED

TESTS = Path(__file__).resolve().parent
SHARED_ESCONV = SHARED / "data" / "esconv" / "ESConv.json"


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    from chat_systems.tiny import make_tiny_chat_llm
    return make_tiny_chat_llm(str(tmp_path_factory.mktemp("tiny_llm") / "llm"))


@pytest.fixture(autouse=True)
def registry(tmp_path, monkeypatch):
    """Validity records go to a folder of the test's own."""
    monkeypatch.setenv(validity.REGISTRY_ENV, str(tmp_path / "registry"))
    return tmp_path / "registry"


@pytest.fixture(scope="module")
def smollm2():
    import torch
    torch.set_num_threads(1)
    return load_system("name=smollm2,llm=smollm2")


def run_validate(tmp_path, *extra, esconv=None):
    esconv = esconv or write_esconv(tmp_path / "ESConv.json")
    return cli.main(["validate", "--esconv", esconv, "--output", str(tmp_path / "out"), "--no_progress", *extra])


# ---- pairs ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rating", validate.RATINGS)
def test_pairs_are_drawn_by_the_rule_deterministically(tmp_path, rating):
    sources = [write_esconv(tmp_path / "ESConv.json")] + ([str(SHARED_ESCONV)] if SHARED_ESCONV.is_file() else [])
    for source in sources:
        dialogues = validate.load_esconv(source)
        pairs, available = validate.draw_pairs(dialogues, rating, 30, seed=13)
        assert pairs == validate.draw_pairs(dialogues, rating, 30, seed=13)[0]  # a seed draws the same pairs
        assert pairs != validate.draw_pairs(dialogues, rating, 30, seed=14)[0] or available <= 1
        assert len(pairs) == min(30, available) and len({(p["better"], p["worse"]) for p in pairs}) == len(pairs)
        for p in pairs:
            better, worse = dialogues[p["better"]], dialogues[p["worse"]]
            assert better["problem_type"] == worse["problem_type"] == p["problem_type"]
            scores = [better["survey_score"]["seeker"], worse["survey_score"]["seeker"]]
            if rating == "improvement":
                gain = [int(s["initial_emotion_intensity"]) - int(s["final_emotion_intensity"]) for s in scores]
                assert gain[0] - gain[1] >= 2 and gain == [p["better_rating"], p["worse_rating"]]
            else:
                assert int(scores[0][rating]) == 5 and int(scores[1][rating]) <= 3
                assert [int(s[rating]) for s in scores] == [p["better_rating"], p["worse_rating"]]


def test_the_small_esconv_has_fewer_pairs_than_asked(tmp_path, capsys, tiny_llm):
    run_validate(tmp_path, "--judge", f"llm={tiny_llm}", "--pairs", "500", "--max_turns", "2")
    report = json.loads((tmp_path / "out" / "judge_validity.json").read_text())
    assert "fewer than the 500 asked for; using all of them" in capsys.readouterr().out
    assert len(report["pairs"]) == report["pairs_available"] < 500


# ---- the report -----------------------------------------------------------------------------------------------------
def test_report_keys_and_baselines_recomputed(tmp_path, tiny_llm):
    run_validate(tmp_path, "--judge", f"name=tiny,llm={tiny_llm}", "--pairs", "12")
    out = tmp_path / "out"
    report = json.loads((out / "judge_validity.json").read_text())
    for key in ("judge", "verdict_mode", "rating", "pairs", "agreement", "position_consistency",
                "first_position_share", "tie_rate", "invalid_rate", "judgments_per_s", "baselines", "reliability",
                "shortened", "tie_margin", "beats_best_baseline"):
        assert key in report, key
    assert report["verdict_mode"] == "prob" and report["rating"] == "empathy" and len(report["pairs"]) == 12
    assert set(report["agreement"]) >= {"value", "ci95", "n", "decisive_share"}
    esconv = json.loads((tmp_path / "ESConv.json").read_text())
    expected = {"random": [0.5] * 12, "length": [], "questions": []}
    for p in report["pairs"]:
        assert {"better", "worse", "better_rating", "worse_rating", "orders"} <= set(p)
        (bw, bq), (ww, wq) = supporter_counts(esconv[p["better"]]), supporter_counts(esconv[p["worse"]])
        expected["length"].append(1.0 if bw > ww else 0.0 if bw < ww else 0.5)
        expected["questions"].append(1.0 if bq > wq else 0.0 if bq < wq else 0.5)
        assert set(p["orders"]) == {"better_first", "worse_first"}
        assert all(set(o["probabilities"]) >= {"better", "worse"} for o in p["orders"].values())
    for name, scores in expected.items():
        block = report["baselines"][name]
        assert block["value"] == pytest.approx(sum(scores) / 12) and block["n"] == 12
        assert block["decisive_share"] == pytest.approx(sum(s != 0.5 for s in scores) / 12)
        low, high = block["ci95"]
        assert low <= block["value"] <= high
    # the judge's agreement from its own verdicts: better 1, tie 0.5, worse 0
    score = {"better": 1.0, "tie": 0.5, "worse": 0.0, "invalid": 0.5}
    assert report["agreement"]["value"] == pytest.approx(sum(score[p["verdict"]] for p in report["pairs"]) / 12)
    best = max(report["baselines"][b]["value"] for b in validate.BASELINES)
    assert report["beats_best_baseline"] == (report["agreement"]["ci95"][0] > best)
    md = (out / "judge_validity.md").read_text()
    assert md.rstrip().splitlines()[-1].startswith("Does this judge beat the best trivial baseline")
    assert md.rstrip().endswith(("not evidence.", "above it."))
    assert (out / "judge_validity.png").read_bytes()[:4] == b"\x89PNG"


def test_wilson_interval_known_values():
    from human_eval.agreement import wilson_interval
    low, high = wilson_interval(8, 10)  # a textbook value: 0.490 - 0.943
    assert (round(low, 3), round(high, 3)) == (0.49, 0.943)
    assert wilson_interval(0, 0) is None and wilson_interval(5, 10)[0] < 0.5 < wilson_interval(5, 10)[1]


# ---- probability verdicts -------------------------------------------------------------------------------------------
def smollm2_pair_prompts(tmp_path, turns=3):
    """The judge's prompts of three small-ESConv pairs: [(better side, worse side)], the question, the prompt."""
    dialogues = validate.load_esconv(write_esconv(tmp_path / "ESConv.json"))
    pairs, _ = validate.draw_pairs(dialogues, "empathy", 3, seed=13)
    prompt = judging.load_judge_prompt(judging.JUDGE_PROMPT, judging.VALIDATION_PROMPT)
    sides = [tuple(judging.side(validate.messages_of(dialogues[p[s]], "")[:turns], validate.card_of(dialogues[p[s]]))
                   for s in ("better", "worse")) for p in pairs]
    return sides, "Which supporter was more skillful in comforting you?", prompt


@pytest.mark.slow
def test_swapping_the_sides_mirrors_prob_verdicts(tmp_path, smollm2):
    sides, question, prompt = smollm2_pair_prompts(tmp_path)
    for better, worse in sides:
        verdicts = []
        for a, b in ((better, worse), (worse, better)):  # side A is the better one, then the worse one
            orders = [judging.judge_messages(prompt, question, a, b), judging.judge_messages(prompt, question, b, a)]
            answers = judging.ask_prob(smollm2, orders)
            verdicts.append(judging.combine_probabilities(
                *(judging.to_task_probabilities(x.probabilities, first) for x, first in zip(answers, "AB"))))
        (v1, p1, m1), (v2, p2, m2) = verdicts
        assert p2 == {"A": p1["B"], "B": p1["A"], **({"tie": p1["tie"]} if "tie" in p1 else {})}  # exactly
        assert m2 == -m1 and {v1, v2} in ({"A", "B"}, {"tie"})
        assert set(p1) == {"A", "B", "tie"}  # "tie" is one token of SmolLM2's vocabulary


@pytest.mark.slow
def test_batched_and_prefix_cached_equal_one_at_a_time(tmp_path, smollm2):
    """Several questions about one pair (a shared prefix: one encoding, its cache reused), pairs of different
    lengths (right-padded batches) against one forward pass per prompt, to 1e-5 in probability."""
    sides, _, prompt = smollm2_pair_prompts(tmp_path)
    questions = ["Which supporter was more skillful in comforting you?", "Which supporter's responses were more "
                 "fluent and understandable?", "Generally, which supporter's emotional support do you prefer?"]
    conversations = [judging.judge_messages(prompt, q, *pair) for pair in sides for q in questions]
    conversations += [judging.judge_messages(prompt, questions[0], *pair[::-1]) for pair in sides]
    ids = [smollm2.toker(smollm2.prompt(c), add_special_tokens=False)["input_ids"] for c in conversations]
    assert [len(g) for g in shared_prefix_groups(ids)][:3] == [3, 3, 3]  # the cache path is taken
    one = [smollm2.next_token_logprobs([c], judging.CANDIDATES)[0] for c in conversations]
    for together in (smollm2.next_token_logprobs(conversations, judging.CANDIDATES),
                     smollm2.next_token_logprobs(conversations, judging.CANDIDATES, share_prefix=False,
                                                 batch_tokens=100000)):
        for a, b in zip(one, together):
            assert a.keys() == b.keys()
            assert max(abs(a[k] - b[k]) for k in a) < 1e-4  # log-probabilities
            pa, pb = judging.normalised(a), judging.normalised(b)
            assert max(abs(pa[k] - pb[k]) for k in pa) < 1e-5  # the verdict's probabilities


@pytest.mark.slow
def test_served_probabilities_equal_in_process(tmp_path, smollm2):
    """bash RUN/serve.sh --system llm=smollm2 on 127.0.0.1, read over HTTP by the endpoint judge, against the same
    model in process."""
    proc = subprocess.Popen(["bash", str(REPO_ROOT / "RUN" / "serve.sh"), "--system", "name=smollm2,llm=smollm2",
                             "--port", "0", "--device", "cpu"], env=dict(os.environ, OMP_NUM_THREADS="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []

        def read_until_ready():  # RUN/serve.sh may first say that it sets up .venv
            for line in proc.stdout:
                lines.append(line)
                if line.startswith("ready: "):
                    return
        reader = threading.Thread(target=read_until_ready, daemon=True)
        reader.start()
        reader.join(timeout=600)
        if not lines or not lines[-1].startswith("ready: "):
            pytest.fail(f"server did not start: {lines}")
        endpoint = load_system(f"name=served,endpoint={lines[-1].split()[1]},model=smollm2")
        sides, question, prompt = smollm2_pair_prompts(tmp_path, turns=2)
        conversations = [judging.judge_messages(prompt, question, *pair) for pair in sides]
        try:
            served = endpoint.next_token_logprobs(conversations, judging.CANDIDATES)
        except UserError as e:
            if "without logprobs" in str(e):
                pytest.skip(f"this server answers without logprobs yet ({e})")
            raise
        local = smollm2.next_token_logprobs(conversations, judging.CANDIDATES, single_token=True)
        for s, loc in zip(served, local):
            assert {"A", "B"} <= s.keys() <= loc.keys() == {"A", "B", "tie"}  # "tie" only when in the top 20
            assert max(abs(s[k] - loc[k]) for k in s) < 1e-4
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_prob_validation_killed_and_resumed_equals_uninterrupted(tmp_path, tiny_llm):
    """SIGKILL at the 2nd group of judgments, the same command again: the rows of an uninterrupted run."""
    esconv = write_esconv(tmp_path / "ESConv.json")

    def run(folder, kill_at):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
               validity.REGISTRY_ENV: str(tmp_path / "registry")}
        argv = ["validate", "--judge", f"llm={tiny_llm}", "--esconv", esconv, "--pairs", "10",
                "--output", str(folder), "--no_progress"]
        return subprocess.run([sys.executable, "-m", "helpers.kill_at_call", str(kill_at), *argv], env=env,
                              capture_output=True, text=True, timeout=600)

    def rows(folder):
        import sqlite3
        db = sqlite3.connect(folder / "judge_validity.db")
        try:
            return db.execute("SELECT pair, shown_first, verdict, probabilities, answers FROM judgments ORDER BY "
                              "pair, shown_first").fetchall()
        finally:
            db.close()
    assert run(tmp_path / "full", 0).returncode == 0
    killed = run(tmp_path / "killed", 4)  # the probe read, then groups of 8, 8 and 4 judgments: killed in the 3rd
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert 0 < len(rows(tmp_path / "killed")) < 20
    assert run(tmp_path / "killed", 0).returncode == 0
    assert rows(tmp_path / "killed") == rows(tmp_path / "full")
    full, resumed = (json.loads((f / "judge_validity.json").read_text()) for f in (tmp_path / "full",
                                                                                   tmp_path / "killed"))
    assert [p["verdict"] for p in full["pairs"]] == [p["verdict"] for p in resumed["pairs"]]
    assert full["agreement"] == resumed["agreement"]


# ---- validity beside every verdict ----------------------------------------------------------------------------------
def test_validity_heads_the_judges_tables(tmp_path, tiny_llm, capsys):
    from helpers.auto_eval_scripted import make_study
    store, _, _ = make_study(tmp_path)
    store.close()
    spec = f"name=tiny,llm={tiny_llm}"
    cli.main(["judge", "--db", str(tmp_path / "study.db"), "--judge", spec, "--no_progress"])
    assert f"not validated: run bash RUN/validate_judge.sh --judge llm={tiny_llm} --verdict prob" in \
        capsys.readouterr().out
    run_validate(tmp_path, "--judge", spec, "--pairs", "6", "--max_turns", "2")
    report = json.loads((tmp_path / "out" / "judge_validity.json").read_text())
    capsys.readouterr()
    analyze_main([str(tmp_path / "study.db")])
    md = (tmp_path / "study.judge.md").read_text()
    line = next(line for line in md.splitlines() if line.startswith("Judge tiny (prob verdicts): validated"))
    assert f"agreement {report['agreement']['value']:.2f}" in line and "(empathy -> Comforting, 6 pairs)" in line
    assert ("its verdicts are not evidence" in line) == (not report["beats_best_baseline"])
    # another prompt file is another judge: not validated
    other = tmp_path / "judge.json"
    other.write_text(Path(judging.JUDGE_PROMPT).read_text().replace("Verdict:", "Answer:"))
    key = validity.judge_key(cli.model_spec(spec), str(other), "prob", judging.TIE_MARGIN)
    assert validity.validity_lines(key)[0].startswith("not validated: run bash RUN/validate_judge.sh --judge llm=")


# ---- bad input ------------------------------------------------------------------------------------------------------
class NoLogprobs(WSGIRequestHandler):
    def log_message(self, *args):  # quiet
        pass


def chat_without_logprobs(environ, start_response):
    """An OpenAI-style chat endpoint that answers every request without logprobs."""
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "A"}}], "usage": {}}
    if environ["PATH_INFO"].endswith("/models"):
        body = {"data": [{"id": "m", "owned_by": "someone"}]}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]


@pytest.fixture
def endpoint_without_logprobs():
    server = make_server("127.0.0.1", 0, chat_without_logprobs, handler_class=NoLogprobs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("case", ["no_survey_scores", "pairs_0", "unknown_rating", "no_probabilities",
                                  "bf16_endpoint"])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, case, capsys, endpoint_without_logprobs):
    esconv = write_esconv(tmp_path / "ESConv.json", scores=case != "no_survey_scores")
    judge = f"name=e,endpoint={endpoint_without_logprobs},model=m"
    argv = {"no_survey_scores": ["--judge", judge],
            "pairs_0": ["--judge", judge, "--pairs", "0"],
            "unknown_rating": ["--judge", judge, "--rating", "kindness"],
            "no_probabilities": ["--judge", judge, "--verdict", "prob"],
            "bf16_endpoint": ["--judge", judge, "--bf16"]}[case]
    with pytest.raises(SystemExit) as e:
        run_main(cli.main, ["validate", "--esconv", esconv, "--output", str(tmp_path / "out"), *argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert {"no_survey_scores": "survey scores", "pairs_0": "--pairs", "unknown_rating": "--rating",
            "no_probabilities": "without logprobs", "bf16_endpoint": "--bf16"}[case] in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "registry").exists()


def test_text_verdicts_of_an_endpoint_without_probabilities_run(tmp_path, endpoint_without_logprobs):
    """Without logprobs an endpoint judge defaults to... prob (it claims the method): --verdict text works."""
    run_validate(tmp_path, "--judge", f"name=e,endpoint={endpoint_without_logprobs},model=m", "--verdict", "text",
                 "--pairs", "4", "--concurrency", "3")
    report = json.loads((tmp_path / "out" / "judge_validity.json").read_text())
    assert report["verdict_mode"] == "text" and report["position_consistency"] == 0  # always "A": all flips
    assert report["first_position_share"] == 1 and report["tie_rate"] == 1 and report["agreement"]["value"] == 0.5


def test_bench_judge_smoke(tmp_path, tiny_llm):
    """codes/bench_judge.py on the tiny chat Llama: three readings timed in one run, the same probabilities."""
    out = subprocess.run([sys.executable, str(REPO_ROOT / "codes" / "bench_judge.py"), "--judge", f"llm={tiny_llm}",
                          "--pairs", "1", "--questions", "3", "--max_turns", "3", "--output",
                          str(tmp_path / "bench.json")], capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr
    runs = json.loads((tmp_path / "bench.json").read_text())["runs"]
    assert [r["label"] for r in runs] == ["one at a time", "batched", "batched + prefix cache"]
    assert all(r["judgments_per_s"] > 0 and r["max_probability_difference"] < 1e-5 for r in runs)
    assert "| batched + prefix cache |" in out.stdout
