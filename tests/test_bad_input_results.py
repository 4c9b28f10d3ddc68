"""Bad input at the result and human-evaluation entry points (summarize_results, compare_systems, python -m
human_eval and its admin/analyze commands), in the design of test_bad_input.py: a valid baseline per stage
(test_results_baselines_succeed), then exactly one fault per case: exit status 2, one `error: ...` line and no
traceback, a message naming the file or option, and no new or changed file.
"""
import importlib
import json

import pytest

from helpers.bad_input import (GEN_RECORDS, assert_rejected, check_case, flat, make_dir, run_main_in_process, run_ok,
                               snapshot, write)

pytestmark = [pytest.mark.robustness, pytest.mark.usefixtures("one_torch_thread")]


# ---- codes/summarize_results.py, codes/compare_systems.py ----------------------------------------------------------
METRICS = {"acc_cls_strat_id": 0.3, "perplexity": 15.2, "bleu-2": 0.07, "bleu-4": 0.02, "dist-1": 0.03, "dist-2": 0.2,
           "ead-1": 0.04, "ead-2": 0.25, "rouge-l": 0.15}


def result_folder(t, name="res", metric=None, text=None):
    folder = t / name
    write(folder / "metric.json", text if text is not None else json.dumps(METRICS if metric is None else metric))
    return str(folder)


def _with_ead_json(t, text):
    """A folder whose E-1/E-2 come from ead.json (get_EAD_score.py's file), as when metric.json has none."""
    write(t / "res" / "ead.json", text)
    return result_folder(t, metric={k: v for k, v in METRICS.items() if not k.startswith("ead")})


SUMMARIZE_CASES = {
    "metric_json_is_a_list": lambda t: ([result_folder(t, text="[1, 2]")], ["metric.json", "expected a JSON object"]),
    "metric_value_is_a_string": lambda t: ([result_folder(t, metric=dict(METRICS, perplexity="15.2"))],
                                           ["metric.json", "perplexity", "got str"]),
    "metric_json_invalid": lambda t: ([result_folder(t, text='{"acc": ')], ["metric.json", "invalid JSON"]),
    "ead_json_is_a_list": lambda t: ([_with_ead_json(t, "[]")], ["ead.json", "expected a JSON object"]),
    "output_is_a_folder": lambda t: ([result_folder(t), "--output", str(make_dir(t / "table.md"))],
                                     ["--output", "is a folder"]),
    "json_under_a_file": lambda t: ([result_folder(t), "--json", str(t / "res" / "metric.json" / "x.json")],
                                    ["--json", "metric.json is a file"]),
    "missing_result_dir": lambda t: ([str(t / "nope")], ["nope", "no such folder"]),
    "empty_result_dir": lambda t: ([str(make_dir(t / "empty"))], ["empty", "no result folder"]),
}


@pytest.mark.parametrize("case", sorted(SUMMARIZE_CASES))
def test_summarize_results_rejects(case, tmp_path):
    check_case(tmp_path, tmp_path, "codes/summarize_results.py", SUMMARIZE_CASES[case])


def _two(t):
    return [scored_folder(t, "a"), scored_folder(t, "b")]


def scored_folder(t, name):
    """A result folder with metric.json and the gen.json the paired tests read."""
    write(t / name / "gen.json", json.dumps(GEN_RECORDS))
    return result_folder(t, name)


COMPARE_CASES = {
    "resamples_0": lambda t: (_two(t) + ["--resamples", "0"], ["--resamples", "0"]),
    "confidence_1": lambda t: (_two(t) + ["--confidence", "1"], ["--confidence", "1"]),
    "confidence_nan": lambda t: (_two(t) + ["--confidence", "nan"], ["--confidence", "nan"]),
    "negative_seed": lambda t: (_two(t) + ["--seed", "-1"], ["--seed", "-1"]),
    "output_is_a_folder": lambda t: (_two(t) + ["--output", str(make_dir(t / "o.json"))], ["--output", "is a folder"]),
    "markdown_under_a_file": lambda t: (_two(t) + ["--markdown", str(t / "a" / "metric.json" / "m.md")],
                                        ["--markdown", "is a file"]),
    "missing_system": lambda t: ([str(t / "nope"), scored_folder(t, "a")], ["nope", "no such folder"]),
}


@pytest.mark.parametrize("case", sorted(COMPARE_CASES))
def test_compare_systems_rejects(case, tmp_path):
    check_case(tmp_path, tmp_path, "codes/compare_systems.py", COMPARE_CASES[case])


# ---- codes/human_eval: serve (python -m human_eval), admin, analyze -----------------------------------------------
@pytest.fixture(scope="module")
def study_base(base):
    """base, with a test file that has the seeker cards (emotion, problem, situation) of a reformatted test.txt."""
    from helpers.human_eval import make_study_inputs
    return dict(base, cards=make_study_inputs(base["root"] / "study", base["model"])["test_file"])


def serve_args(b, t, *extra, **change):
    args = {"--db": str(t / "study" / "study.db"), "--test_file": b["cards"], "--pretrained_model_path": b["model"],
            "--device": "cpu", "--max_length": "4", "--min_length": "1"}
    args.update(change)
    systems = ["--system", f"name=a,config=strat,checkpoint={b['ckpt']}",
               "--system", f"name=b,config=strat,checkpoint={b['ckpt']}"]
    return flat(args) + systems + list(extra)


SERVE_CASES = {
    "port_70000": lambda b, t: (serve_args(b, t, "--port", "70000"), ["--port", "70000"]),
    "num_dialogues_0": lambda b, t: (serve_args(b, t, "--num_dialogues", "0"), ["--num_dialogues", "0"]),
    "top_p_1.5": lambda b, t: (serve_args(b, t, "--top_p", "1.5"), ["--top_p", "1.5"]),
    "temperature_0": lambda b, t: (serve_args(b, t, "--temperature", "0"), ["--temperature", "0"]),
    "assignment_timeout_0": lambda b, t: (serve_args(b, t, "--assignment_timeout", "0"),
                                          ["--assignment_timeout", "0"]),
    "base_url_without_scheme": lambda b, t: (serve_args(b, t, "--base_url", "eval.example.org"),
                                             ["--base_url", "eval.example.org"]),
    "negative_wait": lambda b, t: (serve_args(b, t, "--min_seconds_between_messages", "-1"),
                                   ["--min_seconds_between_messages", "-1"]),
    "min_turns_above_max": lambda b, t: (serve_args(b, t, "--min_turns", "9", "--max_turns", "3"),
                                         ["--min_turns", "--max_turns"]),
    "missing_criteria": lambda b, t: (serve_args(b, t, "--criteria", str(t / "c.json")), ["--criteria", "c.json"]),
    "criteria_is_a_list": lambda b, t: (serve_args(b, t, "--criteria", write(t / "c.json", "[]")),
                                        ["c.json", "criteria"]),
    "missing_test_file": lambda b, t: (serve_args(b, t, **{"--test_file": str(t / "nope.txt")}),
                                       ["--test_file", "nope.txt"]),
    "db_is_a_folder": lambda b, t: (serve_args(b, t, **{"--db": str(make_dir(t / "s.db"))}), ["--db", "is a folder"]),
    "db_is_not_sqlite": lambda b, t: (serve_args(b, t, **{"--db": write(t / "s.db", "not a database " * 40)}),
                                      ["s.db", "not a human-evaluation database"]),
    "missing_persona_extractor": lambda b, t: (serve_args(b, t, "--persona_extractor", str(t / "ex")),
                                               ["--persona_extractor", "ex"]),
    "checkpoint_is_text": lambda b, t: (
        serve_args(b, t, **{"--pretrained_model_path": b["model"]})[:-4] +
        ["--system", f"name=a,config=strat,checkpoint={write(t / 'r' / 'epoch-0.bin', 'x')}",
         "--system", f"name=b,config=strat,checkpoint={b['ckpt']}"], ["epoch-0.bin", "not a readable torch file"]),
}


def _human_eval_main(name):
    return importlib.import_module(f"human_eval.{name}").main


@pytest.mark.parametrize("case", sorted(SERVE_CASES))
def test_human_eval_serve_rejects(case, tmp_path, study_base):
    check_main(tmp_path, study_base["root"], _human_eval_main("serve"), lambda t: SERVE_CASES[case](study_base, t))


def _text_db(t):
    return write(t / "study.db", "not a database " * 40)


ADMIN_CASES = {
    "db_is_a_folder": lambda t: (["--db", str(make_dir(t / "s.db")), "links"], ["--db", "is a folder"]),
    "missing_db": lambda t: (["--db", str(t / "s.db"), "links"], ["s.db", "no such database"]),
    "db_is_not_sqlite": lambda t: (["--db", _text_db(t), "links"], ["study.db", "not a human-evaluation database"]),
    "blank_name": lambda t: (["--db", str(t / "s.db"), "--base_url", "http://127.0.0.1:5000", "add", " "],
                             ["non-blank"]),
    "export_dir_is_a_file": lambda t: (["--db", _text_db(t), "export", write(t / "out", "x")],
                                       ["out_dir", "is a file"]),
}
ANALYZE_CASES = {
    "missing_db": lambda t: ([str(t / "s.db")], ["s.db", "no such file"]),
    "db_is_not_sqlite": lambda t: ([_text_db(t)], ["study.db", "not a human-evaluation database"]),
    "output_dir_is_a_file": lambda t: ([_text_db(t), "--output_dir", write(t / "out", "x")],
                                       ["--output_dir", "is a file"]),
}


@pytest.mark.parametrize("case", sorted(ADMIN_CASES))
def test_human_eval_admin_rejects(case, tmp_path):
    check_main(tmp_path, tmp_path, _human_eval_main("admin"), ADMIN_CASES[case])


@pytest.mark.parametrize("case", sorted(ANALYZE_CASES))
def test_human_eval_analyze_rejects(case, tmp_path):
    check_main(tmp_path, tmp_path, _human_eval_main("analyze"), ANALYZE_CASES[case])


def check_main(tmp_path, base_root, main, build):
    """check_case for a module's main (the human-evaluation commands run as python -m human_eval[.NAME])."""
    argv, needles = build(tmp_path)
    roots = [str(tmp_path), str(base_root)]
    before = snapshot(*roots)
    assert_rejected(run_main_in_process(main, argv, tmp_path), before, roots, needles)


def test_results_baselines_succeed(tmp_path, study_base, monkeypatch, punkt):
    """The valid baselines the tables start from do run (so every rejection above is due to its one fault)."""
    run_ok("codes/summarize_results.py", result_folder(tmp_path, "s"), "--output", tmp_path / "t.md")
    run_ok("codes/compare_systems.py", *_two(tmp_path), "--resamples", "20", "--output", tmp_path / "c.json")
    serve = importlib.import_module("human_eval.serve")
    monkeypatch.setattr(serve, "serve", lambda app, args, store, created: store.close())  # everything but the HTTP server
    db = tmp_path / "study" / "study.db"
    argv = serve_args(study_base, tmp_path, "--annotators", "x")
    assert run_main_in_process(serve.main, argv, tmp_path).returncode == 0
    assert run_main_in_process(_human_eval_main("admin"), ["--db", db, "links"], tmp_path).returncode == 0
    assert run_main_in_process(_human_eval_main("analyze"), [db], tmp_path).returncode == 0
