"""Bad input at every entry point: one valid baseline per stage, then exactly one fault per case.

Each case asserts: exit status 2, one line `error: ...` on stderr and no traceback, a message naming the file or
option at fault, and no new or changed file anywhere under the case's folders (snapshotted before and after).
The tables run each script's `main` through palkit.cli.run_main in this process (what `python codes/X.py` runs after
its imports; a subprocess per case would spend seconds importing torch, times eighty cases), and
test_scripts_reject_in_a_subprocess runs one case of every table as a user would, `python codes/X.py ...`.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from helpers.bad_input import (ENV, GEN_RECORDS, check_case, copy_with_truncated, copy_without, make_dir, run_script,
                               snapshot, truncate, write)
from helpers.paths import REPO_ROOT

pytestmark = [pytest.mark.robustness, pytest.mark.usefixtures("one_torch_thread")]

FAST_INFER = ["--max_length", "6", "--min_length", "2", "--infer_batch_size", "4", "--max_input_length", "64"]


# ---- helpers ---------------------------------------------------------------------------------------------------

# ---- prepare.py --------------------------------------------------------------------------------------------------

def prepare_args(b, tmp, **change):
    args = {"--config_name": "strat", "--inputter_name": "strat", "--train_input_file": b["data"],
            "--pretrained_model_path": b["model"], "--output_dir": str(tmp / "prepared"), "--pbar": "False",
            "--max_input_length": "64"}
    args.update(change)
    return [x for k, v in args.items() for x in (k, v)]


PREPARE_CASES = {
    "output_dir_is_a_file": lambda b, t: (prepare_args(b, t, **{"--output_dir": write(t / "prepared", "x")}),
                                          ["--output_dir", "prepared", "is a file"]),
    "max_input_length_0": lambda b, t: (prepare_args(b, t, **{"--max_input_length": "0"}),
                                        ["--max_input_length", "0"]),
    "missing_train_file": lambda b, t: (prepare_args(b, t, **{"--train_input_file": str(t / "nope.txt")}),
                                        ["--train_input_file", "nope.txt", "no such file"]),
    "empty_train_file": lambda b, t: (prepare_args(b, t, **{"--train_input_file": write(t / "empty.txt", "")}),
                                      ["empty.txt"]),
    "tokenizer_without_vocab": lambda b, t: (
        prepare_args(b, t, **{"--pretrained_model_path": copy_without(b["model"], t / "m", "vocab.json")}),
        [str(t / "m"), "vocab.json"]),
    "tokenizer_without_merges": lambda b, t: (
        prepare_args(b, t, **{"--pretrained_model_path": copy_without(b["model"], t / "m", "merges.txt")}),
        [str(t / "m"), "merges.txt"]),
    "vocab_json_truncated": lambda b, t: (
        prepare_args(b, t, **{"--pretrained_model_path": copy_with_truncated(b["model"], t / "m", "vocab.json")}),
        ["vocab.json", "invalid JSON"]),
}


@pytest.mark.parametrize("case", sorted(PREPARE_CASES))
def test_prepare_rejects(case, tmp_path, base):
    check_case(tmp_path, base["root"], "codes/prepare.py", lambda t: PREPARE_CASES[case](base, t))


def test_truncated_or_foreign_prepared_features_are_one_line(tmp_path, base):
    """train.py reads prepare.py's output through pal.prepared.load_prepared: a data.pkl or meta.json changed after
    the features were committed is one line naming it (the manifest no longer matches)."""
    from palkit.cli import UserError
    from pal.prepared import load_prepared
    out = tmp_path / "prepared"
    assert run_script("codes/prepare.py", *prepare_args(base, tmp_path)).returncode == 0
    expected = {"max_input_length": 64, "inputter_name": "strat"}
    assert len(load_prepared(str(out), expected)[0]) > 0
    truncate(out / "features" / "data.pkl")
    with pytest.raises(UserError, match="data.pkl changed after the folder was committed.*codes/prepare.py"):
        load_prepared(str(out), expected)
    assert run_script("codes/prepare.py", *prepare_args(base, tmp_path)).returncode == 0
    write(out / "features" / "meta.json", "[1, 2")
    with pytest.raises(UserError, match="meta.json changed after the folder was committed"):
        load_prepared(str(out), expected)
    assert run_script("codes/prepare.py", *prepare_args(base, tmp_path)).returncode == 0
    write(out / "features" / "manifest.json", '{"files": {"data.pkl": ')
    with pytest.raises(UserError, match="manifest.json is unreadable"):
        load_prepared(str(out), expected)


# ---- infer.py ------------------------------------------------------------------------------------------------------
def infer_args(b, tmp, *extra, drop=(), **change):
    args = {"--config_name": "strat", "--inputter_name": "strat", "--pretrained_model_path": b["model"],
            "--load_checkpoint": b["ckpt"], "--infer_input_file": b["data"], "--save_dir": str(tmp / "res")}
    args.update(change)
    flat = [x for k, v in args.items() if k not in drop for x in (k, v)]
    return flat + ["--only_generate"] + FAST_INFER + list(extra)


def _text_checkpoint(t):
    return write(t / "run" / "epoch-0.bin", "this is not a checkpoint\n")


def _truncated_checkpoint(b, t):
    os.makedirs(t / "run")
    shutil.copy(b["ckpt"], t / "run" / "epoch-0.bin")
    return truncate(t / "run" / "epoch-0.bin")


INFER_CASES = {
    "top_p_1.5": lambda b, t: (infer_args(b, t, "--top_p", "1.5"), ["--top_p", "1.5"]),
    "temperature_0": lambda b, t: (infer_args(b, t, "--temperature", "0"), ["--temperature", "0"]),
    "negative_top_k": lambda b, t: (infer_args(b, t, "--top_k", "-1"), ["--top_k", "-1"]),
    "num_beams_0": lambda b, t: (infer_args(b, t, "--num_beams", "0"), ["--num_beams"]),
    "batch_size_0": lambda b, t: (infer_args(b, t, "--infer_batch_size", "0"), ["--infer_batch_size"]),
    "top3_k_9": lambda b, t: (infer_args(b, t, "--strategy_top3_k", "9"), ["--strategy_top3_k", "9"]),
    "save_dir_is_a_file": lambda b, t: (infer_args(b, t, **{"--save_dir": write(t / "res", "x")}),
                                        ["--save_dir", "res", "is a file"]),
    "gen_json_is_a_folder": lambda b, t: (os.makedirs(t / "res" / "gen.json") or infer_args(b, t),
                                          ["gen.json", "is a folder"]),
    "missing_input_file": lambda b, t: (infer_args(b, t, **{"--infer_input_file": str(t / "nope.txt")}),
                                        ["--infer_input_file", "nope.txt"]),
    "empty_input_file": lambda b, t: (infer_args(b, t, **{"--infer_input_file": write(t / "empty.txt", "")}),
                                      ["empty.txt"]),
    "text_file_named_epoch_bin": lambda b, t: (infer_args(b, t, **{"--load_checkpoint": _text_checkpoint(t)}),
                                               ["epoch-0.bin", "not a readable torch file"]),
    "truncated_checkpoint": lambda b, t: (infer_args(b, t, **{"--load_checkpoint": _truncated_checkpoint(b, t)}),
                                          ["epoch-0.bin", "not a readable torch file"]),
    "missing_checkpoint": lambda b, t: (infer_args(b, t, **{"--load_checkpoint": str(t / "epoch-9.bin")}),
                                        ["--load_checkpoint", "epoch-9.bin"]),
    "pretrained_without_vocab": lambda b, t: (
        infer_args(b, t, **{"--pretrained_model_path": copy_without(b["model"], t / "m", "vocab.json")}),
        ["vocab.json"]),
    "pretrained_without_merges": lambda b, t: (
        infer_args(b, t, **{"--pretrained_model_path": copy_without(b["model"], t / "m", "merges.txt")}),
        ["merges.txt"]),
    "truncated_safetensors": lambda b, t: (
        infer_args(b, t, drop=["--load_checkpoint"],  # without a checkpoint the pretrained weights are read
                   **{"--pretrained_model_path": copy_with_truncated(b["model"], t / "m", "model.safetensors")}),
        ["model.safetensors", "truncated"]),
    "config_json_truncated": lambda b, t: (
        infer_args(b, t, **{"--pretrained_model_path": copy_with_truncated(b["model"], t / "m", "config.json")}),
        ["config.json", "invalid JSON"]),
}


@pytest.mark.parametrize("case", sorted(INFER_CASES))
def test_infer_rejects(case, tmp_path, base):
    check_case(tmp_path, base["root"], "codes/infer.py", lambda t: INFER_CASES[case](base, t))


def test_killing_infer_leaves_no_corrupt_outputs(tmp_path, base):
    """A first run writes complete outputs. A second run SIGKILLed while generating and a third SIGKILLed while
    scoring (at the crash point `result:partial`: its new gen.json written, its metrics not yet) leave them exactly as
    they were: the same files, still sealed together (pal.results)."""
    from helpers.crash import killed_run
    from pal.results import LABEL, check_result_folder
    argv = [a for a in infer_args(base, tmp_path) if a != "--only_generate"] + ["--infer_batch_size", "1",
                                                                                 "--max_length", "20"]
    first = run_script("codes/infer.py", *argv)
    assert first.returncode == 0, first.stderr[-2000:]
    res = tmp_path / "res"
    before = snapshot(str(res))
    assert "metric.json" in {os.path.basename(p) for p in before}
    assert kill_infer_when(tmp_path, argv + ["--seed", "1"], "generate:") == -signal.SIGKILL
    assert snapshot(str(res)) == before
    killed_run("codes/infer.py", argv + ["--seed", "2"], f"{LABEL}:partial")  # asserts it died by SIGKILL there
    scoring = tmp_path / ".res.tmp"  # the killed run's folder: its generations written, not yet scored
    assert (scoring / "gen.json").exists() and not (scoring / "metric.json").exists()
    assert (scoring / "gen.json").read_text() != (res / "gen.json").read_text()  # seed 2 made other replies
    assert snapshot(str(res)) == before
    check_result_folder(str(res))  # a mixed or unsealed folder raises or notes
    assert os.path.isfile(res / "manifest.json")


def kill_infer_when(tmp_path, argv, marker, timeout=240):
    """Run infer.py and SIGKILL it as soon as its stderr shows `marker`; its exit status."""
    log = tmp_path / "stderr.log"
    with open(log, "w") as err:
        process = subprocess.Popen([sys.executable, str(REPO_ROOT / "codes/infer.py"), *argv], env=ENV,
                                   stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.time() + timeout
        while time.time() < deadline and process.poll() is None and marker not in log.read_text(errors="replace"):
            time.sleep(0.02)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        return process.wait()


# ---- evaluate.py, get_EAD_score.py, get_cos_similarity.py ------------------------------------------------------------

def gen_folder(t, records=GEN_RECORDS, text=None):
    path = write(t / "res" / "gen.json", json.dumps(records) if text is None else text)
    return str(os.path.dirname(path))


def with_record(**change):
    records = [dict(r) for r in GEN_RECORDS]
    records[1].update(change)
    return records


def _bytes(t, data):
    folder = t / "res"
    os.makedirs(folder)
    (folder / "gen.json").write_bytes(data)
    return str(folder)


GEN_FAULTS = {  # (folder builder, needles): shared by the three scoring scripts
    "missing_folder": (lambda t: str(t / "nope"), ["nope"]),
    "invalid_json": (lambda t: gen_folder(t, text='[{"generation": '), ["gen.json", "invalid JSON"]),
    "json_object": (lambda t: gen_folder(t, text='{"generation": "x"}'), ["gen.json", "expected a JSON list"]),
    "empty_list": (lambda t: gen_folder(t, text="[]"), ["gen.json", "empty"]),
    "not_utf8": (lambda t: _bytes(t, b'["\xff\xfe"]'), ["gen.json", "not UTF-8"]),
}

EVALUATE_CASES = {
    **{f"gen_{k}": (lambda f: lambda t: ([f[0](t), "--ead_vocab_size", "100"], f[1]))(f)
       for k, f in GEN_FAULTS.items()},
    "ead_vocab_size_0": lambda t: ([gen_folder(t), "--ead_vocab_size", "0"], ["--ead_vocab_size", "0"]),
    "generation_null": lambda t: ([gen_folder(t, with_record(generation=None))], ["record 1", "generation"]),
}

EAD_CASES = {
    **{f"gen_{k}": (lambda f: lambda t: (["--input_file", f[0](t)], f[1]))(f) for k, f in GEN_FAULTS.items()},
    "vocab_size_0": lambda t: (["--input_file", gen_folder(t), "--vocab_size", "0"], ["--vocab_size", "0"]),
    "n_0": lambda t: (["--input_file", gen_folder(t), "--n", "1", "0"], ["--n", "0"]),
    "output_is_a_folder": lambda t: (["--input_file", gen_folder(t), "--output_file", str(make_dir(t / "out"))],
                                     ["--output_file", "is a folder"]),
    "generation_is_a_number": lambda t: (["--input_file", gen_folder(t, with_record(generation=3))],
                                         ["record 1", "generation", "int"]),
}


@pytest.mark.parametrize("case", sorted(EVALUATE_CASES))
def test_evaluate_rejects(case, tmp_path, punkt):
    check_case(tmp_path, tmp_path, "codes/evaluate.py", EVALUATE_CASES[case])


@pytest.mark.parametrize("case", sorted(EAD_CASES))
def test_get_ead_score_rejects(case, tmp_path, punkt):
    check_case(tmp_path, tmp_path, "codes/get_EAD_score.py", EAD_CASES[case])


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from pal.tiny import make_tiny_bert_dir
    return make_tiny_bert_dir(str(tmp_path_factory.mktemp("tiny_bert")))


def cos_args(t, bert, folder=None, *extra):
    return ["--input_file", folder or gen_folder(t), "--model", bert, "--device", "cpu", *extra]


COS_CASES = {
    **{f"gen_{k}": (lambda f: lambda t, bert: (cos_args(t, bert, f[0](t)), f[1]))(f) for k, f in GEN_FAULTS.items()},
    "persona_null": lambda t, bert: (cos_args(t, bert, gen_folder(t, with_record(persona=None))),
                                     ["record 1", "persona", "null"]),
    "persona_a_number": lambda t, bert: (cos_args(t, bert, gen_folder(t, [dict(GEN_RECORDS[0], persona=1)])),
                                        ["record 0", "persona", "int"]),
    "batch_size_0": lambda t, bert: (cos_args(t, bert, None, "--batch_size", "0"), ["--batch_size", "0"]),
    "output_is_a_folder": lambda t, bert: (cos_args(t, bert, None, "--output_file", str(make_dir(t / "out"))),
                                           ["--output_file", "is a folder"]),
    "encoder_without_vocab": lambda t, bert: (cos_args(t, copy_without(bert, t / "enc", "vocab.txt", "tokenizer.json")),
                                              ["enc", "incomplete tokenizer folder"]),
    "encoder_truncated_weights": lambda t, bert: (cos_args(t, copy_with_truncated(bert, t / "enc", "model.safetensors")),
                                                  ["model.safetensors", "truncated"]),
    "device_bogus": lambda t, bert: (cos_args(t, bert, None, "--device", "bogus"), ["--device", "bogus"]),
}


@pytest.mark.parametrize("case", sorted(COS_CASES))
def test_get_cos_similarity_rejects(case, tmp_path, tiny_bert):
    check_case(tmp_path, tiny_bert, "codes/get_cos_similarity.py", lambda t: COS_CASES[case](t, tiny_bert))


SUBPROCESS_CASES = [  # one case of every table, run as `python SCRIPT ...` (data scripts: test_bad_input_data.py)
    ("codes/prepare.py", "tokenizer_without_vocab"), ("codes/infer.py", "top_p_1.5"),
    ("codes/infer.py", "text_file_named_epoch_bin"), ("codes/evaluate.py", "ead_vocab_size_0"),
    ("codes/get_EAD_score.py", "output_is_a_folder"), ("codes/get_cos_similarity.py", "persona_null"),
]


@pytest.mark.parametrize("script,case", SUBPROCESS_CASES, ids=[f"{s.split('/')[-1]}-{c}" for s, c in SUBPROCESS_CASES])
def test_scripts_reject_in_a_subprocess(script, case, tmp_path, base, tiny_bert):
    builders = {"codes/prepare.py": lambda t: PREPARE_CASES[case](base, t),
                "codes/infer.py": lambda t: INFER_CASES[case](base, t),
                "codes/evaluate.py": EVALUATE_CASES.get(case), "codes/get_EAD_score.py": EAD_CASES.get(case),
                "codes/get_cos_similarity.py": lambda t: COS_CASES[case](t, tiny_bert)}
    check_case(tmp_path, base["root"], script, builders[script], in_process=False)


def test_baselines_succeed(tmp_path, tiny_bert):
    """The valid baselines the tables start from do run (so every rejection above is due to its one fault)."""
    result = run_script("codes/get_cos_similarity.py", *cos_args(tmp_path, tiny_bert))
    assert result.returncode == 0, result.stderr[-2000:]
    assert run_script("codes/evaluate.py", tmp_path / "res", "--ead_vocab_size", "100").returncode == 0
    assert run_script("codes/get_EAD_score.py", "--input_file", tmp_path / "res").returncode == 0
