"""Scoring the gen.json the authors' infer.py writes (chengjl19/PAL, thu-coai codes_zcj): predicted strategies but no
gold `cls_strat_id`. Every other metric as usual; `--gold_file` recovers the gold strategies from the test file.

The fixtures are built here: a reformatted test file whose dialogues have consecutive supporter turns (so PAL's and
codes_zcj's example lists differ), and records shaped like each author's.
"""
import json
import os
import subprocess
import sys

import pytest

from helpers.paths import REPO_ROOT, load_script
from metric import evaluate_records
from metric.records import with_gold_strategies
from palkit.cli import UserError
from pal.config import STRATEGIES

evaluate = load_script("codes/evaluate.py")

TEXT_METRICS = ["bleu-1", "bleu-2", "bleu-3", "bleu-4", "dist-1", "dist-2", "dist-3", "dist-1-standard",
                "dist-2-standard", "dist-3-standard", "f1", "rouge-l", "length", "ead-1", "ead-2", "ead_vocab_size",
                "perplexity"]


def sys_turn(strategy, text="i hear you."):
    return {"text": text, "speaker": "sys", "strategy": strategy}


def usr_turn(text="i feel bad."):
    return {"text": text, "speaker": "usr"}


TEST_DIALOGUES = [
    # PAL's examples: turns 1 and 3; codes_zcj's: 1, 3 and 4 (a supporter turn after a supporter turn)
    {"dialog": [usr_turn(), sys_turn("Question"), usr_turn("my job."), sys_turn("Others"), sys_turn("Information")]},
    # a first supporter turn is never an example; then turns 2 and 4 for both
    {"dialog": [sys_turn("Self-disclosure"), usr_turn(), sys_turn("Reflection of feelings"), usr_turn("yes."),
                sys_turn("Providing Suggestions")]},
]
PAL_GOLD, PAL_SAMPLES = [0, 7, 2, 5], [0, 0, 1, 1]
ZCJ_GOLD, ZCJ_SAMPLES = [0, 7, 6, 2, 5], [0, 0, 0, 1, 1]
assert [STRATEGIES[g] for g in PAL_GOLD] == ["Question", "Others", "Reflection of feelings", "Providing Suggestions"]

GENERATIONS = ["i am sorry to hear that .", "what happened at work ?", "that sounds hard .", "you can talk to me .",
               "have you tried to rest ?"]
RESPONSES = ["I hear you.", "Tell me more about your job.", "That must be hard.", "Maybe take a break.",
             "I am here for you."]


def write_test_file(path):
    path.write_text("".join(json.dumps(d) + "\n" for d in TEST_DIALOGUES), encoding="utf-8")
    return str(path)


def authors_records(samples, preds, with_persona=True):
    """Records as the authors' infer.py writes them: no cls_strat_id; their top3 list holds 5 ids; dist a string."""
    records = []
    for k, (sample_id, pred) in enumerate(zip(samples, preds)):
        dist = [0.02] * 8
        dist[pred] = 0.86
        record = {"sample_id": sample_id, "post": "i feel bad.", "response": RESPONSES[k], "generation": GENERATIONS[k]}
        if with_persona:  # PAL writes the persona; codes_zcj does not
            record["persona"] = "i lost my job."
        record.update({"pred_strat_id": pred, "pred_strat_id_top1": [pred],
                       "pred_strat_id_top3": [pred] + [i for i in range(8) if i != pred][:4],
                       "pred_strat_id_dist": " ".join(map(str, dist)),
                       "token_num": 5 + k, "loss": 1.0 + 0.25 * k, "ppl": 0.0})
        records.append(record)
    return records


def write_gen(folder, records):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gen.json").write_text(json.dumps(records, indent=2))
    return folder


PAL_PREDS = [0, 1, 2, 3]        # right, wrong, right, wrong: accuracy 1/2
ZCJ_PREDS = [0, 7, 0, 2, 0]     # right, right, wrong, right, wrong: accuracy 3/5


# ---- without gold labels --------------------------------------------------------------------------------------------
def test_evaluate_cli_scores_the_authors_gen_json(punkt, tmp_path):
    """A gen.json without gold strategies: metric.json with every text metric, exit 0, one line saying why there is
    no accuracy."""
    folder = write_gen(tmp_path / "res", authors_records(PAL_SAMPLES, PAL_PREDS))
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "codes" / "evaluate.py"), str(folder)],
                          capture_output=True, text=True, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if "cls_strat_id" in line]
    assert len(notes) == 1 and "unavailable" in notes[0] and "--gold_file" in notes[0]
    metric = json.loads((folder / "metric.json").read_text())
    assert set(TEXT_METRICS) <= set(metric)
    assert not any("strat" in key for key in metric)
    assert not (folder / "confusion_matrix_cls_strat_id.png").exists()


def test_text_metrics_do_not_depend_on_gold_labels(punkt, tmp_path, capsys):
    records = authors_records(PAL_SAMPLES, PAL_PREDS)
    without = evaluate_records(records, str(tmp_path / "a"), verbose=False)
    assert capsys.readouterr().err.count("\n") == 1
    labelled = [dict(r, cls_strat_id=g) for r, g in zip(records, PAL_GOLD)]
    with_gold = evaluate_records(labelled, str(tmp_path / "b"), verbose=False)
    assert with_gold["acc_cls_strat_id"] == 0.5
    assert without == {k: v for k, v in with_gold.items() if "strat" not in k}


def test_gold_without_predictions_and_mixtures_are_errors(punkt, tmp_path):
    records = [dict(r, cls_strat_id=0) for r in authors_records(PAL_SAMPLES, PAL_PREDS)]
    for r in records:
        del r["pred_strat_id"]
    with pytest.raises(UserError, match="cls_strat_id but no pred_strat_id"):
        evaluate_records(records, str(tmp_path / "out"), verbose=False)
    mixed = authors_records(PAL_SAMPLES, PAL_PREDS)
    mixed[2]["cls_strat_id"] = 2
    with pytest.raises(UserError, match="record 0 lacks cls_strat_id"):
        evaluate_records(mixed, str(tmp_path / "out"), verbose=False)
    assert not (tmp_path / "out").exists()


# ---- --gold_file -----------------------------------------------------------------------------------------------------
def test_gold_file_recovers_pal_gold_strategies(punkt, tmp_path):
    test_file = write_test_file(tmp_path / "test.txt")
    folder = write_gen(tmp_path / "res", authors_records(PAL_SAMPLES, PAL_PREDS))
    evaluate.main([str(folder), "--gold_file", test_file])
    metric = json.loads((folder / "metric.json").read_text())
    # the 5-id "top3" lists are [pred] + the 4 lowest other ids: they miss the wrong examples' gold 7 and 5
    assert metric["acc_cls_strat_id"] == 0.5 and metric["acc_cls_strat_id_top3"] == 0.5
    assert json.loads((folder / "metric_list.json").read_text())["acc_cls_strat_id"] == [1, 0, 1, 0]
    assert (folder / "confusion_matrix_cls_strat_id.png").exists()
    # the same numbers as records that carried the gold labels themselves
    labelled = [dict(r, cls_strat_id=g) for r, g in zip(authors_records(PAL_SAMPLES, PAL_PREDS), PAL_GOLD)]
    assert metric == pytest.approx(evaluate_records(labelled, str(tmp_path / "direct"), verbose=False))


def test_gold_file_recovers_codes_zcj_gold_strategies(punkt, tmp_path):
    """codes_zcj emits every supporter turn (not only those after a seeker turn); the record count picks the rule."""
    test_file = write_test_file(tmp_path / "test.txt")
    folder = write_gen(tmp_path / "res", authors_records(ZCJ_SAMPLES, ZCJ_PREDS, with_persona=False))
    evaluate.main([str(folder), "--gold_file", test_file])
    metric = json.loads((folder / "metric.json").read_text())
    assert metric["acc_cls_strat_id"] == pytest.approx(3 / 5)
    assert json.loads((folder / "metric_list.json").read_text())["acc_cls_strat_id"] == [1, 1, 0, 1, 0]


def test_gold_file_that_does_not_fit_is_a_one_line_error(punkt, tmp_path):
    test_file = write_test_file(tmp_path / "test.txt")
    three = authors_records(PAL_SAMPLES[:3], PAL_PREDS[:3])
    with pytest.raises(UserError, match=r"4 under PAL .*, 5 under codes_zcj .* examples, but gen.json has 3"):
        with_gold_strategies(three, test_file)
    shifted = authors_records([0, 1, 1, 1], PAL_PREDS)
    with pytest.raises(UserError, match="record 1 has sample_id 1 but example 1 .* dialogue 0 \\(line 1\\)"):
        with_gold_strategies(shifted, test_file)
    conflicting = [dict(r, cls_strat_id=0) for r in authors_records(PAL_SAMPLES, PAL_PREDS)]
    with pytest.raises(UserError, match="record 1 has cls_strat_id 0 but .* line 1 says 7 \\(Others\\)"):
        with_gold_strategies(conflicting, test_file)
    vanilla = [{"sample_id": s, "response": "a", "generation": "b"} for s in PAL_SAMPLES]
    with pytest.raises(UserError, match="no record has pred_strat_id"):
        with_gold_strategies(vanilla, test_file)
    with pytest.raises(UserError, match="no such file"):
        with_gold_strategies(three, str(tmp_path / "missing.txt"))
    folder = write_gen(tmp_path / "res", three)
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "codes" / "evaluate.py"), str(folder),
                           "--gold_file", test_file], capture_output=True, text=True, env=dict(os.environ))
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error: ")
    assert not (folder / "metric.json").exists()


def test_labels_already_in_gen_json_that_agree_are_kept(tmp_path):
    """Our own gen.json carries cls_strat_id; --gold_file then only checks it."""
    test_file = write_test_file(tmp_path / "test.txt")
    ours = [dict(r, cls_strat_id=g) for r, g in zip(authors_records(PAL_SAMPLES, PAL_PREDS), PAL_GOLD)]
    assert with_gold_strategies(ours, test_file) == ours
