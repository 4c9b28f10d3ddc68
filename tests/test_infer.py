"""codes/infer.py and codes/interact.py end to end on a tiny model and a three-dialogue file."""
import io
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from pal.chat import persona_string
from palkit.cli import UserError
from pal.model import build_model
from helpers.infer import infer_args, run_infer
from helpers.paths import load_script

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_same_seed_gives_byte_identical_gen_json(run_dir, tiny_blender_dir):
    argv = infer_args(run_dir, tiny_blender_dir)
    run_infer(argv)
    res = run_dir / "strat" / "res_epoch-0.bin_test_k.10_p.0.9_b.1_t.0.5_lp.1.0_rp.1.03_ng.0"  # the authors' name
    first = (res / "gen.json").read_bytes()
    run_infer(argv)
    assert (res / "gen.json").read_bytes() == first
    records = json.loads(first)
    assert len(records) == 9  # the supporter turns right after a seeker turn
    keys = ["sample_id", "post", "response", "generation", "persona", "cls_strat_id", "pred_strat_id",
            "pred_strat_id_top1", "pred_strat_id_top3", "pred_strat_id_dist", "token_num", "loss", "ppl"]
    assert all(list(r) == keys for r in records)
    assert [r["sample_id"] for r in records] == [0, 0, 0, 0, 1, 1, 1, 2, 2]
    assert records[0]["post"] == "hi, i have been really worried lately."
    assert records[0]["response"] == "hello, how are you doing today?"
    assert records[1]["persona"] == ""  # "<input>" decoded without added tokens
    assert records[2]["persona"].startswith("i have two kids")  # persona_list[0] after the 3rd seeker turn
    assert records[2]["cls_strat_id"] == 4 and len(records[0]["pred_strat_id_top3"]) == 5
    assert abs(sum(map(float, records[0]["pred_strat_id_dist"].split())) - 1) < 1e-5
    lines = (res / "gen.txt").read_text().splitlines()
    assert [json.loads(line) for line in lines] == records
    for r in records:
        assert abs(r["ppl"] - torch.exp(torch.tensor(r["loss"])).item()) < 1e-3 * r["ppl"]
        assert r["token_num"] == float(int(r["token_num"])) and 2 <= r["token_num"] <= 16
    metrics = json.loads((res / "metric.json").read_text())
    assert "perplexity" in metrics and "acc_cls_strat_id" in metrics
    other_seed = infer_args(run_dir, tiny_blender_dir, extra=["--only_generate", "--seed", "5", "--save_dir",
                                                              str(run_dir / "seed5")])
    run_infer(other_seed)
    assert [r["generation"] for r in json.loads((run_dir / "seed5" / "gen.json").read_text())] != \
        [r["generation"] for r in records]  # sampling really happens


def test_gen_json_loss_is_the_models_validation_loss(run_dir, tiny_blender_dir):
    """gen.json's per-example loss and token_num, written by infer.py with --infer_batch_size 2, are the model's own
    loss on the validation batches of 2 (fusion attends over padding, so the batch matters): each batch's token-mean
    loss (the model's `loss`) and each example's mean cross-entropy computed here from its logits."""
    from pal.config import load_config
    from pal.inputter import Featurizer, settings_for, validation_batches
    save = run_dir / "loss_check"
    run_infer(infer_args(run_dir, tiny_blender_dir, extra=["--save_dir", str(save)]))
    records = json.loads((save / "gen.json").read_text())
    toker, model = build_model("strat", pretrained_model_path=tiny_blender_dir,
                               checkpoint=str(run_dir / "strat" / "epoch-0.bin"))
    model.eval()
    settings = settings_for(load_config("strat"), "strat", 64, 15)
    features = Featurizer(toker, settings).file_features(str(run_dir / "test.txt"), "inference", with_meta=True)
    start = 0
    with torch.no_grad():
        for batch in validation_batches(features, 2, toker.pad_token_id, True):
            out = model(**batch)
            mine = records[start:start + len(batch["labels"])]
            start += len(mine)
            tokens = sum(r["token_num"] for r in mine)
            assert sum(r["loss"] * r["token_num"] for r in mine) / tokens == pytest.approx(out.loss.item(), rel=1e-6)
            for record, logits, labels in zip(mine, out.logits, batch["labels"]):
                kept = labels != -100
                assert record["token_num"] == int(kept.sum())
                expected = torch.nn.functional.cross_entropy(logits[kept].float(), labels[kept]).item()
                assert record["loss"] == pytest.approx(expected, rel=1e-6)
    assert start == len(records) == 9
    metric = json.loads((save / "metric.json").read_text())
    total = sum(r["token_num"] for r in records)
    assert metric["perplexity"] == pytest.approx(math.exp(sum(r["loss"] * r["token_num"] for r in records) / total))


@pytest.mark.parametrize("config,inputter", [("strat_no_persona", "strat"), ("vanilla", "vanilla")])
def test_baselines_infer(run_dir, tiny_blender_dir, config, inputter):
    save = run_dir / f"res_{config}"
    run_infer(infer_args(run_dir, tiny_blender_dir, config, inputter,
                         ["--only_generate", "--save_dir", str(save), "--top_k", "0", "--top_p", "1.0"]))
    records = json.loads((save / "gen.json").read_text())
    assert len(records) == 9 and all(r["generation"] for r in records)
    assert ("pred_strat_id" in records[0]) == (config != "vanilla")


def test_options_change_the_result_folder(run_dir, tiny_blender_dir):
    infer = load_script("codes/infer.py")
    args = infer.build_parser().parse_args(infer_args(run_dir, tiny_blender_dir, extra=[
        "--strategy_alpha", "0", "--use_gold_strategy", "--fusion_mask_padding", "True"]))
    name = os.path.basename(infer.result_dir(args, "DATA/pesconv/test.txt"))
    default = infer.build_parser().parse_args(infer_args(run_dir, tiny_blender_dir))
    assert name == "res_epoch-0.bin_test_k.10_p.0.9_b.1_t.0.5_lp.1.0_rp.1.03_ng.0_gold_alpha.0_fmask"
    exact = infer.build_parser().parse_args(infer_args(run_dir, tiny_blender_dir, extra=[
        "--contrastive_impl", "two_pass"]))
    assert infer.result_dir(exact, "test.txt") == infer.result_dir(default, "test.txt") + "_impl.two_pass"


def run_script(script, args, stdin=None):
    return subprocess.run([sys.executable, os.path.join(REPO, "codes", script), *args], input=stdin,
                          capture_output=True, text=True, cwd=REPO, timeout=300)


def test_checkpoint_of_another_config_is_a_one_line_error(run_dir, tiny_blender_dir):
    save = run_dir / "should_not_exist"
    result = run_script("infer.py", ["--config_name", "vanilla", "--inputter_name", "vanilla",
                                     "--pretrained_model_path", tiny_blender_dir, "--load_checkpoint",
                                     str(run_dir / "strat" / "epoch-0.bin"), "--infer_input_file",
                                     str(run_dir / "test.txt"), "--save_dir", str(save)])
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "persona_norm.weight" in result.stderr and "Traceback" not in result.stderr
    assert not save.exists()


def test_bad_data_file_is_a_user_error(run_dir, tiny_blender_dir, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text('{"dialog": [{"text": "hi", "speaker": "usr"}]}\nnot json\n')
    argv = infer_args(run_dir, tiny_blender_dir, extra=["--save_dir", str(tmp_path / "out")])
    argv[argv.index("--infer_input_file") + 1] = str(bad)
    with pytest.raises(UserError, match="line 2"):
        run_infer(argv)
    assert not (tmp_path / "out").exists()


# ---- interact -----------------------------------------------------------------------------------------------------
def test_interact_piped_prints_strategy(run_dir, tiny_blender_dir, tmp_path):
    result = run_script("interact.py", ["--config_name", "strat", "--inputter_name", "strat",
                                        "--pretrained_model_path", tiny_blender_dir, "--load_checkpoint",
                                        str(run_dir / "strat" / "epoch-0.bin"), "--max_length", "6",
                                        "--persona", "i am a nurse. i have a cat.", "--output_dir",
                                        str(tmp_path / "dialogs")],
                        stdin="hi there\n\ni lost my job\nquit\nnever sent to the model\n")  # quit: a command
    assert result.returncode == 0, result.stderr
    replies = [line for line in result.stdout.splitlines() if line.strip().startswith("AI [")]
    assert len(replies) == 2
    assert all(line.split("[", 1)[1].split("]")[0] in __import__("pal.config").config.STRATEGIES for line in replies)
    assert "Prompt should not be empty!" in result.stdout
    saved = [name for name in os.listdir(tmp_path / "dialogs") if name != "interact_args.json"]
    assert len(saved) == 1
    # the chat says what it uses and where the conversation went, and that end of input ended it
    assert "Persona: i am a nurse. i have a cat.\n" in result.stdout
    assert "quitting" in result.stdout
    assert f"(conversation saved to {tmp_path / 'dialogs' / saved[0]})" in result.stdout
    dialog = json.loads((tmp_path / "dialogs" / saved[0]).read_text())
    assert [t["speaker"] for t in dialog["dialog"]] == ["usr", "sys", "usr", "sys"]
    assert dialog["persona"][0] == "<persona> i am a nurse. <persona> i have a cat. <input>"


def test_interact_with_live_persona_extractor(run_dir, tiny_blender_dir, tmp_path, monkeypatch, capsys):
    from persona_extractor.tiny_bart import make_tiny_bart_dir
    extractor_dir = make_tiny_bart_dir(str(tmp_path / "extractor"))
    interact = load_script("codes/interact.py")
    monkeypatch.setattr(sys, "stdin", io.StringIO("hi\ni am sad\nmy dog died\nwhat now\n"))
    interact.main(["--config_name", "strat", "--inputter_name", "strat", "--pretrained_model_path", tiny_blender_dir,
                   "--load_checkpoint", str(run_dir / "strat" / "epoch-0.bin"), "--max_length", "5",
                   "--persona_extractor", extractor_dir, "--output_dir", str(tmp_path / "dialogs")])
    out = capsys.readouterr().out.splitlines()
    personas = [line.strip() for line in out if line.strip().startswith("persona:")]
    assert len(personas) == 4 and not any("<input>" in p or "<persona>" in p for p in personas)
    assert personas[0] == "persona: (none)" and personas[1] == "persona: (none)"  # before the seeker's 3rd turn
    assert len([line for line in out if line.strip().startswith("AI [")]) == 4


def test_interact_without_persona_shows_none_and_eof_at_once_saves_nothing(run_dir, tiny_blender_dir, tmp_path):
    result = run_script("interact.py", ["--config_name", "strat", "--inputter_name", "strat",
                                        "--pretrained_model_path", tiny_blender_dir, "--load_checkpoint",
                                        str(run_dir / "strat" / "epoch-0.bin"), "--output_dir",
                                        str(tmp_path / "dialogs")], stdin="")
    assert result.returncode == 0, result.stderr
    assert "Persona: (none)\n" in result.stdout and "<input>" not in result.stdout
    assert "quitting" in result.stdout and "conversation saved" not in result.stdout
    assert not (tmp_path / "dialogs").exists()


def test_shown_persona():
    import interact
    assert interact.shown_persona("<persona> i am a nurse. <persona> i have a cat! <input>") == \
        "i am a nurse. i have a cat!"
    assert interact.shown_persona("<input>") == "(none)"


def test_persona_string_forms():
    assert persona_string("i am a nurse. i have a cat!") == "<persona> i am a nurse. <persona> i have a cat! <input>"
    assert persona_string("i like tea\ni run") == "<persona> i like tea <persona> i run <input>"
    assert persona_string("<persona> x. <input>") == "<persona> x. <input>"
    assert persona_string("  ") == "<input>"
