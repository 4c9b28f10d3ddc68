"""Bad input at the training, annotation and chat entry points (train, train_bart, annotate_esconv, interact), in
the design of test_bad_input.py: one valid baseline per stage (test_training_baselines_succeed runs each), then
exactly one fault per case; each case asserts exit status 2, one `error: ...` line and no traceback, a message naming
the file or option, and no new or changed file. (Results and human evaluation: test_bad_input_results.py.)

Also the fault tolerance of annotate_esconv.py: a SIGKILL mid-run leaves no PESConv.json, or the previous one intact.
(SIGKILL of training between and at its save points, then --resume: tests/test_crash_consistency.py.)
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from helpers.bad_input import (ENV, check_case, copy_with_truncated, copy_without, flat, make_dir, run_ok, truncate,
                               write)
from helpers.paths import REPO_ROOT, load_script

pytestmark = [pytest.mark.robustness, pytest.mark.usefixtures("one_torch_thread")]
BART_TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer.json")


def copy_tree(src, dst):
    shutil.copytree(src, dst)
    return str(dst)


def without_tokenizer(src, dst):
    shutil.copytree(src, dst)
    for name in BART_TOKENIZER_FILES:
        if os.path.exists(os.path.join(dst, name)):
            os.remove(os.path.join(dst, name))
    return str(dst)


# ---- codes/train.py ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def train_base(base):
    """base's data prepared for training, and a stopped run (--max_steps 1 of 2 epochs) that holds a resumable state."""
    root = base["root"] / "train"
    prepare = load_script("codes/prepare.py")
    prepare.main(["--config_name", "strat", "--inputter_name", "strat", "--train_input_file", base["data"],
                  "--pretrained_model_path", base["model"], "--output_dir", str(root / "prepared"), "--pbar", "False",
                  "--max_input_length", "64"])
    stopped = root / "stopped"
    load_script("codes/train.py").main(train_args(base, root, str(stopped), "--num_epochs", "2", "--max_steps", "1"))
    assert os.path.isdir(stopped / "training_state")
    return dict(base, prepared=str(root / "prepared"), stopped=str(stopped))


def train_args(b, root, out, *extra, drop=(), **change):
    args = {"--config_name": "strat", "--inputter_name": "strat", "--eval_input_file": b["data"],
            "--pretrained_model_path": b["model"], "--prepared_dir": str(root / "prepared"), "--output_dir": out,
            "--pbar": "False", "--max_input_length": "64", "--train_batch_size": "2", "--num_epochs": "1",
            "--max_steps": "1", "--device": "cpu"}
    args.update(change)
    return flat(args, drop) + list(extra)


def _targs(b, t, *extra, **change):
    return train_args(b, b["root"] / "train", str(t / "run"), *extra, **change)


def _resume_with(b, t, damage):
    """A copy of the stopped run with one file of its state damaged, resumed."""
    run = copy_tree(b["stopped"], t / "stopped")
    damage(os.path.join(run, "training_state"))
    return ["--resume", run, "--max_steps", "2", "--device", "cpu", "--pbar", "False"]  # the run keeps its arguments


TRAIN_CASES = {
    "output_dir_is_a_file": lambda b, t: (_targs(b, t, **{"--output_dir": write(t / "run", "x")}),
                                          ["--output_dir", "run", "is a file"]),
    "negative_learning_rate": lambda b, t: (_targs(b, t, "--learning_rate", "-0.00001"),
                                            ["--learning_rate", "-0.00001"]),
    "num_epochs_0": lambda b, t: (_targs(b, t, **{"--num_epochs": "0"}), ["--num_epochs", "0"]),
    "batch_size_0": lambda b, t: (_targs(b, t, **{"--train_batch_size": "0"}), ["--train_batch_size", "0"]),
    "negative_max_grad_norm": lambda b, t: (_targs(b, t, "--max_grad_norm", "-1"), ["--max_grad_norm", "-1"]),
    "negative_weight_decay": lambda b, t: (_targs(b, t, "--weight_decay", "-0.1"), ["--weight_decay", "-0.1"]),
    "negative_warmup": lambda b, t: (_targs(b, t, "--warmup_steps", "-1"), ["--warmup_steps", "-1"]),
    "max_input_length_0": lambda b, t: (_targs(b, t, **{"--max_input_length": "0"}), ["--max_input_length", "0"]),
    "missing_eval_file": lambda b, t: (_targs(b, t, **{"--eval_input_file": str(t / "nope.txt")}),
                                       ["--eval_input_file", "nope.txt", "no such file"]),
    "empty_eval_file": lambda b, t: (_targs(b, t, **{"--eval_input_file": write(t / "empty.txt", "")}),
                                     ["empty.txt"]),
    "text_file_named_epoch_bin": lambda b, t: (
        _targs(b, t, "--load_checkpoint", write(t / "old" / "epoch-0.bin", "not a checkpoint\n")),
        ["epoch-0.bin", "not a readable torch file"]),
    "truncated_checkpoint": lambda b, t: (
        _targs(b, t, "--load_checkpoint", truncate(shutil.copy(b["ckpt"], t / "epoch-0.bin"))),
        ["epoch-0.bin", "not a readable torch file"]),
    "pretrained_without_vocab": lambda b, t: (
        _targs(b, t, **{"--pretrained_model_path": copy_without(b["model"], t / "m", "vocab.json")}), ["vocab.json"]),
    "pretrained_without_merges": lambda b, t: (
        _targs(b, t, **{"--pretrained_model_path": copy_without(b["model"], t / "m", "merges.txt")}),
        ["merges.txt"]),
    "truncated_safetensors": lambda b, t: (
        _targs(b, t, **{"--pretrained_model_path": copy_with_truncated(b["model"], t / "m", "model.safetensors")}),
        ["model.safetensors", "truncated"]),
    "missing_prepared_dir": lambda b, t: (_targs(b, t, **{"--prepared_dir": str(t / "nope")}),
                                          ["--prepared_dir", "nope", "no such folder"]),
    "resume_missing_folder": lambda b, t: (_targs(b, t, "--resume", str(t / "nope")), ["--resume", "nope"]),
    "resume_truncated_engine_state": lambda b, t: (
        _resume_with(b, t, lambda d: truncate(os.path.join(d, "engine_state.pt"))), ["engine_state.pt", "damaged"]),
    "resume_truncated_model_state": lambda b, t: (
        _resume_with(b, t, lambda d: truncate(os.path.join(d, "model.pt"))), ["model.pt", "damaged"]),
    "resume_text_rank_state": lambda b, t: (
        _resume_with(b, t, lambda d: write(os.path.join(d, "rank_state_0.pt"), "x")), ["rank_state_0.pt"]),
}


@pytest.mark.parametrize("case", sorted(TRAIN_CASES))
def test_train_rejects(case, tmp_path, train_base):
    check_case(tmp_path, train_base["root"], "codes/train.py", lambda t: TRAIN_CASES[case](train_base, t))


@pytest.mark.slow
def test_training_killed_between_save_points_resumes_to_the_uninterrupted_run(tmp_path, train_base):
    """SIGKILL from outside while training steps run (a state was saved, the next not yet), then --resume: the same
    checkpoints and train_log.csv as a run that was never interrupted. (Kills inside a save: test_crash_consistency.)"""
    train = load_script("codes/train.py")
    common = {"--train_batch_size": "1", "--num_epochs": "2", "--max_steps": "0"}
    straight, killed = str(tmp_path / "straight"), tmp_path / "killed"
    train.main(_targs(train_base, tmp_path, "--save_state_steps", "4", **common, **{"--output_dir": straight}))
    argv = _targs(train_base, tmp_path, "--save_state_steps", "4", **common, **{"--output_dir": str(killed)})
    log = killed / "train_log.csv"
    rows = lambda: log.read_text().count("\n") - 1 if log.exists() else 0  # noqa: E731
    assert kill_when(["codes/train.py", *argv], lambda: rows() >= 6) == -signal.SIGKILL
    assert 6 <= rows() < 20 and (killed / train.STATE_DIR).is_dir()
    train.main([*argv, "--resume", str(killed)])
    for epoch in (0, 1):
        a, b = (torch.load(os.path.join(d, f"epoch-{epoch}.bin"), weights_only=True) for d in (straight, killed))
        assert all(torch.equal(a[k], b[k]) for k in a), epoch
    strip = lambda path: [r.split(",")[:-1] for r in open(path).read().splitlines()]  # noqa: E731 (epoch_time last)
    assert strip(killed / "train_log.csv") == strip(os.path.join(straight, "train_log.csv"))


def kill_when(command, ready, timeout=240):
    """Run `python SCRIPT ARGS...` and SIGKILL it as soon as ready() holds; its exit status."""
    process = subprocess.Popen([sys.executable, str(REPO_ROOT / command[0]), *command[1:]], env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None and not ready():
        time.sleep(0.01)
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    return process.wait()


# ---- persona_extractor/train_bart.py -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bart_base(tmp_path_factory):
    """A tiny BART, context/persona CSVs, and a stopped extractor run (last/ resumable) with best/."""
    from persona_extractor.tiny_bart import make_tiny_bart_dir
    root = tmp_path_factory.mktemp("bad_input_bart")
    model = make_tiny_bart_dir(str(root / "bart"))
    rows = [{"context": f"hi <sep> i like {w} </s>", "persona": f"i like {w}. </s>"}
            for w in ("cats", "dogs", "tea", "rain", "books", "maps", "jazz", "snow")]
    for name in ("train", "valid", "test"):
        pd.DataFrame(rows).to_csv(root / f"{name}.csv")
    b = {"root": root, "model": model, "train": str(root / "train.csv"), "valid": str(root / "valid.csv"),
         "test": str(root / "test.csv")}
    stopped = str(root / "stopped")
    load_script("persona_extractor/train_bart.py").main(bart_args(b, stopped, **{"--num_epochs": "2"}))
    assert os.path.isdir(os.path.join(stopped, "last")) and os.path.isdir(os.path.join(stopped, "best"))
    return dict(b, stopped=stopped)


def bart_args(b, out, *extra, **change):
    args = {"--train_file": b["train"], "--valid_file": b["valid"], "--model_name_or_path": b["model"],
            "--output_dir": out, "--train_batch_size": "4", "--eval_batch_size": "4", "--num_epochs": "1",
            "--max_steps": "1", "--val_check_interval": "0.5", "--device": "cpu", "--no_progress": None}
    args.update(change)
    return flat(args) + list(extra)


def _bargs(b, t, *extra, **change):
    return bart_args(b, str(t / "out"), *extra, **change)


def _bart_resume_with(b, t, damage):
    run = copy_tree(b["stopped"], t / "stopped")
    damage(os.path.join(run, "last"))
    return bart_args(b, run, "--resume", **{"--num_epochs": "2", "--max_steps": "2"})


def _infer_args(b, t, **change):
    args = {"--do_infer": None, "--output_dir": b["stopped"], "--infer_file": b["test"],
            "--infer_output": str(t / "gen.csv"), "--num_beams": "1", "--max_length": "4", "--device": "cpu",
            "--no_progress": None}
    args.update(change)
    return flat(args)


BART_CASES = {
    "output_dir_is_a_file": lambda b, t: (_bargs(b, t, **{"--output_dir": write(t / "out", "x")}),
                                          ["--output_dir", "is a file"]),
    "negative_learning_rate": lambda b, t: (_bargs(b, t, "--learning_rate", "-0.00001"),
                                            ["--learning_rate", "-0.00001"]),
    "val_check_interval_0": lambda b, t: (_bargs(b, t, **{"--val_check_interval": "0"}), ["--val_check_interval"]),
    "val_check_interval_2": lambda b, t: (_bargs(b, t, **{"--val_check_interval": "2"}), ["--val_check_interval"]),
    "patience_0": lambda b, t: (_bargs(b, t, "--patience", "0"), ["--patience", "0"]),
    "batch_size_0": lambda b, t: (_bargs(b, t, **{"--train_batch_size": "0"}), ["--train_batch_size", "0"]),
    "max_source_length_0": lambda b, t: (_bargs(b, t, "--max_source_length", "0"), ["--max_source_length"]),
    "bart_without_tokenizer": lambda b, t: (
        _bargs(b, t, **{"--model_name_or_path": without_tokenizer(b["model"], t / "m")}),
        [str(t / "m"), "incomplete tokenizer folder"]),
    "truncated_safetensors": lambda b, t: (
        _bargs(b, t, **{"--model_name_or_path": copy_with_truncated(b["model"], t / "m", "model.safetensors")}),
        ["model.safetensors", "truncated"]),
    "missing_train_file": lambda b, t: (_bargs(b, t, **{"--train_file": str(t / "nope.csv")}),
                                        ["--train_file", "nope.csv"]),
    "header_only_train_file": lambda b, t: (_bargs(b, t, **{"--train_file": write(t / "e.csv", ",context,persona\n")}),
                                            ["e.csv", "no rows"]),
    "train_file_without_persona": lambda b, t: (_bargs(b, t, **{"--train_file": write(t / "c.csv", "context\nhi\n")}),
                                                ["c.csv", "persona"]),
    "resume_truncated_engine_state": lambda b, t: (
        _bart_resume_with(b, t, lambda d: truncate(os.path.join(d, "engine_state.pt"))),
        ["engine_state.pt", "damaged"]),
    "resume_truncated_weights": lambda b, t: (
        _bart_resume_with(b, t, lambda d: truncate(os.path.join(d, "model.safetensors"))),
        ["model.safetensors", "truncated"]),
    "resume_without_tokenizer": lambda b, t: (
        _bart_resume_with(b, t, lambda d: [os.remove(os.path.join(d, n)) for n in BART_TOKENIZER_FILES
                                          if os.path.exists(os.path.join(d, n))]),
        ["last", "incomplete tokenizer folder"]),
    "infer_output_is_a_folder": lambda b, t: (_infer_args(b, t, **{"--infer_output": str(make_dir(t / "g.csv"))}),
                                              ["--infer_output", "is a folder"]),
    "infer_missing_file": lambda b, t: (_infer_args(b, t, **{"--infer_file": str(t / "nope.csv")}),
                                        ["--infer_file", "nope.csv"]),
    "infer_num_beams_0": lambda b, t: (_infer_args(b, t, **{"--num_beams": "0"}), ["--num_beams", "0"]),
}


@pytest.mark.parametrize("case", sorted(BART_CASES))
def test_train_bart_rejects(case, tmp_path, bart_base):
    check_case(tmp_path, bart_base["root"], "persona_extractor/train_bart.py", lambda t: BART_CASES[case](bart_base, t))


# ---- persona_extractor/annotate_esconv.py ------------------------------------------------------------------------
def esconv_records(n=6):
    def dialog(k):
        turns = [{"speaker": "supporter", "annotation": {"strategy": "Question"}, "content": "how are you?"}]
        for j in range(3 + k % 2):
            turns += [{"speaker": "seeker", "annotation": {}, "content": f"i feel sad {j} {k}"},
                      {"speaker": "supporter", "annotation": {"strategy": "Question"}, "content": "why is that?"}]
        return turns
    return [{"emotion_type": "sadness", "problem_type": "job", "situation": "lost job", "dialog": dialog(k)}
            for k in range(n)]


def annotate_args(b, t, **change):
    args = {"--model_dir": b["model"], "--input_file": write(t / "ESConv.json", json.dumps(esconv_records())),
            "--output_file": str(t / "PESConv.json"), "--num_beams": "1", "--max_length": "4", "--chunk_size": "2",
            "--device": "cpu", "--no_progress": None}
    args.update(change)
    return flat(args)


ANNOTATE_CASES = {
    "output_file_is_a_folder": lambda b, t: (annotate_args(b, t, **{"--output_file": str(make_dir(t / "P.json"))}),
                                             ["--output_file", "is a folder"]),
    "output_under_a_file": lambda b, t: (annotate_args(b, t, **{"--output_file": str(t / "ESConv.json" / "P.json")}),
                                         ["--output_file", "is a file"]),
    "batch_size_0": lambda b, t: (annotate_args(b, t, **{"--batch_size": "0"}), ["--batch_size", "0"]),
    "num_beams_0": lambda b, t: (annotate_args(b, t, **{"--num_beams": "0"}), ["--num_beams", "0"]),
    "length_penalty_nan": lambda b, t: (annotate_args(b, t, **{"--length_penalty": "nan"}), ["--length_penalty"]),
    "missing_input": lambda b, t: (annotate_args(b, t, **{"--input_file": str(t / "nope.json")}),
                                   ["--input_file", "nope.json", "no such file"]),
    "empty_input": lambda b, t: (annotate_args(b, t, **{"--input_file": write(t / "e.json", "[]")}), ["e.json"]),
    "invalid_json_input": lambda b, t: (annotate_args(b, t, **{"--input_file": write(t / "e.json", '[{"dialog"')}),
                                        ["e.json"]),
    "model_without_tokenizer": lambda b, t: (
        annotate_args(b, t, **{"--model_dir": without_tokenizer(b["model"], t / "m")}),
        [str(t / "m"), "incomplete tokenizer folder"]),
    "model_truncated_safetensors": lambda b, t: (
        annotate_args(b, t, **{"--model_dir": copy_with_truncated(b["model"], t / "m", "model.safetensors")}),
        ["model.safetensors", "truncated"]),
    "missing_model_dir": lambda b, t: (annotate_args(b, t, **{"--model_dir": str(t / "nomodel")}), ["nomodel"]),
}


@pytest.mark.parametrize("case", sorted(ANNOTATE_CASES))
def test_annotate_esconv_rejects(case, tmp_path, bart_base):
    check_case(tmp_path, bart_base["root"], "persona_extractor/annotate_esconv.py",
               lambda t: ANNOTATE_CASES[case](bart_base, t))


@pytest.mark.slow
def test_killing_annotate_leaves_no_corrupt_output(tmp_path, bart_base):
    """A SIGKILL once chunks are saved leaves no PESConv.json (only the resumable .partial); a second run killed the
    same way leaves the first run's complete PESConv.json as it was."""
    source = write(tmp_path / "big" / "ESConv.json", json.dumps(esconv_records(40)))
    argv = annotate_args(bart_base, tmp_path, **{"--input_file": source, "--chunk_size": "1", "--batch_size": "1",
                                                 "--max_length": "24"})
    out, partial = tmp_path / "PESConv.json", tmp_path / "PESConv.json.partial"
    assert kill_when_saved(argv, partial) == -signal.SIGKILL
    assert not out.exists()
    done = subprocess.run([sys.executable, str(REPO_ROOT / "persona_extractor/annotate_esconv.py"), *argv, "--resume"],
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    before = out.read_bytes()
    assert len(json.loads(before)) == 40 and not partial.exists()
    assert kill_when_saved(argv + ["--max_length", "20"], partial) == -signal.SIGKILL  # a new run, killed
    assert out.read_bytes() == before


def kill_when_saved(argv, partial, chunks=3):
    """Run annotate_esconv.py and SIGKILL it once `partial` holds `chunks` saved chunks; its exit status."""
    def saved():
        return os.path.exists(partial) and open(partial, encoding="utf-8").read().count("\n") > chunks
    return kill_when(["persona_extractor/annotate_esconv.py", *argv], saved)


# ---- codes/interact.py -----------------------------------------------------------------------------------------------
def interact_args(b, t, *extra, drop=(), **change):
    args = {"--config_name": "strat", "--inputter_name": "strat", "--pretrained_model_path": b["model"],
            "--load_checkpoint": b["ckpt"], "--output_dir": str(t / "dialogs"), "--max_length": "5",
            "--min_length": "1", "--device": "cpu"}
    args.update(change)
    return flat(args, drop) + list(extra)


def _latin1(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"i like caf\xe9s.\n")
    return str(path)


INTERACT_CASES = {
    "top_p_1.5": lambda b, t: (interact_args(b, t, **{"--top_p": "1.5"}), ["--top_p", "1.5"]),
    "temperature_0": lambda b, t: (interact_args(b, t, **{"--temperature": "0"}), ["--temperature", "0"]),
    "num_beams_0": lambda b, t: (interact_args(b, t, **{"--num_beams": "0"}), ["--num_beams", "0"]),
    "max_input_length_0": lambda b, t: (interact_args(b, t, **{"--max_input_length": "0"}), ["--max_input_length"]),
    "output_dir_is_a_file": lambda b, t: (interact_args(b, t, **{"--output_dir": write(t / "dialogs", "x")}),
                                          ["--output_dir", "is a file"]),
    "default_output_dir_is_a_file": lambda b, t: (
        interact_args(b, t, drop=["--output_dir"], **{"--load_checkpoint": _ckpt_with_file_beside(b, t)}),
        ["epoch-0.bin_interact_dialogs", "is a file"]),
    "text_file_named_epoch_bin": lambda b, t: (
        interact_args(b, t, **{"--load_checkpoint": write(t / "old" / "epoch-0.bin", "x\n")}),
        ["epoch-0.bin", "not a readable torch file"]),
    "truncated_checkpoint": lambda b, t: (
        interact_args(b, t, **{"--load_checkpoint": truncate(shutil.copy(b["ckpt"], t / "epoch-0.bin"))}),
        ["epoch-0.bin", "not a readable torch file"]),
    "missing_checkpoint": lambda b, t: (interact_args(b, t, **{"--load_checkpoint": str(t / "epoch-9.bin")}),
                                        ["--load_checkpoint", "epoch-9.bin"]),
    "pretrained_without_vocab": lambda b, t: (
        interact_args(b, t, **{"--pretrained_model_path": copy_without(b["model"], t / "m", "vocab.json")}),
        ["vocab.json"]),
    "missing_persona_file": lambda b, t: (interact_args(b, t, "--persona_file", str(t / "p.txt")),
                                          ["--persona_file", "p.txt"]),
    "empty_persona_file": lambda b, t: (interact_args(b, t, "--persona_file", write(t / "p.txt", "\n")),
                                        ["p.txt", "empty"]),
    "persona_file_not_utf8": lambda b, t: (interact_args(b, t, "--persona_file", _latin1(t / "p.txt")),
                                           ["p.txt", "not UTF-8"]),
    "missing_persona_extractor": lambda b, t: (interact_args(b, t, "--persona_extractor", str(t / "ex")),
                                               ["--persona_extractor", "ex"]),
}


def _ckpt_with_file_beside(b, t):
    ckpt = shutil.copy(b["ckpt"], t / "epoch-0.bin")
    write(t / "epoch-0.bin_interact_dialogs", "x")
    return str(ckpt)


@pytest.mark.parametrize("case", sorted(INTERACT_CASES))
def test_interact_rejects(case, tmp_path, base):
    check_case(tmp_path, base["root"], "codes/interact.py", lambda t: INTERACT_CASES[case](base, t))


@pytest.mark.slow
def test_training_baselines_succeed(tmp_path, train_base, bart_base):
    """The valid baselines the tables start from do run (so every rejection above is due to its one fault)."""
    run_ok("codes/train.py", *_targs(train_base, tmp_path))
    assert os.path.isfile(tmp_path / "run" / "epoch-0.bin")
    run_ok("persona_extractor/train_bart.py", *_bargs(bart_base, tmp_path))
    run_ok("persona_extractor/train_bart.py", *_infer_args(bart_base, tmp_path))
    run_ok("persona_extractor/annotate_esconv.py", *annotate_args(bart_base, tmp_path))
    assert len(json.loads((tmp_path / "PESConv.json").read_text())) == 6
    run_ok("codes/interact.py", *interact_args(train_base, tmp_path), stdin="i lost my job\n")
    assert len([n for n in os.listdir(tmp_path / "dialogs") if n != "interact_args.json"]) == 1
