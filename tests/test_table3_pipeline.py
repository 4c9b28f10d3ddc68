"""infer.py's result folders carry what summarize_results.py and compare_systems.py need (system, training seed,
epoch, decoding seed), end to end on a tiny model."""
import json
import os

import pytest

from helpers.infer import FAST, run_infer
from helpers.paths import load_script
from helpers.pal_models import randomize, write_dialogues

from metric.result_folders import read_infos
from palkit.cli import UserError
from pal.checkpoint import save_checkpoint
from pal.model import build_model

pytestmark = pytest.mark.usefixtures("one_torch_thread", "punkt")
summarize_results = load_script("codes/summarize_results.py")
compare_systems = load_script("codes/compare_systems.py")


def test_infer_folders_are_grouped_by_system_and_seed(tmp_path, tiny_blender_dir, capsys, monkeypatch):
    run = tmp_path / "strat.strat" / "table3-seed-42"  # a training run folder as codes/train.py leaves it
    os.makedirs(run)
    _, model = build_model("strat", pretrained_model_path=tiny_blender_dir)
    save_checkpoint(randomize(model), str(run / "epoch-0.bin"))
    (run / "args.json").write_text(json.dumps({"seed": 42, "learning_rate": 1.5e-5}))
    (run / "eval_log.csv").write_text("epoch,global_step,eval_loss,eval_ppl\n0,10,2.0,7.389\n")
    write_dialogues(tmp_path / "test.txt")
    for system, extra in (("pal", []), ("pal_alpha0", ["--strategy_alpha", "0"])):
        for decode in (0, 1):
            run_infer(["--config_name", "strat", "--inputter_name", "strat", "--pretrained_model_path",
                       tiny_blender_dir, "--load_checkpoint", os.path.relpath(run / "epoch-0.bin"),
                       "--infer_input_file", str(tmp_path / "test.txt"), *FAST, *extra, "--seed", str(decode), "--save_dir",
                       str(tmp_path / "table3" / system / f"decode-{decode}")])
    folders = sorted(str(p) for p in (tmp_path / "table3").glob("*/decode-*"))
    infos = read_infos(folders)
    assert [(i.system, i.train_seed, i.epoch, i.decode_seed) for i in infos] == [
        ("pal", 42, 0, 0), ("pal", 42, 0, 1), ("pal_alpha0", 42, 0, 0), ("pal_alpha0", 42, 0, 1)]
    assert infos[0].eval_ppl == {0: 7.389}
    out = tmp_path / "results.json"
    monkeypatch.chdir(tmp_path)  # found from any directory: infer_args.json holds the absolute checkpoint
    summarize_results.main([str(tmp_path / "table3"), "--select", "best_ppl", "--json", str(out)])
    rows = json.loads(out.read_text())["tables"][0]["rows"]
    assert [(r["name"], r["paper"], r["cells"]["B-2"]["n_folders"]) for r in rows] == [
        ("PAL", "pal", 2), ("PAL α=0", "pal_alpha0", 2)]
    capsys.readouterr()
    compare_systems.main([str(tmp_path / "table3" / "pal"), str(tmp_path / "table3" / "pal_alpha0"),
                          "--resamples", "50", "--select", "best_ppl"])
    text = capsys.readouterr().out
    assert "### B = PAL α=0 vs A = PAL" in text and "| B-2 (`bleu-2`) |" in text
    with pytest.raises(UserError, match="several systems"):  # one argument = one system
        compare_systems.main([str(tmp_path / "table3"), str(tmp_path / "table3" / "pal"), "--resamples", "5"])
