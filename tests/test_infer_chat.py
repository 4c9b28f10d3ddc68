"""codes/infer_chat.py: a chat LLM on a test split gives a result folder that evaluate.py, summarize_results.py and
compare_systems.py read beside PAL's; a killed run resumes to the gen.json of an uninterrupted one."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers.paths import REPO_ROOT, load_script
from palkit.cli import UserError
from helpers.pal_models import DIALOGUES, write_dialogues

SCRIPT = str(REPO_ROOT / "codes" / "infer_chat.py")


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    from chat_systems.tiny import make_tiny_chat_llm
    return make_tiny_chat_llm(str(tmp_path_factory.mktemp("tiny_llm")))


@pytest.fixture(scope="module")
def test_file(tmp_path_factory):
    return str(write_dialogues(tmp_path_factory.mktemp("data") / "test.txt", DIALOGUES))


def run(args, **kwargs):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, SCRIPT, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def gen(folder):
    with open(os.path.join(folder, "gen.json")) as f:
        return json.load(f)


def test_result_folder_scored_like_infer_py(tiny_llm, test_file, tmp_path, punkt, one_torch_thread):
    infer_chat = load_script("codes/infer_chat.py")
    out = str(tmp_path / "smol")
    infer_chat.main(["--system", f"name=tiny,llm={tiny_llm}", "--infer_input_file", test_file, "--output_dir", out,
                     "--max_tokens", "6", "--batch_size", "4"])
    records = gen(out)
    assert records and all(r["generation"] and r["post"] and r["response"] for r in records)
    assert all(r["token_num"] > 0 and r["ppl"] > 0 for r in records) and "cls_strat_id" not in records[0]
    with open(os.path.join(out, "metric.json")) as f:
        before = json.load(f)
    assert before["perplexity"] > 0
    load_script("codes/evaluate.py").main([out])
    with open(os.path.join(out, "metric.json")) as f:
        assert json.load(f) == before
    asked = str(tmp_path / "asked")
    infer_chat.main(["--system", f"name=asked,llm={tiny_llm}", "--infer_input_file", test_file, "--output_dir",
                     asked, "--max_tokens", "6", "--ask_strategy"])
    records = gen(asked)
    assert len(records) == len(gen(out)) and all("pred_strat_id" in r and "strategy_answer" in r for r in records)
    with open(os.path.join(asked, "metric.json")) as f:
        assert "acc_cls_strat_id" in json.load(f)
    load_script("codes/compare_systems.py").main([out, asked, "--resamples", "50", "--output",
                                                  str(tmp_path / "cmp.json")])
    load_script("codes/summarize_results.py").main([out, asked])


def test_killed_run_resumes_to_the_same_gen_json(tiny_llm, test_file, tmp_path):
    args = ["--system", f"name=tiny,llm={tiny_llm}", "--infer_input_file", test_file, "--max_tokens", "32",
            "--batch_size", "2", "--temperature", "1.0"]
    whole = str(tmp_path / "whole")
    assert run(args + ["--output_dir", whole]).wait(timeout=600) == 0
    cut = str(tmp_path / "cut")
    proc = run(args + ["--output_dir", cut])
    progress = cut + ".progress.jsonl"
    for _ in range(6000):  # until the first batch is on disk (bounded)
        if os.path.exists(progress) and open(progress).read().count("\n") >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert os.path.exists(progress) and not os.path.exists(cut)
    done = run(args + ["--output_dir", cut])
    _, err = done.communicate(timeout=600)
    assert done.returncode == 0 and "resuming" in err, err
    assert gen(cut) == gen(whole) and not os.path.exists(progress)


def test_progress_of_other_arguments_is_refused(tiny_llm, test_file, tmp_path):
    infer_chat = load_script("codes/infer_chat.py")
    out = str(tmp_path / "x")
    with open(out + ".progress.jsonl", "w") as f:
        f.write(json.dumps({"system": "another"}) + "\n")
    with pytest.raises(UserError, match="progress of a run with other arguments"):
        infer_chat.main(["--system", f"name=tiny,llm={tiny_llm}", "--infer_input_file", test_file,
                         "--output_dir", out])


# ---- a failed run never blocks its corrected rerun ------------------------------------------------------------
def test_a_run_that_fails_to_load_its_system_leaves_nothing_that_blocks_the_fix(tiny_llm, test_file, tmp_path,
                                                                                 monkeypatch, punkt):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    infer_chat = load_script("codes/infer_chat.py")
    out = str(tmp_path / "smol")
    common = ["--infer_input_file", test_file, "--output_dir", out, "--max_examples", "2", "--max_tokens", "4"]
    with pytest.raises(UserError, match="did you mean smollm2"):
        infer_chat.main(["--system", "name=smol,llm=smolm2", *common])
    assert not os.path.exists(out + ".progress.jsonl") and not os.path.exists(out)
    infer_chat.main(["--system", f"name=smol,llm={tiny_llm}", *common])  # the corrected command
    assert len(gen(out)) == 2


def test_a_rerun_with_other_arguments_names_them_and_restart_starts_over(tiny_llm, test_file, tmp_path, punkt,
                                                                         monkeypatch):
    infer_chat = load_script("codes/infer_chat.py")
    out, fresh = str(tmp_path / "cut"), str(tmp_path / "fresh")
    common = ["--system", f"name=tiny,llm={tiny_llm}", "--infer_input_file", test_file, "--max_examples", "3",
              "--batch_size", "2", "--max_tokens", "6", "--temperature", "1.0"]

    def stopped(_folder):  # the run stops after every batch is on disk, before its folder is written
        raise KeyboardInterrupt
    with monkeypatch.context() as patch:
        patch.setattr(infer_chat, "new_result_folder", stopped)
        with pytest.raises(KeyboardInterrupt):
            infer_chat.main([*common, "--output_dir", out, "--seed", "0"])
    progress = out + ".progress.jsonl"
    assert os.path.exists(progress) and not os.path.exists(out)
    with pytest.raises(UserError) as refused:
        infer_chat.main([*common, "--output_dir", out, "--seed", "1", "--top_p", "0.5"])
    message = str(refused.value)
    assert "--seed (that run: 0; this run: 1)" in message and "--top_p (that run: None; this run: 0.5)" in message
    assert "--restart" in message and "--system" not in message and "--temperature" not in message
    infer_chat.main([*common, "--output_dir", out, "--seed", "1", "--top_p", "0.5", "--restart"])
    infer_chat.main([*common, "--output_dir", fresh, "--seed", "1", "--top_p", "0.5"])
    assert gen(out) == gen(fresh) and not os.path.exists(progress)
    assert "--restart" in infer_chat.build_parser().format_help()
