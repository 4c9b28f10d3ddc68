"""Crash consistency of the training states: a SIGKILL at every boundary between two writes of a
multi-file state leaves the previous state or the new one, and --resume then ends with the weights of an
uninterrupted run. The killed runs are subprocesses that kill themselves at a named point (palkit.atomic.crash_point,
PAL_CRASH_AT=<state>:<point>:<n>); the resumed runs and the references run in this process on one thread."""
import csv
import os

import pytest
import torch

from helpers.crash import killed_run, strays
from helpers.paths import load_script
from helpers.training import train_args
from palkit.atomic import POINTS, commit_dir, recover
from palkit.cli import UserError
from persona_extractor import train_bart

train = load_script("codes/train.py")

pytestmark = [pytest.mark.robustness, pytest.mark.usefixtures("one_torch_thread")]


def csv_rows(path, drop):
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k != drop} for r in csv.DictReader(f)]


def test_commit_dir_replaces_a_folder_as_one_unit_and_recovers_from_a_kill_between_the_renames(tmp_path):
    final = tmp_path / "last"
    with commit_dir(str(final)) as tmp:
        (tmp_path / "x").write_text("")  # outside: untouched
        open(os.path.join(tmp, "a"), "w").write("old")
    with pytest.raises(RuntimeError):
        with commit_dir(str(final)) as tmp:
            open(os.path.join(tmp, "a"), "w").write("half")
            raise RuntimeError
    assert (final / "a").read_text() == "old" and strays(tmp_path) == []
    # the state a kill between `final -> .final.old` and `.final.tmp -> final` leaves
    os.rename(final, tmp_path / ".last.old")
    os.makedirs(tmp_path / ".last.tmp")
    recover(str(final))
    assert (final / "a").read_text() == "old" and strays(tmp_path) == []


@pytest.fixture(scope="module")
def pal_reference(data, tiny_blender_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("pal_reference") / "run"
    train.main(train_args(data, tiny_blender_dir, out, *PAL_ARGS))
    return out


PAL_ARGS = ("--num_epochs", "2", "--learning_rate", "2e-3", "--save_state_steps", "2")


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_pal_training_killed_at_each_boundary_of_a_state_save_resumes_to_the_uninterrupted_weights(
        point, data, tiny_blender_dir, pal_reference, tmp_path):
    run = tmp_path / "run"
    args = train_args(data, tiny_blender_dir, run, *PAL_ARGS)
    killed_run("codes/train.py", args, f"{train.STATE_DIR}:{point}:2")  # the second save has one to replace
    train.main([*args, "--resume", str(run)])
    for epoch in (0, 1):
        a, b = (torch.load(d / f"epoch-{epoch}.bin", weights_only=True) for d in (pal_reference, run))
        assert all(torch.equal(a[k], b[k]) for k in a), (point, epoch)
    assert csv_rows(run / "train_log.csv", "epoch_time") == csv_rows(pal_reference / "train_log.csv", "epoch_time")
    assert strays(run) == [] and not (run / train.STATE_DIR).exists()  # finished: state gone, temp folders too


def extractor_cli(tiny_bart, pair_files, out):
    return ["--train_file", pair_files["train"], "--valid_file", pair_files["valid"], "--model_name_or_path",
            tiny_bart, "--output_dir", str(out), "--learning_rate", "3e-3", "--train_batch_size", "8",
            "--eval_batch_size", "8", "--warmup_steps", "2", "--num_epochs", "2", "--val_check_interval", "0.5",
            "--scheduler_interval", "step", "--device", "cpu", "--no_progress"]


@pytest.fixture(scope="module")
def extractor_reference(tiny_bart, pair_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("extractor_reference")
    train_bart.main(extractor_cli(tiny_bart, pair_files, out))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("crash_at", [f"last:{p}:2" for p in POINTS] + [f"best:{p}:2" for p in POINTS])
def test_extractor_training_killed_at_each_boundary_of_a_checkpoint_resumes_to_the_uninterrupted_weights(
        crash_at, tiny_bart, pair_files, extractor_reference, tmp_path):
    cli = extractor_cli(tiny_bart, pair_files, tmp_path)
    killed_run("persona_extractor/train_bart.py", cli, crash_at)
    train_bart.main([*cli, "--resume"])
    for sub in ("best", "last"):
        assert (tmp_path / sub / "model.safetensors").read_bytes() == \
            (extractor_reference / sub / "model.safetensors").read_bytes(), (crash_at, sub)
    assert csv_rows(tmp_path / "train_log.csv", "elapsed_s") == \
        csv_rows(extractor_reference / "train_log.csv", "elapsed_s")
    assert strays(tmp_path) == []


@pytest.mark.slow
def test_extractor_killed_before_its_first_save_is_refused_in_one_line_and_starts_over(tiny_bart, pair_files,
                                                                                       extractor_reference, tmp_path):
    cli = extractor_cli(tiny_bart, pair_files, tmp_path)
    killed_run("persona_extractor/train_bart.py", cli, "last:complete:1")
    with pytest.raises(UserError, match="stopped before its first save: start again with --overwrite_output_dir"):
        train_bart.main([*cli, "--resume"])
    train_bart.main([*cli, "--overwrite_output_dir"])
    assert (tmp_path / "last" / "model.safetensors").read_bytes() == \
        (extractor_reference / "last" / "model.safetensors").read_bytes()
    assert strays(tmp_path) == []
