"""codes/train.py: checkpoints and logs, loss going down, exact resume, 2-process DDP on gloo, optimizer details.

Runs use a tiny random BlenderBot-small (conftest `tiny_blender_dir`) and short sequences; single-process runs call
train.main in-process, the DDP run goes through torchrun like a user's would.
"""
import csv
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from helpers.paths import REPO_ROOT, load_script
from helpers.training import load, train_args
from palkit.cli import UserError
from pal.model import build_model
from pal.optim import HF4AdamW, parameter_groups

prepare = load_script("codes/prepare.py")
train = load_script("codes/train.py")


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_training_writes_checkpoints_and_logs_and_the_loss_goes_down(data, tiny_blender_dir, tmp_path):
    run = tmp_path / "run"
    train.main(train_args(data, tiny_blender_dir, run, "--num_epochs", "3", "--learning_rate", "3e-3"))
    n_examples = json.loads((data / "prepared" / "features" / "meta.json").read_text())["n_examples"]
    steps_per_epoch = n_examples // 4
    assert sorted(os.listdir(run)) == ["args.json", "config.json", "custom_config.json", "epoch-0.bin", "epoch-1.bin",
                                       "epoch-2.bin", "eval_log.csv", "train_log.csv"]  # state removed when done
    rows = read_csv(run / "train_log.csv")
    assert list(rows[0]) == train.TRAIN_LOG_COLUMNS and len(rows) == 3 * steps_per_epoch
    assert [int(r["global_step"]) for r in rows] == list(range(1, 3 * steps_per_epoch + 1))
    losses = [float(r["loss"]) for r in rows]
    assert sum(losses[-steps_per_epoch:]) < sum(losses[:steps_per_epoch]) - 0.5 * steps_per_epoch
    evals = read_csv(run / "eval_log.csv")
    assert [r["epoch"] for r in evals] == ["0", "1", "2"] and list(evals[0])[:4] == ["epoch", "global_step",
                                                                                     "eval_loss", "eval_ppl"]
    eval_losses = [float(r["eval_loss"]) for r in evals]
    assert eval_losses[2] < eval_losses[0]
    assert math.isclose(float(evals[0]["eval_ppl"]), math.exp(eval_losses[0]), rel_tol=1e-9)
    # linear decay from the released lr over num_epochs * ceil(examples / batch) steps, no warmup
    total = 3 * math.ceil(n_examples / 4)
    assert math.isclose(float(rows[1]["lr"]), 3e-3 * (total - 1) / total, rel_tol=1e-9)
    args = json.loads((run / "args.json").read_text())
    assert args["learning_rate"] == 3e-3 and args["world_size"] == 1 and args["num_training_steps"] == total
    # epoch-N.bin is a plain state_dict with the model's own key names: the model loader takes it strictly
    state = load(run / "epoch-2.bin")
    assert "persona_context_w" in state and "strategy_alpha" in state and not any(k.startswith("module.") for k in state)
    _, model = build_model("strat", tiny_blender_dir, checkpoint=str(run / "epoch-2.bin"))
    assert torch.equal(model.state_dict()["lm_head.weight"], state["lm_head.weight"])


def test_resume_gives_the_same_run_as_no_interruption(data, tiny_blender_dir, tmp_path):
    common = ("--num_epochs", "2", "--learning_rate", "2e-3", "--gradient_accumulation_steps", "2",
              "--save_state_steps", "2")
    steps_per_epoch = json.loads((data / "prepared" / "features" / "meta.json").read_text())["n_examples"] // 4
    last = steps_per_epoch + 2  # crosses the epoch boundary
    straight, staged = tmp_path / "straight", tmp_path / "staged"
    train.main(train_args(data, tiny_blender_dir, straight, *common, "--max_steps", str(last)))
    train.main(train_args(data, tiny_blender_dir, staged, *common, "--max_steps", "3"))
    assert os.path.exists(staged / train.STATE_DIR)
    train.main(train_args(data, tiny_blender_dir, staged, *common, "--max_steps", str(last), "--resume", str(staged)))
    for epoch in (0, 1):
        a, b = load(straight / f"epoch-{epoch}.bin"), load(staged / f"epoch-{epoch}.bin")
        assert all(torch.equal(a[k], b[k]) for k in a), epoch
    strip = lambda rows: [{k: v for k, v in r.items() if k != "epoch_time"} for r in rows]
    assert strip(read_csv(straight / "train_log.csv")) == strip(read_csv(staged / "train_log.csv"))
    assert [r["global_step"] for r in read_csv(staged / "eval_log.csv")] == ["3", str(steps_per_epoch), str(last)]
    with pytest.raises(UserError, match="--learning_rate 0.001: the run was trained with --learning_rate 0.002"):
        train.main(train_args(data, tiny_blender_dir, staged, *common, "--learning_rate", "1e-3", "--resume",
                              str(staged)))
    with pytest.raises(UserError, match="already holds files"):
        train.main(train_args(data, tiny_blender_dir, staged, *common))


@pytest.mark.slow
def test_two_gloo_processes_give_the_same_steps_as_one_process_on_the_global_batch(data, tiny_blender_dir, tmp_path):
    # No dropout (each process draws its own masks) and masked fusion (padding differs between a batch of 4 and two
    # batches of 2); the loss is averaged over the whole step's tokens so splitting the batch cannot change it.
    model_dir = tmp_path / "tiny_no_dropout"
    model_dir.mkdir()
    for name in os.listdir(tiny_blender_dir):
        (model_dir / name).write_bytes((open(os.path.join(tiny_blender_dir, name), "rb").read()))
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps(dict(config, dropout=0.0)))
    common = ("--num_epochs", "1", "--max_steps", "4", "--learning_rate", "3e-3", "--fusion_mask_padding", "True",
              "--loss_averaging", "optimizer_step", "--device", "cpu")
    one, two = tmp_path / "one", tmp_path / "two"
    train.main(train_args(data, str(model_dir), one, *common, "--train_batch_size", "4"))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(REPO_ROOT / "codes" / "train.py"), *train_args(data, str(model_dir), two, *common, "--train_batch_size",
                                                             "2")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((two / "args.json").read_text())["world_size"] == 2
    a, b = read_csv(one / "train_log.csv"), read_csv(two / "train_log.csv")
    assert len(a) == len(b) == 4
    for ra, rb in zip(a, b):
        assert math.isclose(float(ra["loss"]), float(rb["loss"]), rel_tol=1e-5)
        assert ra["n_token_real"] == rb["n_token_real"]  # the same examples went in
    wa, wb = load(one / "epoch-0.bin"), load(two / "epoch-0.bin")
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) < 1e-5
    assert float((wa["lm_head.weight"] - load_initial(model_dir)).abs().max()) > 1e-4  # it did train


def load_initial(model_dir):
    _, model = build_model("strat", str(model_dir))
    return model.state_dict()["lm_head.weight"]


def test_presets_and_argument_checks(data, tiny_blender_dir, tmp_path):
    parse = lambda *a: train.resolve_args(train.build_parser().parse_args(
        ["--config_name", "strat", "--inputter_name", "strat", "--eval_input_file", str(data / "valid.txt"), *a]))
    released = parse()
    assert (released.learning_rate, released.warmup_steps, released.seed, released.train_batch_size,
            released.eval_batch_size, released.num_epochs, released.max_input_length,
            released.max_decoder_input_length, released.precision) == (1.5e-5, 0, 13, 4, 16, 10, 512, 50, "fp32")
    paper = parse("--learning_rate", "1.5e-5", "--paper_hparams", "True")  # the preset wins over the script's value
    assert (paper.learning_rate, paper.warmup_steps) == (2.5e-5, 100)
    assert parse("--fp16", "true").precision == "fp16"
    for bad, message in ((("--fp16", "true", "--precision", "bf16"), "contradicts"),
                         (("--train_batch_size", "4", "--gradient_accumulation_steps", "3"), "not a multiple"),
                         (("--encode_context", "False"),  "not supported")):
        with pytest.raises(UserError, match=message):
            parse(*bad)
    with pytest.raises(UserError, match="prepared with other settings .*max_input_length: prepared 48, now 64"):
        train.main(train_args(data, tiny_blender_dir, tmp_path / "r", "--max_input_length", "64"))
    with pytest.raises(UserError, match="no prepared features"):
        train.main(train_args(data, tiny_blender_dir, tmp_path / "r", "--prepared_dir", str(tmp_path)))


def test_bf16_autocast_runs_on_cpu_and_fp16_needs_cuda(data, tiny_blender_dir, tmp_path):
    train.main(train_args(data, tiny_blender_dir, tmp_path / "bf16", "--max_steps", "2", "--precision", "bf16",
                          "--device", "cpu"))
    assert all(math.isfinite(float(r["loss"])) for r in read_csv(tmp_path / "bf16" / "train_log.csv"))
    with pytest.raises(UserError, match="fp16 needs CUDA"):
        train.main(train_args(data, tiny_blender_dir, tmp_path / "fp16", "--fp16", "true", "--device", "cpu"))


def test_weight_decay_groups(tiny_blender_dir):
    _, model = build_model("strat", tiny_blender_dir)
    names = {id(p): n for n, p in model.named_parameters()}
    spec_decay, spec_plain = [[names[id(p)] for p in g["params"]] for g in parameter_groups(model, 0.01, "spec")]
    assert "model.encoder.layers.0.final_layer_norm.weight" in spec_plain and "persona_norm.weight" in spec_plain
    assert all(n.endswith("bias") or "norm" in n for n in spec_plain)
    assert "model.encoder.layers.0.fc1.weight" in spec_decay and "persona_context_w" in spec_decay
    assert "strategy_alpha" not in spec_decay + spec_plain  # frozen, as in the release
    authors_decay, authors_plain = [[names[id(p)] for p in g["params"]]
                                    for g in parameter_groups(model, 0.01, "authors")]
    # the released patterns ('bias', 'ln', 'LayerNorm.weight') match only biases on BlenderBot-small's names
    assert all(n.endswith("bias") for n in authors_plain) and "persona_norm.weight" in authors_decay


def test_hf4_adamw_is_the_transformers_4_update():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    opt = HF4AdamW([{"params": [p], "weight_decay": 0.1}], lr=0.01)
    grads = [torch.tensor([0.3, -0.1, 2.0]), torch.tensor([-0.2, 0.4, 1.0])]
    expected = p.detach().clone()
    m, v = torch.zeros(3), torch.zeros(3)
    for t, g in enumerate(grads, start=1):
        p.grad = g.clone()
        opt.step()
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
        step_size = 0.01 * math.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        expected = expected - step_size * m / (v.sqrt() + 1e-6)  # eps before the bias correction
        expected = expected - 0.01 * 0.1 * expected                # decoupled decay after the update
    assert torch.allclose(p.detach(), expected, atol=1e-7)
    torch_p = torch.nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))
    torch_opt = torch.optim.AdamW([torch_p], lr=0.01, weight_decay=0.1, eps=1e-6)
    for g in grads:
        torch_p.grad = g.clone()
        torch_opt.step()
    assert not torch.allclose(torch_p.detach(), p.detach(), atol=1e-9)  # why the class exists
