"""Persona extractor training (plain PyTorch): loss goes down, best checkpoint reloads exactly, resume is exact,
early stopping, Lightning-like validation schedule, --do_infer."""
import csv
import json
import os
import re
import subprocess
import sys

import pandas as pd
import pytest
import torch

from helpers.extractor import write_pairs
from helpers.paths import REPO_ROOT, SHARED
from palkit.cli import UserError
from persona_extractor import train_bart
from persona_extractor.extractor import PersonaExtractor
from persona_extractor.extractor_data import encode_pairs, evaluate_loss, total_training_steps, validation_every
from persona_extractor.extractor_training import Trainer, TrainConfig
from persona_extractor.modeling import load_tokenizer_and_model


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def config(tiny_bart, pair_files, out, **overrides):
    values = dict(train_file=pair_files["train"], valid_file=pair_files["valid"], output_dir=str(out),
                  model_name_or_path=tiny_bart, learning_rate=3e-3, train_batch_size=8, eval_batch_size=8,
                  warmup_steps=2, num_epochs=2, val_check_interval=0.5, device="cpu", progress=False)
    values.update(overrides)
    return TrainConfig(**values)


def log_rows(out):
    with open(os.path.join(out, "train_log.csv"), newline="") as f:
        return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def finished_run(tiny_bart, pair_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    trainer = Trainer(config(tiny_bart, pair_files, out, test_file=pair_files["test"]))
    initial = evaluate_loss(trainer.model, trainer.valid, 8, trainer.pad_id, trainer.device, progress=False)
    state = trainer.run()
    return out, trainer, state, initial


def test_schedule_numbers_match_the_authors_lightning_run():
    # PersonaChat train: 8,939 dialogues -> 17,878 rows -> 1,118 batches of 16; Lightning validated every 279
    # batches, and their best checkpoint "epoch=7-step=8384" is 7 * 1118 + 2 * 279 steps.
    assert validation_every(1118, 0.25) == 279
    assert 7 * 1118 + 2 * validation_every(1118, 0.25) == 8384
    assert total_training_steps(17_878, 16, 10) == 11_180
    assert validation_every(3, 0.25) == 1


def test_training_lowers_the_loss_and_best_reloads_to_identical_logits(finished_run):
    out, trainer, state, initial = finished_run
    rows = log_rows(out)
    assert len(rows) == 4  # 4 batches per epoch, validation every 2 batches, 2 epochs
    assert [int(r["step"]) for r in rows] == [2, 4, 6, 8]
    assert state.best_val_loss < initial - 0.1
    assert float(rows[-1]["val_loss"]) < float(rows[0]["val_loss"])
    assert state.best_step == 8  # the loss still falls at the end, so the final weights are the best ones
    tokenizer, reloaded = load_tokenizer_and_model(os.path.join(out, "best"))
    assert tokenizer.convert_tokens_to_ids(["<persona>", "<sep>"]) == \
        trainer.tokenizer.convert_tokens_to_ids(["<persona>", "<sep>"])
    batch = {"input_ids": torch.tensor([[0, 100, 200, 2, 1]]), "attention_mask": torch.tensor([[1, 1, 1, 1, 0]]),
             "decoder_input_ids": torch.tensor([[2, 0, 300]])}
    batch = {k: v.clamp(max=len(tokenizer) - 1) for k, v in batch.items()}
    trainer.model.eval()
    reloaded.eval()
    with torch.no_grad():
        assert torch.equal(trainer.model(**batch).logits, reloaded(**batch).logits)
    assert evaluate_loss(reloaded, encode_pairs(tokenizer, trainer.config.valid_file, trainer.config), 8,
                         tokenizer.pad_token_id, "cpu", progress=False) == pytest.approx(state.best_val_loss, abs=1e-6)
    results = pd.read_json(os.path.join(out, "results.json"), typ="series")
    assert results["best_step"] == 8 and "test_loss" in results


def test_resume_gives_the_same_run_as_an_uninterrupted_one(finished_run, tiny_bart, pair_files, tmp_path):
    out_full, _, full_state, _ = finished_run
    out = tmp_path / "resumed"
    Trainer(config(tiny_bart, pair_files, out, test_file=pair_files["test"], max_steps=3)).run()  # mid-interval
    assert [int(r["step"]) for r in log_rows(out)] == [2]
    state = Trainer(config(tiny_bart, pair_files, out, test_file=pair_files["test"], resume=True)).run()
    assert log_rows(out) == log_rows(out_full)
    assert state.best_val_loss == full_state.best_val_loss
    for sub in ("best", "last"):
        assert (out / sub / "model.safetensors").read_bytes() == (out_full / sub / "model.safetensors").read_bytes()


def test_validation_has_a_progress_bar_with_eta(tiny_bart, pair_files, capsys):
    tokenizer, model = load_tokenizer_and_model(tiny_bart)
    pairs = encode_pairs(tokenizer, pair_files["valid"], config(tiny_bart, pair_files, "unused"))
    evaluate_loss(model, pairs, 3, tokenizer.pad_token_id, "cpu", progress=True)
    assert re.search(r"validating: +\d+%\|.*?\| \d+/3 \[[\d:]+<[\d:?]+", capsys.readouterr().err)  # 8 rows, batches of 3


def test_resume_with_the_output_dir_alone_uses_the_runs_arguments(finished_run, tiny_bart, pair_files, tmp_path,
                                                                 capsys):
    """train_bart.py --resume OUTPUT_DIR with nothing else continues the run as it was started (its args.json)."""
    out_full = finished_run[0]
    out = tmp_path / "resumed"
    argv = ["--train_file", pair_files["train"], "--valid_file", pair_files["valid"], "--test_file",
            pair_files["test"], "--model_name_or_path", tiny_bart, "--output_dir", str(out), "--learning_rate", "3e-3",
            "--train_batch_size", "8", "--eval_batch_size", "8", "--warmup_steps", "2", "--num_epochs", "2",
            "--val_check_interval", "0.5", "--device", "cpu", "--no_progress"]
    train_bart.main([*argv, "--max_steps", "3"])
    assert "continue with RUN/python persona_extractor/train_bart.py --resume " + str(out) in capsys.readouterr().err
    with pytest.raises(UserError, match="--learning_rate 0.1: the run was trained with --learning_rate 0.003 .*drop"):
        train_bart.main(["--resume", str(out), "--learning_rate", "0.1"])
    train_bart.main(["--resume", str(out), "--no_progress"])
    for sub in ("best", "last"):
        assert (out / sub / "model.safetensors").read_bytes() == (out_full / sub / "model.safetensors").read_bytes()
    assert log_rows(out) == log_rows(out_full)


@pytest.mark.parametrize("interval", ["epoch", "step"])
def test_learning_rate_of_every_step_for_both_scheduler_intervals(tiny_bart, pair_files, tmp_path, interval):
    # 32 rows in batches of 8: 4 steps per epoch; schedule length (32 // 8 + 1) * 2 = 10, warmup 2, peak 3e-3.
    # step: the linear warmup/decay indexed by the optimizer step s: 3e-3 * s / 2 while s < 2, then
    #   3e-3 * (10 - s) / 8.  epoch (Lightning 1.x without "interval"): the same function indexed by the epoch,
    #   so 3e-3 * 0 / 2 in epoch 0 and 3e-3 * 1 / 2 in epoch 1.
    expected = {"step": [0.0, 1.5e-3, 3e-3, 2.625e-3, 2.25e-3, 1.875e-3, 1.5e-3, 1.125e-3],
                "epoch": [0.0] * 4 + [1.5e-3] * 4}[interval]
    trainer = Trainer(config(tiny_bart, pair_files, tmp_path, scheduler_interval=interval))
    seen, on_step_end = [], trainer.task.on_step_end
    trainer.task.on_step_end = lambda engine, stats, lr: seen.append(lr) or on_step_end(engine, stats, lr)
    trainer.run()
    assert seen == pytest.approx(expected, abs=1e-12)
    assert json.loads((tmp_path / "args.json").read_text())["scheduler_interval"] == interval


def test_default_scheduler_interval_is_the_authors_epoch():
    assert train_bart.train_config(train_bart.build_parser().parse_args([])).scheduler_interval == "epoch"
    assert TrainConfig("a", "b", "c").scheduler_interval == "epoch"


@pytest.mark.slow
def test_two_gloo_processes_train_the_extractor_as_one_process_on_the_global_batch(tmp_path, pair_files):
    from persona_extractor.tiny_bart import make_tiny_bart_dir
    real = SHARED / "models" / "bart-base"
    model = make_tiny_bart_dir(str(tmp_path / "tiny"), tokenizer_dir=str(real) if real.is_dir() else None,
                               dropout=0.0)  # each process draws its own dropout masks
    train_file = write_pairs(tmp_path / "train.csv", 30)  # batches of 8, 8, 8, 6: split 4+4 and 3+3
    cli = lambda out: ["--train_file", train_file, "--valid_file", pair_files["valid"], "--model_name_or_path", model,
                       "--output_dir", str(out), "--learning_rate", "3e-3", "--train_batch_size", "8",
                       "--eval_batch_size", "8", "--warmup_steps", "2", "--num_epochs", "2",
                       "--val_check_interval", "0.5", "--scheduler_interval", "step", "--device", "cpu",
                       "--no_progress"]
    train_bart.main(cli(tmp_path / "one"))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             str(REPO_ROOT / "persona_extractor" / "train_bart.py"), *cli(tmp_path / "two")],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    one, two = log_rows(tmp_path / "one"), log_rows(tmp_path / "two")
    assert [r["step"] for r in one] == [r["step"] for r in two] == ["2", "4", "6", "8"]
    for a, b in zip(one, two):
        assert float(a["train_loss"]) == pytest.approx(float(b["train_loss"]), rel=1e-5)
        assert float(a["val_loss"]) == pytest.approx(float(b["val_loss"]), rel=1e-5)
    _, m1 = load_tokenizer_and_model(str(tmp_path / "one" / "last"))
    _, m2 = load_tokenizer_and_model(str(tmp_path / "two" / "last"))
    w1, w2, w0 = m1.state_dict(), m2.state_dict(), load_tokenizer_and_model(model)[1].state_dict()
    assert max(float((w1[k] - w2[k]).abs().max()) for k in w1) < 1e-5
    assert max(float((w1[k] - w0[k]).abs().max()) for k in w1) > 1e-3  # it did train


def test_early_stopping_after_patience_validations_without_improvement(tiny_bart, pair_files, tmp_path):
    # learning rate 0: the validation loss never improves after the first validation
    state = Trainer(config(tiny_bart, pair_files, tmp_path, learning_rate=0.0, num_epochs=10, patience=2,
                           val_check_interval=0.25)).run()
    assert state.stopped_early and state.step == 3  # validations at steps 1 (best), 2, 3 -> 2 without improvement
    assert [r["improved"] for r in log_rows(tmp_path)] == ["1", "0", "0"]


def test_cli_errors(tiny_bart, pair_files, finished_run, tmp_path):
    with pytest.raises(UserError, match="no such file"):
        train_bart.main(["--train_dir", str(tmp_path), "--model_name_or_path", tiny_bart,
                         "--output_dir", str(tmp_path / "o")])
    with pytest.raises(UserError, match="already holds a run"):
        train_bart.main(["--train_file", pair_files["train"], "--valid_file", pair_files["valid"],
                         "--model_name_or_path", tiny_bart, "--output_dir", str(finished_run[0])])
    with pytest.raises(UserError, match="not found"):
        train_bart.main(["--train_file", pair_files["train"], "--valid_file", pair_files["valid"],
                         "--model_name_or_path", str(tmp_path / "missing_model"), "--output_dir", str(tmp_path / "p")])
    with pytest.raises(UserError, match="nothing to resume"):
        train_bart.main(["--train_file", pair_files["train"], "--valid_file", pair_files["valid"],
                         "--model_name_or_path", tiny_bart, "--output_dir", str(tmp_path / "q"), "--resume"])


def test_do_infer_writes_raw_and_filtered_generations(finished_run, pair_files, tmp_path):
    out = finished_run[0]
    target = tmp_path / "gen.csv"
    train_bart.main(["--do_infer", "--output_dir", str(out), "--infer_file", pair_files["test"],
                     "--infer_output", str(target), "--num_beams", "2", "--max_length", "12", "--no_progress"])
    frame = pd.read_csv(target, keep_default_na=False, dtype=str)
    assert len(frame) == 8
    assert {"context", "persona", "infer_res", "persona_inferred"} <= set(frame.columns)
    assert all(r.startswith("</s>") for r in frame["infer_res"])  # decoder start token, decoded as the authors'
    assert all(p.endswith("<input>") for p in frame["persona_inferred"])


def scripted_generation(extractor, text):
    """Make the extractor's own model generate `text` then eos, whatever its input: a chain of sequence biases in
    its generation config (each longer matching prefix outweighs the shorter ones). No call is replaced."""
    ids = extractor.tokenizer(text, add_special_tokens=False)["input_ids"] + [extractor.tokenizer.eos_token_id]
    extractor.model.generation_config.sequence_bias = {tuple(ids[:k]): 100.0 * k for k in range(1, len(ids) + 1)}


def test_persona_extractor_api(finished_run):
    """The API end to end on a real model whose generation is fixed through its generation config: the raw text,
    the filters applied to it (a favourite-band sentence dropped), the turn threshold, and the same answer alone as in
    a batch of other inputs. An extractor that always answered "<input>" fails it."""
    extractor = PersonaExtractor.from_pretrained(str(finished_run[0]), device="cpu")  # a run folder: uses best/
    extractor.decoding.num_beams, extractor.decoding.max_length = 2, 40
    scripted_generation(extractor, "<persona> i am sad. <persona> my favorite band is x.")
    raw = extractor.generate_raw(["hi <sep> i am sad </s>"])[0]
    assert "<persona> i am sad. <persona> my favorite band is x." in raw.replace("  ", " ")
    assert extractor.persona_for_turn(["hi", "i am sad"]) == "<input>"  # before the seeker's 3rd turn: no call
    assert extractor.infer_persona([]) == "<input>"
    assert extractor.persona_for_turn(["hi", "i am sad", "i lost my job"]) == "<persona> i am sad. <input>"
    batch = extractor.personas_for_inputs(["hi </s>", "i lost my job <sep> i am sad </s>", "x </s>"], batch_size=2)
    assert batch == ["<persona> i am sad. <input>"] * 3
    scripted_generation(extractor, "<persona> My favorite color is blue. <persona> i.")  # every sentence filtered
    assert extractor.infer_persona(["a", "b", "c"]) == "<input>"
