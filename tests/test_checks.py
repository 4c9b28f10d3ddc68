"""palkit.paths, argtypes, loaders, model_files and pal.checkpoint: the validators and safe loaders every entry point uses."""
import argparse
import os
import shutil

import pytest
import torch

from palkit.argtypes import float_range, int_range, probability
from palkit.loaders import check_safetensors, expect_type, load_json, load_jsonl, load_pickle, read_csv
from palkit.model_files import check_model_dir, check_tokenizer_dir
from palkit.paths import require_output_dir, require_output_file
from pal.checkpoint import read_state_dict
from palkit.cli import ArgumentParser, UserError


@pytest.mark.parametrize("parse,good,bad", [
    (int_range(1), ["1", "7"], ["0", "-3", "1.5", "x"]),
    (int_range(0, 8), ["0", "8"], ["9", "-1"]),
    (probability, ["0", "1", "0.9"], ["1.5", "-0.1", "nan", "x"]),
    (float_range(0, lo_open=True), ["1e-9", "3"], ["0", "-1", "inf"]),
    (float_range(), ["-2", "0", "2.5"], ["nan", "-inf"]),
])
def test_ranges_accept_the_inside_and_reject_the_rest(parse, good, bad):
    assert [parse(x) for x in good] == [float(x) for x in good]
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match="must be"):
            parse(text)


def test_argument_errors_are_user_errors_naming_the_option():
    parser = ArgumentParser(prog="x.py")
    parser.add_argument("--top_p", type=probability)
    assert parser.parse_args(["--top_p", "0.5"]).top_p == 0.5
    with pytest.raises(UserError, match=r"argument --top_p: must be a number in \[0, 1\], got 1.5; see x.py --help"):
        parser.parse_args(["--top_p", "1.5"])


def test_output_paths_of_the_wrong_kind(tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "d").mkdir()
    assert require_output_dir(str(tmp_path / "d")) and require_output_dir(str(tmp_path / "new" / "deeper"))
    assert require_output_file(str(tmp_path / "f")) and require_output_file(str(tmp_path / "d" / "new.json"))
    with pytest.raises(UserError, match="is a file, not a folder"):
        require_output_dir(str(tmp_path / "f"))
    with pytest.raises(UserError, match="because .*f is a file"):
        require_output_dir(str(tmp_path / "f" / "sub"))
    with pytest.raises(UserError, match="is a folder, not a file"):
        require_output_file(str(tmp_path / "d"))


def test_loaders_name_the_file(tmp_path):
    (tmp_path / "a.json").write_text('{"persona": null}')
    data = load_json(str(tmp_path / "a.json"), expect=dict)
    with pytest.raises(UserError, match=r"a.json: expected a JSON list, got dict"):
        load_json(str(tmp_path / "a.json"), expect=list)
    with pytest.raises(UserError, match="persona: expected a string, got null"):
        expect_type(data["persona"], str, "persona")
    with pytest.raises(UserError, match="expected an integer or a number, got bool"):
        expect_type(True, (int, float), "x")
    (tmp_path / "p.pkl").write_bytes(b"\x80\x05\x95")
    with pytest.raises(UserError, match="p.pkl: truncated or not a pickle"):
        load_pickle(str(tmp_path / "p.pkl"))
    (tmp_path / "d.jsonl").write_text('{"a": 1}\n\n[2]\n{"b": \n')
    with pytest.raises(UserError, match=r"d.jsonl:4: invalid JSON"):
        load_jsonl(str(tmp_path / "d.jsonl"))
    (tmp_path / "d.jsonl").write_text('{"a": 1}\n\n[2]\n')
    assert load_jsonl(str(tmp_path / "d.jsonl")) == [{"a": 1}, [2]]
    (tmp_path / "c.csv").write_text("a,b\n")
    assert read_csv(str(tmp_path / "c.csv")) == (["a", "b"], [])
    with pytest.raises(UserError, match="c.csv: has no data rows"):
        read_csv(str(tmp_path / "c.csv"), nonempty=True)


def test_state_files_round_trip_and_truncations_are_one_line(tmp_path):
    from safetensors.torch import save_file
    state = {"w": torch.arange(6.0).view(2, 3), "b": torch.ones(3)}
    torch.save(state, tmp_path / "epoch-0.bin")
    save_file(state, str(tmp_path / "model.safetensors"))
    for name in ("epoch-0.bin", "model.safetensors"):
        loaded = read_state_dict(str(tmp_path / name))
        assert set(loaded) == set(state) and all(torch.equal(loaded[k], state[k]) for k in state)
        path = tmp_path / name
        path.write_bytes(path.read_bytes()[:-8])
        with pytest.raises(UserError, match=name):
            read_state_dict(str(path))
    torch.save([1, 2], tmp_path / "list.bin")
    with pytest.raises(UserError, match="not a plain state_dict"):
        read_state_dict(str(tmp_path / "list.bin"))


def test_model_folder_checks(tmp_path, tiny_blender_dir):
    assert check_model_dir(tiny_blender_dir) and check_tokenizer_dir(tiny_blender_dir)
    assert check_tokenizer_dir("facebook/blenderbot_small-90M")  # hub names are left to transformers
    check_safetensors(os.path.join(tiny_blender_dir, "model.safetensors"))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    with pytest.raises(UserError, match="no weights file"):
        check_model_dir(str(empty))
    with pytest.raises(UserError, match="incomplete tokenizer folder"):
        check_tokenizer_dir(str(empty))


def test_bart_folder_without_tokenizer_files_is_an_error_not_a_fallback(tmp_path):
    """transformers 5's BartTokenizer builds a 5-token tokenizer from a folder without vocab/merges/tokenizer.json."""
    from persona_extractor.extractor import load_tokenizer_and_model
    from persona_extractor.tiny_bart import make_tiny_bart_dir
    folder = make_tiny_bart_dir(str(tmp_path / "bart"))
    assert len(load_tokenizer_and_model(folder)[0]) > 5
    for name in ("vocab.json", "merges.txt", "tokenizer.json"):
        if os.path.exists(os.path.join(folder, name)):
            os.remove(os.path.join(folder, name))
    with pytest.raises(UserError, match="bart: incomplete tokenizer folder"):
        load_tokenizer_and_model(folder)


def test_blenderbot_tokenizer_needs_vocab_and_merges(tmp_path, tiny_blender_dir):
    from pal.config import build_tokenizer
    folder = shutil.copytree(tiny_blender_dir, tmp_path / "m")
    (folder / "tokenizer.json").write_text("{}")  # BlenderBot-small's tokenizer does not read it
    os.remove(folder / "merges.txt")
    with pytest.raises(UserError, match="needs vocab.json \\+ merges.txt"):
        build_tokenizer({"expanded_vocab": []}, str(folder))
