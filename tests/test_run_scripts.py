"""The RUN scripts and the launcher validate what will be used (RUN/common.sh): an option the user appends replaces
the script's value, which is then neither checked nor shown; a default that is used and missing is one line naming
the environment variable that sets it; a typo in an appended argument reaches the script's parser; bad values of
OMP_NUM_THREADS, NPROC and PAL_CACHE_DIR are one line from RUN/python and from the RUN scripts; a file that is not a
checkpoint is named as such, whatever the path form, with a hint naming an argument the command takes."""
import os
import subprocess
import sys

import pytest

from helpers.paths import REPO_ROOT

PYTHON = REPO_ROOT / "RUN" / "python"


@pytest.fixture(scope="module")
def recording_venv(tmp_path_factory):
    """A .venv for RUN/setup_env.sh (up to date: nothing to install) whose python prints its arguments, one a line:
    what a RUN script really runs."""
    venv = tmp_path_factory.mktemp("recording_venv")
    (venv / "bin").mkdir()
    (venv / "bin" / "python").write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    (venv / "bin" / "python").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "PAL_LOCK"}
    stamp = subprocess.run(["bash", str(REPO_ROOT / "RUN" / "setup_env.sh")], env=dict(env, PAL_PRINT_STAMP="1"),
                           capture_output=True, text=True, check=True).stdout
    (venv / ".requirements.sha256").write_text(stamp)
    return venv


def clean_env(**more):
    drop = ("PAL_VENV", "INFER_FILE", "TRAIN_FILE", "EVAL_FILE", "PRETRAINED_MODEL_PATH", "NPROC", "PAL_CACHE_DIR",
            "OMP_NUM_THREADS")
    return {k: v for k, v in os.environ.items() if k not in drop} | more


def script(name, *args, cwd, env=None):
    return subprocess.run(["bash", str(REPO_ROOT / "RUN" / name), *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, env=env or clean_env(), timeout=300)


def one_error_line(result):
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if not line.startswith(("[setup]", "note: "))]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# ---- appended arguments replace the script's values --------------------------------------------------------------
def test_an_appended_option_replaces_the_scripts_value_which_is_not_checked(recording_venv, tmp_path):
    mine = tmp_path / "mine.txt"
    mine.write_text("x\n")
    ran = script("prepare_strat.sh", "--train_input_file", mine, "--max_input_length=256", "--max_decoder_lenght",
                 "9", cwd=tmp_path, env=clean_env(PAL_VENV=str(recording_venv)))
    assert ran.returncode == 0, ran.stderr  # DATA/pesconv/train.txt, the script's default, is absent: never checked
    argv = ran.stdout.splitlines()
    assert argv.count("--train_input_file") == 1 and argv[argv.index("--train_input_file") + 1] == str(mine)
    assert "--max_input_length" not in argv and "512" not in argv and argv.count("--max_input_length=256") == 1
    assert argv[-3:] == ["--max_input_length=256", "--max_decoder_lenght", "9"]  # the typo reaches python
    assert argv[argv.index("--max_decoder_input_length") + 1] == "50"  # the script's other values stay
    shown = script("prepare_strat.sh", "--train_input_file", mine, "--help", cwd=tmp_path)
    command = shown.stdout.split("It runs")[1]
    assert "DATA/pesconv/train.txt" not in command and command.count("--train_input_file") == 1


def test_repeatable_options_of_the_user_are_all_kept(recording_venv, tmp_path):
    ran = script("train_persona_extractor.sh", "--train_dir", tmp_path, "--seed", "1", "--seed", "2", cwd=tmp_path,
                 env=clean_env(PAL_VENV=str(recording_venv)))
    argv = ran.stdout.splitlines()
    assert ran.returncode == 0 and argv.count("--seed") == 2 and argv[-4:] == ["--seed", "1", "--seed", "2"]
    assert "42" not in argv  # the script's --seed 42


def test_a_typo_in_an_appended_argument_is_not_hidden(tmp_path, run_dir):
    mine = run_dir / "test.txt"
    error = one_error_line(script("infer_strat.sh", run_dir / "strat" / "epoch-0.bin", "--infer_input_file", mine,
                                  "--temprature", "0.7", cwd=tmp_path))
    assert error == "error: unrecognized arguments: --temprature 0.7 (did you mean --temperature?); see infer.py --help"


def test_a_missing_default_names_the_variable_that_sets_it(recording_venv, tmp_path):
    env = clean_env(PAL_VENV=str(recording_venv))
    error = one_error_line(script("prepare_strat.sh", cwd=tmp_path, env=env))
    assert error.startswith("error: --train_input_file ") and error.endswith(  # (the repository relative to here)
        "DATA/pesconv/train.txt: no such file (the script's default; set TRAIN_FILE=FILE or append --train_input_file "
        "FILE)")
    ran = script("infer_strat.sh", "run/epoch-1.bin", cwd=tmp_path, env=env)  # no default test file: the run's
    assert ran.returncode == 0 and "--infer_input_file" not in ran.stdout.splitlines(), ran.stderr
    error = one_error_line(script("infer_strat.sh", "run/epoch-1.bin", cwd=tmp_path,
                                  env=env | {"INFER_FILE": "nope.txt"}))
    assert error == ("error: INFER_FILE=nope.txt: no such file (it sets --infer_input_file; unset it or append "
                     "--infer_input_file FILE to use another)")
    error = one_error_line(script("train_strat.sh", cwd=tmp_path, env=env | {"EVAL_FILE": str(tmp_path)}))
    assert error.startswith(f"error: EVAL_FILE={tmp_path}: is not a file (it sets --eval_input_file")
    error = one_error_line(script("annotate_persona.sh", cwd=tmp_path, env=env | {"EXTRACTOR_DIR": "ex"}))
    assert error.startswith("error: EXTRACTOR_DIR=ex: ex/best: no such folder (it sets --model_dir")


# ---- bad environment values ----------------------------------------------------------------------------------------
BAD_VALUES = {
    "OMP_NUM_THREADS": ("abc", "error: OMP_NUM_THREADS=abc: expected a positive integer (CPU threads per process, "
                               "e.g. OMP_NUM_THREADS=1; unset: 1)"),
    "NPROC": ("two", "error: NPROC=two: expected a positive integer (the number of processes, e.g. NPROC=2; unset: "
                     "one)"),
    "PAL_CACHE_DIR": ("{file}", "error: PAL_CACHE_DIR={file}: is a file, expected a folder (where converted chat "
                                "models are kept)"),
}


@pytest.mark.parametrize("variable", sorted(BAD_VALUES))
def test_a_bad_environment_value_is_one_line_from_the_launcher_and_the_scripts(variable, recording_venv, tmp_path):
    taken = tmp_path / "a_file"
    taken.write_text("x")
    value, expected = (s.format(file=taken) for s in BAD_VALUES[variable])
    env = clean_env(PAL_VENV=str(recording_venv), **{variable: value})
    launcher = subprocess.run([str(PYTHON), "-c", "print('ran')"], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120)
    assert launcher.returncode == 2 and launcher.stderr == expected + "\n" and launcher.stdout == ""
    for name in ("infer_strat.sh", "prepare_strat.sh", "serve.sh"):
        result = script(name, cwd=tmp_path, env=env)
        assert result.returncode == 2 and result.stderr == expected + "\n" and result.stdout == "", (name, result)


def test_good_environment_values_pass(recording_venv, tmp_path):
    env = clean_env(PAL_VENV=str(recording_venv), OMP_NUM_THREADS="4,2", NPROC="1",
                    PAL_CACHE_DIR=str(tmp_path / "new" / "cache"))
    launcher = subprocess.run([str(PYTHON), "-c", "x"], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120)
    assert launcher.returncode == 0 and launcher.stdout.splitlines() == ["-c", "x"], launcher.stderr


def test_an_unwritable_cache_dir_is_one_line(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    result = subprocess.run([str(PYTHON), "-c", "1"], env=clean_env(PAL_CACHE_DIR=str(locked / "c")),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "not writable" in result.stderr


# ---- bad checkpoints -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["notes.bin", "./notes.bin", "{abs}", "run/epoch-3.bin", "run"])
def test_a_text_file_given_as_a_checkpoint_is_named_as_one(form, tmp_path, run_dir):
    (tmp_path / "notes.bin").write_text("my notes about the run\n")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "epoch-3.bin").write_text("my notes about the run\n")
    path = form.format(abs=tmp_path / "notes.bin")
    error = one_error_line(script("infer_strat.sh", path, cwd=tmp_path,
                                  env=clean_env(INFER_FILE=str(run_dir / "test.txt"))))
    shown = "run/epoch-3.bin" if form == "run" else path
    assert error == (f"error: {shown}: not a checkpoint (a text file: not a readable torch file); give "
                     "--load_checkpoint an epoch-N.bin written by codes/train.py (or the authors' codes), or its run "
                     "folder")


def test_serve_names_a_bad_checkpoint_with_arguments_it_takes(tmp_path, tiny_blender_dir):
    import torch
    (tmp_path / "notes.bin").write_text("my notes\n")
    torch.save([1, 2, 3], tmp_path / "list.bin")  # a torch file that is not a state_dict
    for path in ("notes.bin", "list.bin"):
        error = one_error_line(script("serve.sh", path, "--config", "strat", "--pretrained_model_path",
                                      tiny_blender_dir, cwd=tmp_path))
        assert path in error and "not a" in error and "--load_checkpoint" not in error, error
        assert "an epoch-N.bin written by codes/train.py (or the authors' codes), or its run folder" in error
    help_text = subprocess.run([sys.executable, str(REPO_ROOT / "codes" / "serve.py"), "--help"],
                               capture_output=True, text=True, timeout=120).stdout
    assert "--load_checkpoint" not in help_text
