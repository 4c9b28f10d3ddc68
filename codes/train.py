"""Fine-tune PAL / Blender-Joint / vanilla BlenderBot-small on prepared features (the authors' codes/train.py).

Usage (from the repository root; RUN/train_strat.sh has the released settings):
  python codes/prepare.py --config_name strat --inputter_name strat --train_input_file DATA/pesconv/train.txt
  python codes/train.py --config_name strat --inputter_name strat --eval_input_file DATA/pesconv/valid.txt
  torchrun --nproc_per_node 2 codes/train.py ...             # DistributedDataParallel (nccl on GPUs, gloo on CPU)
  python codes/train.py ... --resume DATA/strat.strat/RUN    # continue a stopped run exactly where it stopped

Reads DATA/{inputter}.{config}/data.pkl (codes/prepare.py) and writes a run folder
DATA/{inputter}.{config}/<timestamp>.<lr>.<batch>.<n>gpu/ (the authors' name) with
  epoch-N.bin        model.state_dict() after epoch N (N from 0), loadable by the authors' code and ours
  train_log.csv      one row per optimizer step: epoch, global_step, step, loss, ppl, mean_loss, mean_ppl, lr, ...
  eval_log.csv       one row per validation (after every epoch): epoch, global_step, eval_loss, eval_ppl, ...
  args.json          the arguments after presets, plus world size and step counts; custom_config.json, config.json
  training_state.pt  weights, optimizer, scheduler, RNG states and data position for --resume (removed when the
                     run completes all epochs; rank_state_<r>.pt hold each process' RNG states)

What the released code does and this script reproduces by default: seed 13; batches from the authors' bucketing
sampler (pal.inputter.BucketBatchSampler, seeded, carried over epochs); transformers-4.x AdamW (eps 1e-6, bias
correction applied to the step size, decoupled weight decay after the update); weight decay 0.01; linear schedule
over num_epochs * ceil(examples / batch) steps (the authors' count; the sampler drops the incomplete batch, so the
learning rate ends slightly above 0); gradient clipping at 1.0; validation loss = total token loss / total tokens
on the validation file batched as the authors do; a checkpoint and a validation after every epoch.

Documented choices where the released code cannot run or is ambiguous (each an option):
  --weight_decay_rule   spec (default): no decay on biases and LayerNorm weights (SPEC). authors: the released
                        name patterns ('bias', 'ln', 'LayerNorm.weight'), which on BlenderBot-small's parameter names
                        exempt only biases, so LayerNorm weights are decayed.
  --optimizer           hf4_adamw (default, the authors' transformers-4.x AdamW) or torch_adamw (torch.optim.AdamW,
                        eps 1e-8, epsilon outside the bias correction).
  --loss_averaging      micro_batch (default, the authors'): each micro-batch's loss is its token mean and a step
                        averages micro-batches (gradient accumulation; processes under DDP). optimizer_step: the
                        token mean over the whole step's batch, so the update does not depend on how the batch is
                        split into micro-batches or processes. Both are the same with one process and no accumulation.
  multi-process         the released script summed per-process gradients after clipping each (nccl only); here
                        DistributedDataParallel averages them and clipping sees the averaged gradient. The global
                        batch of train_batch_size * world_size examples is drawn by the same sampler as a
                        single-process run with that batch size and split across processes, so both runs see the
                        same data.
  gradient accumulation --train_batch_size is per process and optimizer step (the authors': micro-batches hold
                        train_batch_size / gradient_accumulation_steps examples); the schedule counts optimizer steps
                        (the released code counted micro-batches) and an epoch's last micro-batches that do not fill
                        a step are dropped.
  --max_steps           stop after this many optimizer steps (smoke tests, staged runs); the schedule stays that of
                        the full run, the partial epoch is checkpointed and validated, and --resume continues it.
"""
import argparse
import csv
import datetime
import json
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist

from pal.cli import UserError, atomic_write, boolean_string, run_main, write_json
from pal.config import CONFIG_DIR, load_config, resolve_pretrained_path
from pal.inputter import BucketBatchSampler, Featurizer, collate, settings_for, validation_batches
from pal.model import build_model, save_checkpoint, unwrap_model
from pal.optim import HF4AdamW, build_optimizer, parameter_groups  # noqa: F401 (the last two: re-exported for tests)
from prepare import check_encode_context, default_prepared_dir, load_prepared

# ------------------------------------------------------------------------------------------- defaults in one place
# The released chengjl19/PAL codes/RUN/train_strat.sh (RUN/train_*.sh pass the same values visibly).
RELEASED = dict(seed=13, max_input_length=512, max_decoder_input_length=50, train_batch_size=4,
                gradient_accumulation_steps=1, eval_batch_size=16, learning_rate=1.5e-5, num_epochs=10,
                warmup_steps=0, max_grad_norm=1.0, weight_decay=0.01, use_all_persona=False)
# The paper's stated values (Cheng et al. 2023, implementation details), applied by --paper_hparams True.
PAPER_HPARAMS = dict(learning_rate=2.5e-5, warmup_steps=100)
BUCKET_FACTOR = 100  # the authors' bucket = 100 batches
STATE_FILE = "training_state.pt"
TRAIN_LOG_COLUMNS = ["epoch", "global_step", "step", "loss", "ppl", "mean_loss", "mean_ppl", "lr",
                     "n_token_real", "n_token_total", "epoch_time"]
EVAL_LOG_COLUMNS = ["epoch", "global_step", "eval_loss", "eval_ppl", "eval_tokens", "eval_examples", "lr",
                    "checkpoint"]
# Arguments that must be the same when a run is resumed (the others, e.g. --max_steps, may change).
RESUME_INVARIANTS = ("config_name", "inputter_name", "seed", "max_input_length", "max_decoder_input_length",
                     "train_batch_size", "gradient_accumulation_steps", "learning_rate", "num_epochs", "warmup_steps",
                     "max_grad_norm", "weight_decay", "weight_decay_rule", "optimizer", "loss_averaging",
                     "use_all_persona", "precision", "fusion_mask_padding", "world_size", "n_train_examples")


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config_name", required=True, help="strat (PAL), strat_no_persona (Blender-Joint), vanilla")
    p.add_argument("--inputter_name", required=True, help="strat or vanilla")
    p.add_argument("--eval_input_file", required=True, help="valid.txt written by codes/_reformat/process.py")
    p.add_argument("--seed", type=int, default=RELEASED["seed"])
    p.add_argument("--load_checkpoint", "-c", default=None, help="start from this epoch-N.bin instead of pretrained")
    p.add_argument("--pretrained_model_path", default=None, help="overrides the config's path (directory/hub name)")
    p.add_argument("--prepared_dir", default=None, help="prepare.py output; default DATA/{inputter}.{config}")
    p.add_argument("--output_dir", default=None,
                   help="the run folder; default <prepared_dir>/<timestamp>.<lr>.<batch>.<n>gpu")
    p.add_argument("--max_input_length", type=int, default=RELEASED["max_input_length"])
    p.add_argument("--max_decoder_input_length", type=int, default=RELEASED["max_decoder_input_length"])
    p.add_argument("--use_all_persona", type=boolean_string, default=RELEASED["use_all_persona"])
    p.add_argument("--train_batch_size", type=int, default=RELEASED["train_batch_size"],
                   help="examples per optimizer step and process")
    p.add_argument("--gradient_accumulation_steps", type=int, default=RELEASED["gradient_accumulation_steps"])
    p.add_argument("--eval_batch_size", type=int, default=RELEASED["eval_batch_size"])
    p.add_argument("--learning_rate", type=float, default=None,
                   help=f"default {RELEASED['learning_rate']} (released); {PAPER_HPARAMS['learning_rate']} "
                        f"with --paper_hparams True")
    p.add_argument("--warmup_steps", type=int, default=None,
                   help=f"default {RELEASED['warmup_steps']} (released); {PAPER_HPARAMS['warmup_steps']} with "
                        f"--paper_hparams True")
    p.add_argument("--paper_hparams", type=boolean_string, default=False,
                   help="preset: the paper's stated lr 2.5e-5 and 100 warmup steps instead of the released 1.5e-5 / "
                        "0 (overrides --learning_rate and --warmup_steps)")
    p.add_argument("--num_epochs", type=int, default=RELEASED["num_epochs"])
    p.add_argument("--max_steps", type=int, default=0, help="stop after this many optimizer steps (0: all epochs)")
    p.add_argument("--max_grad_norm", type=float, default=RELEASED["max_grad_norm"])
    p.add_argument("--weight_decay", type=float, default=RELEASED["weight_decay"])
    p.add_argument("--weight_decay_rule", choices=("spec", "authors"), default="spec",
                   help="spec: no decay on biases and LayerNorm weights; authors: the released name patterns "
                        "(on BlenderBot-small only biases are exempt)")
    p.add_argument("--optimizer", choices=("hf4_adamw", "torch_adamw"), default="hf4_adamw")
    p.add_argument("--loss_averaging", choices=("micro_batch", "optimizer_step"), default="micro_batch")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default=None,
                   help="autocast dtype; default fp32 (fp16 with --fp16 true); fp16 needs CUDA")
    p.add_argument("--fp16", type=boolean_string, default=False, help="the authors' flag: same as --precision fp16")
    p.add_argument("--fusion_mask_padding", type=boolean_string, default=False,
                   help="PAL: mask padding in the fusion attentions (not the authors' behaviour)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue the run in RUN_DIR")
    p.add_argument("--save_state_steps", type=int, default=1000,
                   help="also write the resumable state every this many optimizer steps (0: only after each epoch)")
    p.add_argument("--pbar", type=boolean_string, default=True, help="progress bar")
    accepted = p.add_argument_group("accepted for the authors' scripts")
    accepted.add_argument("--loss_scale", type=float, default=0.0,
                          help="apex's static loss scale: ignored (fp16 uses a dynamic GradScaler)")
    accepted.add_argument("--encode_context", type=boolean_string, default=True, help="only True is supported")
    accepted.add_argument("--local_rank", "--local-rank", type=int, default=-1,
                          help="ignored: torchrun's LOCAL_RANK environment variable is used")
    for name in ("--max_knowledge_len", "--label_num"):
        accepted.add_argument(name, type=int, default=None, help=argparse.SUPPRESS)
    accepted.add_argument("--only_encode", action="store_true", help=argparse.SUPPRESS)
    return p


def resolve_args(args):
    """Apply presets and check combinations; returns args with every default filled in."""
    check_encode_context(args.encode_context)
    for key in ("learning_rate", "warmup_steps"):
        if args.paper_hparams:
            # A preset: it wins over the released values that RUN/train_*.sh pass explicitly.
            if getattr(args, key) not in (None, PAPER_HPARAMS[key]):
                print(f"note: --paper_hparams True sets --{key} {PAPER_HPARAMS[key]} (instead of "
                      f"{getattr(args, key)})", file=sys.stderr)
            setattr(args, key, PAPER_HPARAMS[key])
        elif getattr(args, key) is None:
            setattr(args, key, RELEASED[key])
    if args.fp16 and args.precision not in (None, "fp16"):
        raise UserError(f"--fp16 true contradicts --precision {args.precision}")
    args.precision = args.precision or ("fp16" if args.fp16 else "fp32")
    if args.train_batch_size % args.gradient_accumulation_steps:
        raise UserError(f"--train_batch_size {args.train_batch_size} is not a multiple of "
                        f"--gradient_accumulation_steps {args.gradient_accumulation_steps}")
    for key in ("train_batch_size", "gradient_accumulation_steps", "eval_batch_size", "num_epochs"):
        if getattr(args, key) < 1:
            raise UserError(f"--{key} must be at least 1")
    if args.loss_scale:
        print(f"note: --loss_scale {args.loss_scale} ignored (fp16 uses a dynamic GradScaler)", file=sys.stderr)
    return args


# ------------------------------------------------------------------------------------------- processes and devices

@dataclass
class Runtime:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    distributed: bool = False

    @property
    def is_main(self):
        return self.rank == 0

    def barrier(self):
        if self.distributed:
            dist.barrier()

    def sum(self, values):
        """Sum a list of floats over processes (float64)."""
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.distributed:
            dist.all_reduce(t)
        return t.tolist()

    def from_main(self, obj):
        """rank 0's value of a picklable object on every process."""
        if not self.distributed:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def start_runtime(device_arg):
    """One process, or torchrun's: nccl on CUDA, gloo on CPU."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if device_arg == "auto":
        use_cuda = torch.cuda.is_available()
    elif device_arg in ("cpu", "cuda"):
        use_cuda = device_arg == "cuda"
        if use_cuda and not torch.cuda.is_available():
            raise UserError("--device cuda: CUDA is not available on this machine")
    else:
        raise UserError(f"--device must be auto, cpu or cuda, got {device_arg!r}")
    if world_size == 1:
        return Runtime(device=torch.device("cuda" if use_cuda else "cpu"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    return Runtime(rank=dist.get_rank(), world_size=dist.get_world_size(), device=device, distributed=True)


def gpu_count_for_name(runtime):
    """The authors' '<n>gpu' in the run folder name: processes when distributed, else visible GPUs (0 on CPU)."""
    if runtime.distributed:
        return runtime.world_size
    return torch.cuda.device_count() if runtime.device.type == "cuda" else 0


def set_seed(seed):
    """python, numpy and torch generators (what the authors' transformers.set_seed call does)."""
    from transformers import set_seed as hf_set_seed
    hf_set_seed(seed)


# ------------------------------------------------------------------------------------------- one optimizer step

def to_device(batch, device):
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}


def autocast_context(precision, device):
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def train_step(model, micro_batches, optimizer, scheduler, scaler, args, runtime):
    """Forward/backward over this process' micro-batches, clip, step. Returns (loss, ppl, lr) of the whole step."""
    n_micro = len(micro_batches)
    own_tokens = float(sum(int(b["labels"].ne(-100).sum()) for b in micro_batches))
    step_tokens = runtime.sum([own_tokens])[0]
    loss_sum = example_mean_sum = n_examples = micro_mean_sum = 0.0
    for i, batch in enumerate(micro_batches):
        batch = to_device(batch, runtime.device)
        sync_now = i == n_micro - 1 or not runtime.distributed
        with (nullcontext() if sync_now else model.no_sync()):
            with autocast_context(args.precision, runtime.device):
                out = model(**batch)
            if args.loss_averaging == "optimizer_step":
                # DDP averages over processes, hence * world_size: the sum over all tokens / all tokens of the step
                loss = out.loss_sum_per_example.sum() * runtime.world_size / step_tokens
            else:
                loss = out.loss / n_micro
            (scaler.scale(loss) if scaler else loss).backward()
        per_example = (out.loss_sum_per_example / out.label_count.clamp(min=1)).detach()
        loss_sum += float(out.loss_sum_per_example.detach().sum())
        micro_mean_sum += float(out.loss.detach())
        example_mean_sum += float(per_example.sum())
        n_examples += per_example.numel()
    if scaler:
        scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
    lr = optimizer.param_groups[0]["lr"]
    if scaler:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    loss_sum, micro_mean_sum, example_mean_sum, n_examples = runtime.sum(
        [loss_sum, micro_mean_sum, example_mean_sum, n_examples])
    if args.loss_averaging == "optimizer_step":
        step_loss = loss_sum / step_tokens
    else:
        step_loss = micro_mean_sum / (n_micro * runtime.world_size)
    # ppl as the authors' model reports it: exp of the mean over examples of each example's mean token loss
    return step_loss, math.exp(min(example_mean_sum / n_examples, 50.0)), lr


# ------------------------------------------------------------------------------------------- validation

@torch.no_grad()
def evaluate(model, eval_features, args, runtime, pad_id, persona_in_batches):
    """(loss, ppl, tokens, examples) over the validation file: total token loss / total label tokens."""
    model = unwrap_model(model)
    was_training = model.training
    model.eval()
    total_loss, total_tokens, n_examples = 0.0, 0.0, 0
    for batch in validation_batches(eval_features, args.eval_batch_size, pad_id, persona_in_batches):
        with autocast_context(args.precision, runtime.device):
            out = model(**to_device(batch, runtime.device))
        total_loss += float(out.loss_sum_per_example.double().sum())
        total_tokens += float(out.label_count.double().sum())
        n_examples += out.label_count.numel()
    model.train(was_training)
    loss = total_loss / max(total_tokens, 1.0)
    return loss, math.exp(min(loss, 50.0)), int(total_tokens), n_examples


# ------------------------------------------------------------------------------------------- logs and state

class CsvLog:
    """Append rows to a CSV with a header (rank 0 only); on resume, rows after the resumed step are dropped."""

    def __init__(self, path, columns, keep_until_step=None):
        self.path, self.columns = path, columns
        if keep_until_step is not None and os.path.exists(path):
            with open(path, newline="", encoding="utf-8") as f:
                rows = [r for r in csv.DictReader(f) if int(r["global_step"]) <= keep_until_step]
            with atomic_write(path) as f:
                writer = csv.DictWriter(f, columns, lineterminator="\n")
                writer.writeheader()
                writer.writerows(rows)
        new = not os.path.exists(path) or os.path.getsize(path) == 0
        self.file = open(path, "a", newline="", encoding="utf-8", buffering=1)
        self.writer = csv.DictWriter(self.file, columns, lineterminator="\n")
        if new:
            self.writer.writeheader()

    def write(self, **row):
        self.writer.writerow(row)

    def close(self):
        self.file.close()


def rng_states(runtime):
    states = {"torch": torch.get_rng_state()}
    if runtime.device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(runtime.device)
    return states


def save_state(run_dir, position, model, optimizer, scheduler, scaler, runtime, counters, args_dict):
    """Everything --resume needs. Each process writes its RNG states; rank 0 the rest."""
    rank_path = os.path.join(run_dir, f"rank_state_{runtime.rank}.pt")
    with atomic_write(rank_path, "wb") as f:
        torch.save({"global_step": position["global_step"], **rng_states(runtime)}, f)
    if runtime.is_main:
        state = {"model": unwrap_model(model).state_dict(),  # tied embeddings stay one storage (save_checkpoint)
                 "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "scaler": scaler.state_dict() if scaler else None, "position": position, "counters": counters,
                 "args": args_dict}
        with atomic_write(os.path.join(run_dir, STATE_FILE), "wb") as f:
            torch.save(state, f)
    runtime.barrier()


def load_state(run_dir, runtime, args_dict):
    path = os.path.join(run_dir, STATE_FILE)
    if not os.path.isfile(path):
        finished = any(n.startswith("epoch-") for n in os.listdir(run_dir)) if os.path.isdir(run_dir) else False
        raise UserError(f"--resume {run_dir}: no {STATE_FILE}" +
                        (" (that run finished all its epochs)" if finished else " (not a train.py run folder?)"))
    state = torch.load(path, map_location="cpu", weights_only=False)
    differing = [f"{k}: run {state['args'].get(k)!r}, now {args_dict.get(k)!r}" for k in RESUME_INVARIANTS
                 if state["args"].get(k) != args_dict.get(k)]
    if differing:
        raise UserError(f"--resume {run_dir}: arguments differ from the run's ({'; '.join(differing)})")
    rank_path = os.path.join(run_dir, f"rank_state_{runtime.rank}.pt")
    rank_state = torch.load(rank_path, map_location="cpu", weights_only=False) if os.path.isfile(rank_path) else None
    if rank_state is None or rank_state["global_step"] != state["position"]["global_step"]:
        raise UserError(f"--resume {run_dir}: {os.path.basename(rank_path)} is missing or from another step; "
                        f"the state was not written completely")
    return state, rank_state


def restore_rng(rank_state, runtime):
    torch.set_rng_state(rank_state["torch"])
    if "cuda" in rank_state and runtime.device.type == "cuda":
        torch.cuda.set_rng_state(rank_state["cuda"], runtime.device)


def new_run_dir(args, prepared_dir, runtime, micro_batch):
    if args.output_dir:
        run_dir = args.output_dir
    else:
        stamp = datetime.datetime.now().strftime("%Y-%m-%d%H%M%S")  # the authors' format
        run_dir = os.path.join(prepared_dir, f"{stamp}.{args.learning_rate}.{micro_batch}."
                                             f"{gpu_count_for_name(runtime)}gpu")
    run_dir = runtime.from_main(run_dir)
    if runtime.from_main(os.path.isdir(run_dir) and bool(os.listdir(run_dir))):  # rank 0's view, on every process
        raise UserError(f"{run_dir} already holds files; pass --resume {run_dir} to continue that run, or "
                        f"another --output_dir")
    if runtime.is_main:
        os.makedirs(run_dir, exist_ok=True)
    runtime.barrier()
    return run_dir


def write_run_files(run_dir, args_dict, model):
    write_json(os.path.join(run_dir, "args.json"), args_dict)
    with open(CONFIG_DIR / f"{args_dict['config_name']}.json", encoding="utf-8") as f:
        write_json(os.path.join(run_dir, "custom_config.json"), json.load(f))
    unwrap_model(model).config.to_json_file(os.path.join(run_dir, "config.json"))


# ------------------------------------------------------------------------------------------- main

def main(argv=None):
    args = resolve_args(build_parser().parse_args(argv))
    runtime = start_runtime(args.device)
    try:
        return train(args, runtime)
    finally:
        if runtime.distributed and dist.is_initialized():
            dist.destroy_process_group()


def train(args, runtime):
    if args.precision == "fp16" and runtime.device.type != "cuda":
        raise UserError("--precision fp16 needs CUDA; use bf16 or fp32 on CPU")
    set_seed(args.seed)
    config = load_config(args.config_name)
    settings = settings_for(config, args.inputter_name, args.max_input_length, args.max_decoder_input_length,
                            args.use_all_persona)
    pretrained = resolve_pretrained_path(config, args.pretrained_model_path)
    toker, model = build_model(args.config_name, pretrained, checkpoint=args.load_checkpoint,
                               fusion_mask_padding=args.fusion_mask_padding)
    prepared_dir = args.prepared_dir or default_prepared_dir(args.inputter_name, args.config_name)
    features, _ = load_prepared(prepared_dir, {
        "config_name": args.config_name, "inputter_name": args.inputter_name,
        "max_input_length": args.max_input_length, "max_decoder_input_length": args.max_decoder_input_length,
        "use_all_persona": args.use_all_persona, "vocab_size": len(toker)})
    eval_features = Featurizer(toker, settings).file_features(args.eval_input_file, "validation")
    pad_id, with_persona = toker.pad_token_id, settings.persona_in_batches

    # Data order: one sampler over global micro-batches (all processes), each process takes its slice.
    micro = args.train_batch_size // args.gradient_accumulation_steps
    global_micro = micro * runtime.world_size
    sampler = BucketBatchSampler([f.bucket_length for f in features], global_micro, args.seed, BUCKET_FACTOR)
    steps_per_epoch = sampler.batches_per_epoch() // args.gradient_accumulation_steps
    if steps_per_epoch == 0:
        raise UserError(f"{len(features)} training examples do not fill one optimizer step of "
                        f"{args.train_batch_size * runtime.world_size} examples; lower --train_batch_size")
    # The authors' schedule length: num_epochs * ceil(examples / batch) (incomplete batches counted).
    num_training_steps = args.num_epochs * math.ceil(len(features) / (global_micro * args.gradient_accumulation_steps))

    model.to(runtime.device)
    model.train()
    optimizer = build_optimizer(model, args)
    from transformers import get_linear_schedule_with_warmup
    scheduler = get_linear_schedule_with_warmup(optimizer, args.warmup_steps, num_training_steps)
    scaler = torch.amp.GradScaler("cuda") if args.precision == "fp16" else None
    if runtime.distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[runtime.device.index] if runtime.device.type == "cuda" else None)

    args_dict = {k: v for k, v in vars(args).items() if k not in ("resume", "local_rank")}
    args_dict.update(world_size=runtime.world_size, n_train_examples=len(features), micro_batch_size=micro,
                     steps_per_epoch=steps_per_epoch, num_training_steps=num_training_steps,
                     pretrained_model_path=pretrained, prepared_dir=os.path.abspath(prepared_dir))

    position = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "micro_steps": 0,
                "sampler_rng": sampler.rng.getstate()}
    counters = {"loss_sum": 0.0, "ppl_sum": 0.0, "steps": 0, "n_token_real": 0, "n_token_total": 0,
                "epoch_time": 0.0}
    if args.resume:
        run_dir = args.resume
        state, rank_state = load_state(run_dir, runtime, args_dict)
        unwrap_model(model).load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler:
            scaler.load_state_dict(state["scaler"])
        position, counters = state["position"], state["counters"]
        sampler.rng.setstate(position["sampler_rng"])
        restore_rng(rank_state, runtime)
        del state
    else:
        run_dir = new_run_dir(args, prepared_dir, runtime, micro)
        if runtime.is_main:
            write_run_files(run_dir, args_dict, model)

    keep = position["global_step"] if args.resume else None
    train_log = CsvLog(os.path.join(run_dir, "train_log.csv"), TRAIN_LOG_COLUMNS, keep) if runtime.is_main else None
    eval_log = CsvLog(os.path.join(run_dir, "eval_log.csv"), EVAL_LOG_COLUMNS, keep) if runtime.is_main else None
    last_step = num_steps_to_run(args, steps_per_epoch)
    pbar = None
    if runtime.is_main and args.pbar:
        from tqdm import tqdm
        pbar = tqdm(total=last_step, initial=position["global_step"], desc="training", unit="step")
    if runtime.is_main:
        print(f"{len(features)} examples, {steps_per_epoch} steps per epoch, schedule over {num_training_steps} "
              f"steps, {runtime.world_size} process(es) on {runtime.device}; run folder {run_dir}", file=sys.stderr)

    def save(position):
        save_state(run_dir, position, model, optimizer, scheduler, scaler, runtime, counters, args_dict)

    finished = False
    while position["epoch"] < args.num_epochs and position["global_step"] < last_step:
        epoch = position["epoch"]
        sampler.rng.setstate(position["sampler_rng"])
        micro_batches = sampler.epoch_batches()
        next_epoch_rng = sampler.rng.getstate()
        if position["step_in_epoch"] == 0:
            counters.update(loss_sum=0.0, ppl_sum=0.0, steps=0, n_token_real=0, n_token_total=0, epoch_time=0.0)
        epoch_start = time.time() - counters["epoch_time"]
        gas = args.gradient_accumulation_steps
        while position["step_in_epoch"] < steps_per_epoch and position["global_step"] < last_step:
            s = position["step_in_epoch"]
            own = [collate([features[j] for j in mb[runtime.rank * micro:(runtime.rank + 1) * micro]],
                           pad_id, with_persona) for mb in micro_batches[s * gas:(s + 1) * gas]]
            loss, ppl, lr = train_step(model, own, optimizer, scheduler, scaler, args, runtime)
            real, total = runtime.sum([sum(float(b["input_ids"].ne(pad_id).sum()) for b in own),
                                       sum(float(b["input_ids"].numel()) for b in own)])
            position.update(step_in_epoch=s + 1, global_step=position["global_step"] + 1,
                            micro_steps=position["micro_steps"] + len(own))
            counters.update(loss_sum=counters["loss_sum"] + loss, ppl_sum=counters["ppl_sum"] + ppl,
                            steps=counters["steps"] + 1, n_token_real=counters["n_token_real"] + int(real),
                            n_token_total=counters["n_token_total"] + int(total),
                            epoch_time=time.time() - epoch_start)
            if train_log:
                train_log.write(epoch=epoch, global_step=position["global_step"], step=position["micro_steps"],
                                loss=loss, ppl=ppl, mean_loss=counters["loss_sum"] / counters["steps"],
                                mean_ppl=counters["ppl_sum"] / counters["steps"], lr=lr,
                                n_token_real=counters["n_token_real"], n_token_total=counters["n_token_total"],
                                epoch_time=round(counters["epoch_time"], 3))
            if pbar:
                pbar.update(1)
                pbar.set_postfix(epoch=epoch, loss=f"{loss:.3f}", ppl=f"{ppl:.2f}")
            at_save_point = args.save_state_steps and position["global_step"] % args.save_state_steps == 0
            # (the end of an epoch and the last step save anyway, below)
            if at_save_point and position["step_in_epoch"] < steps_per_epoch and position["global_step"] < last_step:
                save(dict(position))
        epoch_done = position["step_in_epoch"] == steps_per_epoch
        end_of_epoch(epoch, run_dir, model, eval_features, args, runtime, pad_id, with_persona, eval_log,
                     position["global_step"], scheduler)
        if epoch_done:
            position.update(epoch=epoch + 1, step_in_epoch=0, sampler_rng=next_epoch_rng)
        finished = position["epoch"] >= args.num_epochs
        if not finished:
            save(dict(position))
    if pbar:
        pbar.close()
    for log in (train_log, eval_log):
        if log:
            log.close()
    if finished and runtime.is_main:  # nothing left to resume: drop the large state files
        for name in os.listdir(run_dir):
            if name == STATE_FILE or name.startswith("rank_state_"):
                os.remove(os.path.join(run_dir, name))
    if runtime.is_main:
        print(f"done: {position['global_step']} steps; checkpoints and logs in {run_dir}", file=sys.stderr)
    return None


def num_steps_to_run(args, steps_per_epoch):
    total = args.num_epochs * steps_per_epoch
    return min(total, args.max_steps) if args.max_steps > 0 else total


def end_of_epoch(epoch, run_dir, model, eval_features, args, runtime, pad_id, with_persona, eval_log, global_step,
                 scheduler):
    """epoch-N.bin and a validation (rank 0; the others wait)."""
    if runtime.is_main:
        checkpoint = os.path.join(run_dir, f"epoch-{epoch}.bin")
        save_checkpoint(model, checkpoint)
        loss, ppl, tokens, examples = evaluate(model, eval_features, args, runtime, pad_id, with_persona)
        eval_log.write(epoch=epoch, global_step=global_step, eval_loss=loss, eval_ppl=ppl, eval_tokens=tokens,
                       eval_examples=examples, lr=scheduler.get_last_lr()[0], checkpoint=os.path.basename(checkpoint))
        print(f"epoch {epoch}: step {global_step}, validation loss {loss:.4f}, ppl {ppl:.3f} -> {checkpoint}",
              file=sys.stderr)
    runtime.barrier()


if __name__ == "__main__":
    run_main(main)
