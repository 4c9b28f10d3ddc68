"""A run folder is enough to infer and interact from (pal.run_folder): train with overrides, then infer / interact
with the run folder alone; explicit arguments win and are recorded; conflicts and stale paths are one-line errors."""
import io
import json
import os
import shutil
import sys

import pytest

import infer
import interact
import train
from pal.cli import UserError
from pal.run_folder import explicit_dests
from test_train import SHORT, data, train_args  # noqa: F401  (data is a fixture)

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
    given = explicit_dests(parser, ["--infer_input_file", "x", "--max_input_length", "512", "--only_generate"])
    assert given == {"infer_input_file", "max_input_length", "only_generate"}
    assert "config_name" in explicit_dests(parser, ["--infer_input_file", "x", "--config_name", "strat"])
