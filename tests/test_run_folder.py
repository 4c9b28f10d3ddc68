"""A run folder is enough to infer and interact from (palkit.run_folder): train with overrides, then infer / interact
with the run folder alone; explicit arguments win and are recorded; conflicts and stale paths are one-line errors."""
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers.paths import fake_venv, load_script
from helpers.training import SHORT, load, train_args
from palkit.cli import UserError
from palkit.run_folder import explicit_dests

infer = load_script("codes/infer.py")
interact = load_script("codes/interact.py")
train = load_script("codes/train.py")

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = ["--max_length", "6", "--min_length", "2", "--infer_batch_size", "4", "--only_generate"]


@pytest.fixture(scope="module")
def run(data, tiny_blender_dir):
    """A run trained with overrides (tiny pretrained folder, short inputs, fusion padding masked), two epochs."""
    out = data / "run"
    train.main(train_args(data, tiny_blender_dir, out, "--num_epochs", "2", "--fusion_mask_padding", "True"))
    return out


def gen(save_dir):
    return (save_dir / "gen.json").read_bytes()


def test_infer_from_the_run_folder_alone_equals_every_argument_given(run, data, tiny_blender_dir, tmp_path, capsys):
    infer.main(["--load_checkpoint", str(run), "--infer_input_file", str(data / "valid.txt"), *FAST,
                "--save_dir", str(tmp_path / "from_run")])
    err = capsys.readouterr().err
    assert "using its last epoch, epoch-1.bin" in err and "pretrained_model_path=" in err
    infer.main(["--config_name", "strat", "--inputter_name", "strat", "--pretrained_model_path", tiny_blender_dir,
                "--load_checkpoint", str(run / "epoch-1.bin"), "--infer_input_file", str(data / "valid.txt"), *FAST,
                *SHORT[:2], "--fusion_mask_padding", "True", "--save_dir", str(tmp_path / "explicit")])
    assert gen(tmp_path / "from_run") == gen(tmp_path / "explicit")
    recorded = json.loads((tmp_path / "from_run" / "infer_args.json").read_text())
    assert recorded["load_checkpoint"] == str(run / "epoch-1.bin")
    assert recorded["max_input_length"] == int(SHORT[1]) and recorded["fusion_mask_padding"] is True
    assert set(recorded["run_folder"]["taken"]) == set(infer.RUN_FOLDER_KEYS)
    assert recorded["run_folder"]["model_config"] == str(run / "config.json")


def test_flush_subnormal_fusion_is_a_recorded_flag_that_changes_no_reply(run, data, tmp_path):
    assert json.loads((run / "args.json").read_text())["flush_subnormal_fusion"] is True
    argv = ["-c", str(run), "--infer_input_file", str(data / "valid.txt"), *FAST]
    infer.main([*argv, "--save_dir", str(tmp_path / "flushed")])
    infer.main([*argv, "--flush_subnormal_fusion", "False", "--save_dir", str(tmp_path / "kept")])
    assert gen(tmp_path / "flushed") == gen(tmp_path / "kept")
    assert json.loads((tmp_path / "kept" / "infer_args.json").read_text())["flush_subnormal_fusion"] is False
    from pal.model import build_model
    _, model = build_model("strat", json.loads((run / "args.json").read_text())["pretrained_model_path"],
                           flush_subnormal_fusion=False)
    assert model.flush_subnormal_fusion is False


def test_explicit_argument_wins_and_is_recorded(run, data, tmp_path, capsys):
    infer.main(["-c", str(run / "epoch-0.bin"), "--infer_input_file", str(data / "valid.txt"), *FAST,
                "--max_input_length", "32", "--save_dir", str(tmp_path / "out")])
    assert f"--max_input_length 32 given; the run was trained with {SHORT[1]}" in capsys.readouterr().err
    recorded = json.loads((tmp_path / "out" / "infer_args.json").read_text())
    assert recorded["max_input_length"] == 32
    assert recorded["run_folder"]["overridden"] == {"max_input_length": int(SHORT[1])}
    assert "max_input_length" not in recorded["run_folder"]["taken"]


def test_another_config_name_than_the_runs_is_a_one_line_error(run, data, tmp_path):
    with pytest.raises(UserError, match="trained with --config_name strat .*args.json"):
        infer.main(["-c", str(run), "--config_name", "strat_no_persona", "--infer_input_file",
                    str(data / "valid.txt"), *FAST, "--save_dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_a_vanished_pretrained_folder_is_named(run, data, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    recorded = json.loads((copy / "args.json").read_text())
    recorded["pretrained_model_path"] = str(tmp_path / "gone")
    (copy / "args.json").write_text(json.dumps(recorded))
    with pytest.raises(UserError, match="pretrained_model_path .*gone .*is not there any more"):
        infer.main(["-c", str(copy), "--infer_input_file", str(data / "valid.txt"), *FAST])


def test_the_model_shape_comes_from_the_runs_config_json(run, data, tiny_blender_dir, blender_tokenizer_dir, tmp_path):
    """A tokenizer folder whose model config has another shape: the run's config.json builds the right model."""
    from pal.tiny import make_tiny_blenderbot_dir
    other = make_tiny_blenderbot_dir(str(tmp_path / "wider"), tokenizer_dir=blender_tokenizer_dir, d_model=48)
    argv = ["-c", str(run), "--infer_input_file", str(data / "valid.txt"), *FAST]
    infer.main([*argv, "--pretrained_model_path", other, "--save_dir", str(tmp_path / "other")])
    infer.main([*argv, "--save_dir", str(tmp_path / "same")])
    assert gen(tmp_path / "other") == gen(tmp_path / "same")


def test_without_a_run_folder_the_mismatch_hint_names_the_pretrained_folder(run, data, blender_tokenizer_dir,
                                                                            tmp_path):
    from pal.tiny import make_tiny_blenderbot_dir
    other = make_tiny_blenderbot_dir(str(tmp_path / "wider"), tokenizer_dir=blender_tokenizer_dir, d_model=48)
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(run / "epoch-0.bin", bare / "epoch-0.bin")  # no args.json / config.json beside it
    with pytest.raises(UserError, match="pretrained folder .*config.json and vocabulary.*args.json"):
        infer.main(["--config_name", "strat", "--inputter_name", "strat", "--pretrained_model_path", other,
                    "-c", str(bare / "epoch-0.bin"), "--infer_input_file", str(data / "valid.txt"), *FAST])


def test_config_name_is_required_without_a_run_folder(data):
    with pytest.raises(UserError, match="--config_name is required"):
        infer.main(["--infer_input_file", str(data / "valid.txt")])


def test_interact_from_the_run_folder_alone(run, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("hi there\n"))
    interact.main(["-c", str(run), "--max_length", "4", "--output_dir", str(tmp_path / "dialogs")])
    out = capsys.readouterr().out
    assert "AI [" in out
    recorded = json.loads((tmp_path / "dialogs" / "interact_args.json").read_text())
    assert recorded["config_name"] == "strat" and recorded["fusion_mask_padding"] is True
    assert recorded["max_input_length"] == int(SHORT[1])


def test_explicit_dests_sees_only_what_the_command_line_gave():
    parser = infer.build_parser()
    given = explicit_dests(parser, ["--infer_input_file", __file__, "--max_input_length", "512", "--only_generate"])
    assert given == {"infer_input_file", "max_input_length", "only_generate"}
    assert "config_name" in explicit_dests(parser, ["--infer_input_file", __file__, "--config_name", "strat"])


def test_run_scripts_infer_and_interact_from_the_run_folder_without_pretrained_path(run, data, tmp_path):
    fake_venv(tmp_path / "venv", REPO)
    env = {k: v for k, v in os.environ.items() if k != "PRETRAINED_MODEL_PATH"} | {
        "PAL_VENV": str(tmp_path / "venv"), "INFER_FILE": str(data / "valid.txt")}
    infer_run = subprocess.run(["bash", "RUN/infer_strat.sh", str(run), *FAST, "--save_dir", str(tmp_path / "res")],
                               cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert infer_run.returncode == 0, infer_run.stderr
    assert json.loads((tmp_path / "res" / "infer_args.json").read_text())["pretrained_model_path"] == \
        json.loads((run / "args.json").read_text())["pretrained_model_path"]
    chat = subprocess.run(["bash", "RUN/interact_strat.sh", str(run / "epoch-0.bin"), "--max_length", "4",
                           "--output_dir", str(tmp_path / "dialogs")], input="hello\n", cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert chat.returncode == 0, chat.stderr
    assert "AI [" in chat.stdout and "conversation saved to" in chat.stdout


def moved_run(run, tmp_path, eval_dir=None, train_dir=None):
    """A copy of the run whose args.json records its validation file in eval_dir and whose features (a copy of the
    prepared folder) record their training file in train_dir."""
    copy = tmp_path / "moved_run"
    shutil.copytree(run, copy)
    recorded = json.loads((copy / "args.json").read_text())
    prepared = tmp_path / "prepared"
    shutil.copytree(recorded["prepared_dir"], prepared)
    meta_path = prepared / "features" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["train_input_file"] = str((train_dir or tmp_path / "nowhere") / "train.txt")
    meta_path.write_text(json.dumps(meta))
    recorded.update(eval_input_file=str((eval_dir or tmp_path / "nowhere") / "valid.txt"), prepared_dir=str(prepared))
    (copy / "args.json").write_text(json.dumps(recorded))
    return copy


@pytest.mark.parametrize("beside", ["validation", "training"])
def test_infer_without_an_input_file_takes_the_test_file_beside_the_runs_data(run, data, tmp_path, capsys, beside):
    split = tmp_path / "split"
    split.mkdir()
    shutil.copy(data / "valid.txt", split / "test.txt")
    copy = moved_run(run, tmp_path, **{"eval_dir" if beside == "validation" else "train_dir": split})
    infer.main(["-c", str(copy), *FAST, "--save_dir", str(tmp_path / "default")])
    note = [line for line in capsys.readouterr().err.splitlines() if "no --infer_input_file" in line]
    where = "the run's validation file (args.json)" if beside == "validation" else "its training file"
    assert len(note) == 1 and os.path.relpath(split / "test.txt") in note[0] and where in note[0], note
    infer.main(["-c", str(copy), *FAST, "--infer_input_file", str(split / "test.txt"), "--save_dir",
                str(tmp_path / "explicit")])
    assert gen(tmp_path / "default") == gen(tmp_path / "explicit")
    infer.main(["-c", str(copy), *FAST, "--infer_input_file", str(data / "valid.txt"), "--save_dir",
                str(tmp_path / "chosen")])  # an explicit file wins
    assert json.loads((tmp_path / "chosen" / "infer_args.json").read_text())["infer_input_file"] == \
        [str(data / "valid.txt")]


def test_infer_without_an_input_file_or_a_test_file_beside_the_data_is_one_line(run, tmp_path):
    with pytest.raises(UserError, match=r"no --infer_input_file, and no test.txt beside the data of the run .*"
                                        r"looked in .*nowhere.*pass --infer_input_file FILE \(INFER_FILE=FILE"):
        infer.main(["-c", str(moved_run(run, tmp_path)), *FAST])
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(run / "epoch-0.bin", bare / "epoch-0.bin")
    with pytest.raises(UserError, match="not in a run folder with an args.json .*INFER_FILE"):
        infer.main(["--config_name", "strat", "--inputter_name", "strat", "-c", str(bare / "epoch-0.bin"), *FAST])


def test_the_readme_example_infers_from_RUN_with_the_run_folder_alone(run, data, tmp_path):
    """`cd RUN && bash infer_strat.sh ../demo_out/strat.strat/demo_run` after the demo: no INFER_FILE, no test file
    argument; the test.txt beside the run's validation file is used."""
    fake_venv(tmp_path / "venv", REPO)
    split = tmp_path / "split"
    split.mkdir()
    shutil.copy(data / "valid.txt", split / "test.txt")
    copy = moved_run(run, tmp_path, eval_dir=split)
    env = {k: v for k, v in os.environ.items() if k not in ("PRETRAINED_MODEL_PATH", "INFER_FILE")} | {
        "PAL_VENV": str(tmp_path / "venv")}
    result = subprocess.run(["bash", "infer_strat.sh", os.path.relpath(copy, REPO / "RUN"), *FAST],
                            cwd=REPO / "RUN", env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "no --infer_input_file: using" in result.stderr and "wrote" in result.stderr
    written = list(copy.glob("res_epoch-1.bin_test_*/gen.json"))
    assert len(written) == 1, list(copy.iterdir())


def test_apply_run_dir_for_a_resume_style_run_folder_argument(tmp_path):
    """The form train.py --resume RUN_DIR will use: the folder itself, every recorded argument not given."""
    import argparse
    from palkit.run_folder import apply_run_dir
    (tmp_path / "args.json").write_text(json.dumps({"config_name": "strat", "inputter_name": "strat",
                                                    "learning_rate": 3e-3, "max_steps": 5, "world_size": 1}))
    parser = argparse.ArgumentParser()
    for name, kind in (("--config_name", str), ("--inputter_name", str), ("--learning_rate", float),
                       ("--max_steps", int), ("--resume", str)):
        parser.add_argument(name, type=kind, default=None)
    argv = ["--resume", str(tmp_path), "--max_steps", "9"]
    args = parser.parse_args(argv)
    apply_run_dir(vars(args), explicit_dests(parser, argv),
                  ("config_name", "inputter_name", "learning_rate", "max_steps"), str(tmp_path), "--resume")
    assert (args.config_name, args.learning_rate, args.max_steps) == ("strat", 3e-3, 9)
    assert args.run_folder["taken"] == ["config_name", "inputter_name", "learning_rate"]
    assert args.run_folder["overridden"] == {"max_steps": 5}


# ------------------------------------------------------------------------------------------- --resume RUN_DIR alone

OVERRIDES = ("--num_epochs", "2", "--learning_rate", "2e-3", "--fusion_mask_padding", "True")


def interrupt_at(monkeypatch, step):
    """Ctrl-C at the end of optimizer step `step` (what SIGINT raises in the training loop)."""
    from pal.training import PalTask
    on_step_end = PalTask.on_step_end

    def interrupted(self, engine, stats, lr):
        result = on_step_end(self, engine, stats, lr)
        if engine.position.global_step == step:
            raise KeyboardInterrupt
        return result
    monkeypatch.setattr(PalTask, "on_step_end", interrupted)


def test_chain_train_interrupt_infer_interact_resume_without_repeated_arguments(data, tiny_blender_dir, tmp_path,
                                                                                 monkeypatch, capsys):
    from palkit.cli import run_main
    straight, staged = tmp_path / "straight", tmp_path / "staged"
    train.main(train_args(data, tiny_blender_dir, straight, *OVERRIDES))
    steps_per_epoch = json.loads((straight / "args.json").read_text())["steps_per_epoch"]
    with monkeypatch.context() as m:
        interrupt_at(m, steps_per_epoch + 1)
        with pytest.raises(SystemExit) as stop:
            run_main(train.main, train_args(data, tiny_blender_dir, staged, *OVERRIDES))
    assert stop.value.code == 130
    message = capsys.readouterr().err.strip().splitlines()[-1]
    command = f"{os.path.relpath(REPO / 'RUN' / 'python')} {os.path.relpath(REPO / 'codes' / 'train.py')} --resume {staged}"
    assert message == (f"interrupted at step {steps_per_epoch + 1}; the run resumes from step {steps_per_epoch} "
                       f"(its last saved state, {staged / train.STATE_DIR}) with: {command}")
    # the run folder alone for infer and interact
    infer.main(["-c", str(staged), "--infer_input_file", str(data / "valid.txt"), *FAST,
                "--save_dir", str(tmp_path / "res")])
    assert json.loads((tmp_path / "res" / "infer_args.json").read_text())["fusion_mask_padding"] is True
    monkeypatch.setattr(sys, "stdin", io.StringIO("hi there\n"))
    interact.main(["-c", str(staged), "--max_length", "4", "--output_dir", str(tmp_path / "dialogs")])
    assert "AI [" in capsys.readouterr().out
    # an override that would change the run is refused, and changes nothing
    before = sorted(os.listdir(staged))
    with pytest.raises(UserError, match=r"^--learning_rate 0.1: the run was trained with --learning_rate 0.002 "
                                        r"\(.*args.json\); drop --learning_rate"):
        train.main(["--resume", str(staged), "--learning_rate", "0.1"])
    assert sorted(os.listdir(staged)) == before
    # the printed command, as printed (a harmless --pbar may be added)
    train.main([*command.split()[2:], "--pbar", "False"])
    for epoch in (0, 1):
        a = load(straight / f"epoch-{epoch}.bin")
        b = load(staged / f"epoch-{epoch}.bin")
        assert all(torch.equal(a[k], b[k]) for k in a), epoch
    assert not (staged / train.STATE_DIR).exists()


def test_interrupted_before_the_first_saved_state_says_there_is_nothing_to_resume(data, tiny_blender_dir, tmp_path,
                                                                                  monkeypatch):
    interrupt_at(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt, match="at step 1, before the run's first saved state .*nothing to resume"):
        train.main(train_args(data, tiny_blender_dir, tmp_path / "run", "--num_epochs", "1"))


def test_resume_needs_a_run_folder_with_args_json(tmp_path):
    with pytest.raises(UserError, match="no args.json there; nothing to resume"):
        train.main(["--resume", str(tmp_path)])


def test_run_script_resume_passes_only_the_run_folder(data, tiny_blender_dir, tmp_path):
    """bash RUN/train_strat.sh --resume RUN_DIR: no released value is passed again (they would conflict with the
    run's overrides), and the resumed run ends as an uninterrupted one."""
    straight, staged = tmp_path / "straight", tmp_path / "staged"
    train.main(train_args(data, tiny_blender_dir, straight, *OVERRIDES))
    train.main(train_args(data, tiny_blender_dir, staged, *OVERRIDES, "--max_steps", "3"))
    fake_venv(tmp_path / "venv", REPO)
    env = {k: v for k, v in os.environ.items() if k != "PRETRAINED_MODEL_PATH"} | {"PAL_VENV": str(tmp_path / "venv")}
    resumed = subprocess.run(["bash", "RUN/train_strat.sh", "--resume", str(staged)], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"note: resuming {staged} with the arguments in its args.json" in resumed.stderr
    a, b = load(straight / "epoch-1.bin"), load(staged / "epoch-1.bin")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("script", ["train_strat.sh", "train_no_persona.sh", "train_vanilla.sh",
                                    "train_persona_extractor.sh"])
def test_run_script_help_with_resume_shows_only_the_resume_command(script, tmp_path):
    shown = subprocess.run(["bash", f"RUN/{script}", "--resume", str(tmp_path), "--help"], cwd=REPO,
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    command = shown.stdout.split("It runs")[1]
    assert f"--resume {tmp_path}" in command and "--learning_rate" not in command and "--seed" not in command


def test_sigint_after_the_first_state_save_names_the_step_and_the_command(data, tiny_blender_dir, tmp_path):
    """A real Ctrl-C (SIGINT) to a training process: exit 130 and the line that says how to resume."""
    import signal
    import time
    run = tmp_path / "run"
    # SIG_DFL in the child: a test run started in the background by a shell inherits SIGINT ignored, and Python
    # then installs no KeyboardInterrupt handler (as for any background job)
    process = subprocess.Popen([sys.executable, "codes/train.py", *train_args(data, tiny_blender_dir, run),
                                "--num_epochs", "100", "--save_state_steps", "1"], cwd=REPO,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while not (run / train.STATE_DIR / "engine_state.pt").exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    err = process.communicate(timeout=120)[1]
    assert process.returncode == 130, err
    last = err.strip().splitlines()[-1]
    match = re.fullmatch(r"interrupted at step (\d+); the run resumes from step (\d+) \(its last saved state, "
                         r"(.+)\) with: RUN/python codes/train\.py --resume (.+)", last)
    assert match, last
    assert 1 <= int(match.group(2)) <= int(match.group(1)) and match.group(4) == str(run)
    saved = torch.load(run / train.STATE_DIR / "engine_state.pt", map_location="cpu", weights_only=False)
    assert saved["position"]["global_step"] == int(match.group(2))


def test_validation_has_a_progress_bar_with_eta(data, tiny_blender_dir, tmp_path, capsys):
    train.main([*train_args(data, tiny_blender_dir, tmp_path / "run", "--num_epochs", "1", "--max_steps", "1"),
                "--pbar", "True"])
    eval_examples = int(read_csv_rows(tmp_path / "run" / "eval_log.csv")[0]["eval_examples"])
    bar = re.search(r"validating: +\d+%\|.*?\| \d+/(\d+) \[[\d:]+<[\d:?]+", capsys.readouterr().err)
    assert bar and int(bar.group(1)) == eval_examples


def read_csv_rows(path):
    import csv
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_ctrl_c_during_a_state_save_waits_for_the_commit():
    import signal
    from palkit.engine import sigint_deferred
    finished = []
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a foreground run (not SIG_IGN)
    try:
        with pytest.raises(KeyboardInterrupt):
            with sigint_deferred():
                os.kill(os.getpid(), signal.SIGINT)
                finished.append(True)  # the block (the commit) runs to its end
        assert finished == [True] and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, outer)
