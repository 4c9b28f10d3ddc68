"""Crash consistency of the prepared features and the result folders: a SIGKILL at every boundary between
two writes (palkit.atomic.crash_point, PAL_CRASH_AT=<label>:<point>) over an earlier output leaves exactly the earlier
set or the new one; readers refuse a mixed set in one line. The killed runs are subprocesses (killed_run)."""
import json
import os
import pickle
import shutil

import pytest

from palkit.atomic import MANIFEST, POINTS, read_manifest
from palkit.cli import UserError
from pal.prepared import features_dir, load_prepared
from pal.results import check_result_folder
from metric.result_folders import find_result_folders
from helpers.crash import killed_run, strays
from helpers.infer import infer_args, run_infer
from helpers.metric_files import sample_gen_records, write_gen_json
from helpers.paths import load_script
from helpers.training import SHORT

prepare = load_script("codes/prepare.py")
evaluate = load_script("codes/evaluate.py")
get_EAD_score = load_script("codes/get_EAD_score.py")

pytestmark = [pytest.mark.robustness, pytest.mark.usefixtures("one_torch_thread")]
# which set a kill at each point leaves: before the swap the earlier one (put back after `old_moved`), then the new
LEFT = {"partial": "old", "complete": "old", "old_moved": "old", "swapped": "new"}


# ---- prepared features ----------------------------------------------------------------------------------------------
def prepare_cli(data, model_dir, out, max_input_length):
    return ["--config_name", "strat", "--inputter_name", "strat", "--train_input_file", str(data / "train.txt"),
            "--pretrained_model_path", model_dir, "--output_dir", str(out), "--pbar", "False", *SHORT,
            "--max_input_length", str(max_input_length)]


def feature_ids(features):
    return [(f.input_ids, f.persona_input_ids, f.labels) for f in features]


@pytest.fixture(scope="module")
def prepared_references(data, tiny_blender_dir, tmp_path_factory):
    """{max_input_length: features} prepared in this process."""
    out = {}
    for length in (16, 64):
        folder = tmp_path_factory.mktemp(f"prepared{length}")
        prepare.main(prepare_cli(data, tiny_blender_dir, folder, length))
        out[length] = feature_ids(load_prepared(str(folder), {})[0])
    assert out[16] != out[64]  # the two preparations really differ
    return out


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_prepare_killed_at_each_boundary_leaves_the_earlier_or_the_new_features_matching_their_meta(
        point, data, tiny_blender_dir, prepared_references, tmp_path):
    prepare.main(prepare_cli(data, tiny_blender_dir, tmp_path, 16))
    killed_run("codes/prepare.py", prepare_cli(data, tiny_blender_dir, tmp_path, 64), f"features:{point}")
    features, meta = load_prepared(str(tmp_path), {})
    assert meta["max_input_length"] == {"old": 16, "new": 64}[LEFT[point]]
    assert feature_ids(features) == prepared_references[meta["max_input_length"]]  # features match meta.json
    prepare.main(prepare_cli(data, tiny_blender_dir, tmp_path, 64))  # the next run cleans the strays
    assert strays(tmp_path) == [] and feature_ids(load_prepared(str(tmp_path), {})[0]) == prepared_references[64]


def test_a_mixed_or_old_layout_preparation_is_refused_in_one_line(data, tiny_blender_dir, tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    prepare.main(prepare_cli(data, tiny_blender_dir, old, 16))
    prepare.main(prepare_cli(data, tiny_blender_dir, new, 64))
    shutil.copy(features_dir(old) + "/data.pkl", features_dir(new) + "/data.pkl")  # 16-id features, 64 in meta
    with pytest.raises(UserError, match=r"data.pkl changed after the folder was committed, so its features may not "
                                        r"match its meta.json; run codes/prepare.py"):
        load_prepared(str(new), {"max_input_length": 64})
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    with open(legacy / "data.pkl", "wb") as f:
        pickle.dump([], f)
    (legacy / "meta.json").write_text("{}")
    with pytest.raises(UserError, match="data.pkl in the old layout .*run codes/prepare.py"):
        load_prepared(str(legacy), {})


# ---- result folders -------------------------------------------------------------------------------------------------
def folder_files(folder):
    """{name: bytes} of a result folder, without the files that name the folder itself or are images."""
    skip = {"infer_args.json", MANIFEST, "confusion_matrix_cls_strat_id.png"}
    return {n: (folder / n).read_bytes() for n in sorted(os.listdir(folder)) if n not in skip}


def assert_metrics_describe_gen_json(folder, tmp_path):
    """metric.json equals a fresh scoring of the folder's own gen.json."""
    again = write_gen_json(tmp_path / "rescored", json.loads((folder / "gen.json").read_text()))
    evaluate.main([str(again)])
    assert (folder / "metric.json").read_bytes() == (again / "metric.json").read_bytes()
    shutil.rmtree(again)


@pytest.fixture(scope="module")
def new_result(run_dir, tiny_blender_dir, tmp_path_factory):
    """The result folder of the killed runs' arguments (seed 5), written in this process."""
    out = tmp_path_factory.mktemp("new_result") / "res"
    run_infer(infer_args(run_dir, tiny_blender_dir, extra=["--seed", "5", "--save_dir", str(out)]))
    return folder_files(out)


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_infer_rerun_killed_at_each_boundary_leaves_the_earlier_or_the_new_folder(
        point, punkt, run_dir, tiny_blender_dir, new_result, tmp_path):
    res = tmp_path / "res"
    run_infer(infer_args(run_dir, tiny_blender_dir, extra=["--save_dir", str(res)]))
    old = folder_files(res)
    assert old["gen.json"] != new_result["gen.json"]
    new_argv = infer_args(run_dir, tiny_blender_dir, extra=["--seed", "5", "--save_dir", str(res)])
    killed_run("codes/infer.py", new_argv, f"result:{point}")
    assert find_result_folders([str(res)]) == [str(res)]  # puts a folder moved aside back; not mixed
    assert folder_files(res) == {"old": old, "new": new_result}[LEFT[point]]
    assert_metrics_describe_gen_json(res, tmp_path)
    run_infer(new_argv)  # the next run cleans the strays
    assert strays(tmp_path) == [] and folder_files(res) == new_result


@pytest.mark.parametrize("point", ["complete", "old_moved", "swapped"])
def test_ead_killed_at_each_boundary_leaves_the_folder_sealed_with_or_without_ead_json(point, punkt, tmp_path):
    res = write_gen_json(tmp_path / "res", sample_gen_records())
    evaluate.main([str(res)])
    before = {n: (res / n).read_bytes() for n in os.listdir(res)}
    killed_run("codes/get_EAD_score.py", ["--input_file", str(res / "gen.json"), "--vocab_size", "100"],
               f"result:{point}")
    assert find_result_folders([str(res)]) == [str(res)]
    has_ead = (res / "ead.json").exists()
    assert has_ead == (LEFT[point] == "new")
    assert {n: (res / n).read_bytes() for n in os.listdir(res) if n not in ("ead.json", MANIFEST)} == \
        {n: b for n, b in before.items() if n != MANIFEST}


def test_readers_refuse_a_mixed_result_folder_in_one_line_and_evaluate_reseals_it(punkt, tmp_path, capsys):
    res = write_gen_json(tmp_path / "res", sample_gen_records())
    evaluate.main([str(res)])
    get_EAD_score.main(["--input_file", str(res), "--vocab_size", "100"])
    check_result_folder(str(res))  # sealed with both
    good = (res / "metric.json").read_text()
    (res / "metric.json").write_text(good.replace("{", '{"bleu-9": 1,', 1))  # another run's metric.json
    with pytest.raises(UserError, match="mixed result folder \\(metric.json changed after the folder was committed"
                                        "\\).*`RUN/python codes/evaluate.py"):
        find_result_folders([str(tmp_path)])
    evaluate.main([str(res)])  # rescores gen.json and seals the folder again
    assert "mixed result folder" in capsys.readouterr().err and (res / "metric.json").read_text() == good
    shutil.copy(res / "ead.json", tmp_path / "ead.json")
    other = write_gen_json(tmp_path / "other", sample_gen_records()[:1])
    shutil.copy(tmp_path / "ead.json", other / "ead.json")  # an ead.json of another gen.json, copied in
    evaluate.main([str(other)])
    with pytest.raises(UserError, match="ead.json was not committed with the other files.*get_EAD_score.py"):
        check_result_folder(str(other))
    (res / "gen.json").unlink()
    with pytest.raises(UserError, match="gen.json is missing"):
        check_result_folder(str(res))


@pytest.mark.parametrize("manifest", ['{"files": {"gen.json"', "[]", '{"files": [1]}', '{"other": {}}'])
def test_an_unreadable_manifest_is_a_mixed_folder_in_one_line_and_evaluate_rewrites_it(manifest, punkt, tmp_path):
    res = write_gen_json(tmp_path / "res", sample_gen_records())
    evaluate.main([str(res)])
    good = (res / "metric.json").read_text()
    (res / MANIFEST).write_text(manifest)
    with pytest.raises(UserError, match=f"mixed result folder \\({MANIFEST} is unreadable\\)"):
        check_result_folder(str(res))
    evaluate.main([str(res)])  # the manifest vouches for nothing: rescores gen.json and writes a new manifest
    assert "gen.json" in read_manifest(str(res)) and (res / "metric.json").read_text() == good


def test_a_rerun_replaces_the_whole_folder_and_refuses_a_folder_that_is_not_a_result_folder(
        punkt, run_dir, tiny_blender_dir, tmp_path, capsys):
    res = tmp_path / "res"
    argv = infer_args(run_dir, tiny_blender_dir, extra=["--only_generate", "--save_dir", str(res)])
    run_infer(argv)
    get_EAD_score.main(["--input_file", str(res), "--vocab_size", "100"])
    run_infer([*argv, "--seed", "5"])
    assert not (res / "ead.json").exists()  # it described the earlier gen.json
    check_result_folder(str(res))
    assert "not sealed" not in capsys.readouterr().err
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(UserError, match="holds files but no gen.json: not a result folder"):
        run_infer([*argv[:-1], str(tmp_path / "notes")])
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"
