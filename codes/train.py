"""Fine-tune PAL / Blender-Joint / vanilla BlenderBot-small on prepared features (the authors' codes/train.py).

Usage (from the repository root; RUN/train_strat.sh has the released settings):
  RUN/python codes/prepare.py --config_name strat --inputter_name strat --train_input_file DATA/pesconv/train.txt
  RUN/python codes/train.py --config_name strat --inputter_name strat --eval_input_file DATA/pesconv/valid.txt
  torchrun --nproc_per_node 2 codes/train.py ...             # DistributedDataParallel (nccl on GPUs, gloo on CPU)
  RUN/python codes/train.py --resume DATA/strat.strat/RUN        # continue a stopped run exactly where it stopped

Reads DATA/{inputter}.{config}/features/ (codes/prepare.py) and writes a run folder
DATA/{inputter}.{config}/<timestamp>.<lr>.<batch>.<n>gpu/ (the authors' name) with
  epoch-N.bin        model.state_dict() after epoch N (N from 0), loadable by the authors' code and ours
  train_log.csv      one row per optimizer step: epoch, global_step, step, loss, ppl, mean_loss, mean_ppl, lr, ...
  eval_log.csv       one row per validation (after every epoch): epoch, global_step, eval_loss, eval_ppl, ...
  args.json          the arguments after presets, plus world size and step counts; custom_config.json, config.json
  training_state/    weights, optimizer, scheduler, RNG states of each process and data position for --resume,
                     committed as one unit (pal.engine, pal.atomic); removed when the run completes all epochs

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
  --resume RUN_DIR      alone continues the run with the arguments recorded in RUN_DIR/args.json (pal.run_folder).
                        An explicit argument that would change the run is refused; those that change no number may
                        be given: --save_state_steps, --pbar, --device, --pretrained_model_path (the same
                        tokenizer folder moved), and --max_steps, which is never taken from the run (a resumed run
                        goes to its end unless given). Ctrl-C says the step the run resumes from (its last saved
                        state) and the command.
"""
import importlib.util  # a plain `python` outside the project's environment: one line saying how to run this script
if importlib.util.find_spec("torch") is None or importlib.util.find_spec("pal") is None:
    import os, sys
    launcher = os.path.relpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "RUN", "python"))
    launcher = launcher if os.sep in launcher else os.path.join(os.curdir, launcher)  # a path, not a command name
    sys.exit(f"error: this is not the project's environment (no torch or pal here): run it as  {launcher} "
             f"{' '.join(sys.argv)}")
import argparse
import datetime
import json
import math
import os
import sys

import torch

from pal.atomic import discard, side_paths
from pal.checks import (argument_type, check_encode_context, existing_dir, existing_file, int_range,
                        non_negative_float, non_negative_int, output_dir, positive_int, require_dir)
from pal.cli import ArgumentParser, UserError, boolean_string, run_main, write_json
from pal.completeness import note_partial
from pal.config import CONFIG_DIR, load_config, resolve_pretrained_path
from pal.engine import Engine, note, resume_command, start_runtime
from pal.inputter import BucketBatchSampler, Featurizer, settings_for
from pal.checkpoint import unwrap_model
from pal.model import build_model
from pal.optim import build_optimizer
from pal.prepared import default_prepared_dir, load_prepared
from pal.run_folder import parse_resume
from pal.training import BUCKET_FACTOR, EVAL_LOG_COLUMNS, TRAIN_LOG_COLUMNS, PalTask

# ------------------------------------------------------------------------------------------- defaults in one place
# The released chengjl19/PAL codes/RUN/train_strat.sh (RUN/train_*.sh pass the same values visibly).
RELEASED = dict(seed=13, max_input_length=512, max_decoder_input_length=50, train_batch_size=4,
                gradient_accumulation_steps=1, eval_batch_size=16, learning_rate=1.5e-5, num_epochs=10,
                warmup_steps=0, max_grad_norm=1.0, weight_decay=0.01, use_all_persona=False)
# The paper's stated values (Cheng et al. 2023, implementation details), applied by --paper_hparams True.
PAPER_HPARAMS = dict(learning_rate=2.5e-5, warmup_steps=100)
STATE_DIR = "training_state"
# Arguments that must be the same when a run is resumed (the others, e.g. --max_steps, may change).
RESUME_INVARIANTS = ("config_name", "inputter_name", "seed", "max_input_length", "max_decoder_input_length",
                     "train_batch_size", "gradient_accumulation_steps", "learning_rate", "num_epochs", "warmup_steps",
                     "max_grad_norm", "weight_decay", "weight_decay_rule", "optimizer", "loss_averaging",
                     "use_all_persona", "precision", "fusion_mask_padding", "world_size", "n_train_examples")
# What an explicit argument may change on --resume RUN_DIR (the rest is taken from RUN_DIR/args.json and must match):
# none of them changes a weight or a logged number (pretrained_model_path: the tokenizer folder moved; the weights
# come from the state, and a vocabulary of another size does not load).
CHANGEABLE_ON_RESUME = ("max_steps", "save_state_steps", "pbar", "device", "pretrained_model_path", "loss_scale",
                        "local_rank")


def build_parser():
    p = ArgumentParser(description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config_name", required=True, help="strat (PAL), strat_no_persona (Blender-Joint), vanilla")
    p.add_argument("--inputter_name", required=True, help="strat or vanilla")
    p.add_argument("--eval_input_file", required=True, type=existing_file,
                   help="valid.txt written by codes/_reformat/process.py")
    p.add_argument("--seed", type=int_range(0, 2**32 - 1), default=RELEASED["seed"])
    p.add_argument("--load_checkpoint", "-c", default=None, type=existing_file,
                   help="start from this epoch-N.bin instead of pretrained")
    p.add_argument("--pretrained_model_path", default=None, help="overrides the config's path (directory/hub name)")
    p.add_argument("--prepared_dir", default=None, type=argument_type(require_dir, "make it with codes/prepare.py"),
                   help="prepare.py output; default DATA/{inputter}.{config}")
    p.add_argument("--output_dir", default=None, type=output_dir,
                   help="the run folder; default <prepared_dir>/<timestamp>.<lr>.<batch>.<n>gpu")
    p.add_argument("--max_input_length", type=positive_int, default=RELEASED["max_input_length"])
    p.add_argument("--max_decoder_input_length", type=positive_int, default=RELEASED["max_decoder_input_length"])
    p.add_argument("--use_all_persona", type=boolean_string, default=RELEASED["use_all_persona"])
    p.add_argument("--train_batch_size", type=positive_int, default=RELEASED["train_batch_size"],
                   help="examples per optimizer step and process")
    p.add_argument("--gradient_accumulation_steps", type=positive_int, default=RELEASED["gradient_accumulation_steps"])
    p.add_argument("--eval_batch_size", type=positive_int, default=RELEASED["eval_batch_size"])
    p.add_argument("--learning_rate", type=non_negative_float, default=None,
                   help=f"default {RELEASED['learning_rate']} (released); {PAPER_HPARAMS['learning_rate']} "
                        f"with --paper_hparams True")
    p.add_argument("--warmup_steps", type=non_negative_int, default=None,
                   help=f"default {RELEASED['warmup_steps']} (released); {PAPER_HPARAMS['warmup_steps']} with "
                        f"--paper_hparams True")
    p.add_argument("--paper_hparams", type=boolean_string, default=False,
                   help="preset: the paper's stated lr 2.5e-5 and 100 warmup steps instead of the released 1.5e-5 / "
                        "0 (overrides --learning_rate and --warmup_steps)")
    p.add_argument("--num_epochs", type=positive_int, default=RELEASED["num_epochs"])
    p.add_argument("--max_steps", type=non_negative_int, default=0,
                   help="stop after this many optimizer steps (0: all epochs)")
    p.add_argument("--max_grad_norm", type=non_negative_float, default=RELEASED["max_grad_norm"])
    p.add_argument("--weight_decay", type=non_negative_float, default=RELEASED["weight_decay"])
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
    p.add_argument("--resume", default=None, type=existing_dir, metavar="RUN_DIR", help="continue the run in RUN_DIR")
    p.add_argument("--save_state_steps", type=non_negative_int, default=1000,
                   help="also write the resumable state every this many optimizer steps (0: only after each epoch)")
    p.add_argument("--pbar", type=boolean_string, default=True, help="progress bar")
    accepted = p.add_argument_group("accepted for the authors' scripts")
    accepted.add_argument("--loss_scale", type=non_negative_float, default=0.0,
                          help="apex's static loss scale: ignored (fp16 uses a dynamic GradScaler)")
    accepted.add_argument("--encode_context", type=boolean_string, default=True, help="only True is supported")
    accepted.add_argument("--local_rank", "--local-rank", type=int_range(-1), default=-1,
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
    if args.loss_scale:
        print(f"note: --loss_scale {args.loss_scale} ignored (fp16 uses a dynamic GradScaler)", file=sys.stderr)
    return args



# ------------------------------------------------------------------------------------------- runs

def gpu_count_for_name(runtime):
    """The authors' '<n>gpu' in the run folder name: processes when distributed, else visible GPUs (0 on CPU)."""
    if runtime.distributed:
        return runtime.world_size
    return torch.cuda.device_count() if runtime.device.type == "cuda" else 0


def set_seed(seed):
    """python, numpy and torch generators (what the authors' transformers.set_seed call does)."""
    from transformers import set_seed as hf_set_seed
    hf_set_seed(seed)


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

def parse_args(argv=None):
    """The command line; with --resume RUN_DIR, the run's recorded arguments fill what argv does not give."""
    return parse_resume(build_parser(), argv, lambda args: args.resume, CHANGEABLE_ON_RESUME)


def main(argv=None):
    args = resolve_args(parse_args(argv))
    if args.device not in ("auto", "cpu", "cuda"):
        raise UserError(f"--device must be auto, cpu or cuda, got {args.device!r}")
    runtime = start_runtime(args.device)
    try:
        return train(args, runtime)
    finally:
        runtime.close()  # (also when train() stops before its engine exists)


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
    features, prepared_meta = load_prepared(prepared_dir, {
        "config_name": args.config_name, "inputter_name": args.inputter_name,
        "max_input_length": args.max_input_length, "max_decoder_input_length": args.max_decoder_input_length,
        "use_all_persona": args.use_all_persona, "vocab_size": len(toker)})
    if prepared_meta.get("partial"):
        note(runtime, f"note: the features in {prepared_dir} are partial: {prepared_meta['partial']}")
    if runtime.is_main:
        note_partial(args.eval_input_file)
    eval_features = Featurizer(toker, settings).file_features(args.eval_input_file, "validation")

    micro = args.train_batch_size // args.gradient_accumulation_steps
    global_micro = micro * runtime.world_size
    batches = BucketBatchSampler([f.bucket_length for f in features], global_micro, args.seed, BUCKET_FACTOR)
    steps_per_epoch = batches.batches_per_epoch() // args.gradient_accumulation_steps
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

    args_dict = {k: v for k, v in vars(args).items() if k not in ("resume", "local_rank")}
    args_dict.update(world_size=runtime.world_size, n_train_examples=len(features), micro_batch_size=micro,
                     steps_per_epoch=steps_per_epoch, num_training_steps=num_training_steps,
                     pretrained_model_path=pretrained, prepared_dir=os.path.abspath(prepared_dir),
                     # absolute, so that the run folder works from any directory (resume, infer, interact)
                     eval_input_file=os.path.abspath(args.eval_input_file),
                     load_checkpoint=args.load_checkpoint and os.path.abspath(args.load_checkpoint))
    run_dir = args.resume or new_run_dir(args, prepared_dir, runtime, micro)
    if args.resume:
        check_resumable(run_dir)
    engine = Engine(model, optimizer, scheduler, runtime, os.path.join(run_dir, STATE_DIR),
                    {k: args_dict[k] for k in RESUME_INVARIANTS}, precision=args.precision,
                    max_grad_norm=args.max_grad_norm, progress=args.pbar,
                    resume_command=resume_command(__file__, run_dir, runtime))
    task = PalTask(args, runtime, features, eval_features, toker.pad_token_id, settings.persona_in_batches,
                   run_dir, steps_per_epoch)
    if args.resume:
        engine.resume(task)
        check_steps_left(args, engine)
    elif runtime.is_main:
        write_run_files(run_dir, args_dict, model)
    task.train_log = engine.open_log(os.path.join(run_dir, "train_log.csv"), TRAIN_LOG_COLUMNS, "global_step")
    task.eval_log = engine.open_log(os.path.join(run_dir, "eval_log.csv"), EVAL_LOG_COLUMNS, "global_step")
    note(runtime, f"{len(features)} examples, {steps_per_epoch} steps per epoch, schedule over {num_training_steps} "
                  f"steps, {runtime.world_size} process(es) on {runtime.device}; run folder {run_dir}")
    try:
        engine.fit(task, args.num_epochs, num_steps_to_run(args, steps_per_epoch))
    finally:
        engine.close()
    if engine.position.epoch >= args.num_epochs and runtime.is_main:  # nothing left to resume: drop the state
        discard(engine.state_dir)
    if engine.position.epoch < args.num_epochs:
        note(runtime, f"stopped at step {engine.position.global_step} (--max_steps {args.max_steps}); continue with "
                      f"{engine.resume_command} (to its end; --max_steps N: to step N)")
    note(runtime, f"done: {engine.position.global_step} steps; checkpoints and logs in {run_dir}")
    return None


def check_steps_left(args, engine):
    """A run resumed with the --max_steps it already reached would do nothing: say how to continue instead."""
    step = engine.position.global_step
    if 0 < args.max_steps <= step:
        raise UserError(f"--resume {engine.state_dir}: the run stopped at step {step}, its --max_steps "
                        f"{args.max_steps}; pass --max_steps N (more steps, or 0 for all epochs) to continue it")


def check_resumable(run_dir):
    """One-line errors for run folders without a state to resume (a missing state is the engine's error)."""
    if os.path.isfile(os.path.join(run_dir, "training_state.pt")):
        raise UserError(f"--resume {run_dir}: training_state.pt was written by an earlier train.py (before the state "
                        f"became the folder {STATE_DIR}/); finish it with that version or start a new run")
    finished = os.path.isfile(os.path.join(run_dir, "args.json")) and not any(
        os.path.isdir(p) for p in (os.path.join(run_dir, STATE_DIR), *side_paths(os.path.join(run_dir, STATE_DIR))))
    if finished:
        raise UserError(f"--resume {run_dir}: no {STATE_DIR}/ (the run finished all its epochs, or stopped before "
                        f"its first state save: start it again)")


def num_steps_to_run(args, steps_per_epoch):
    total = args.num_epochs * steps_per_epoch
    return min(total, args.max_steps) if args.max_steps > 0 else total


if __name__ == "__main__":
    run_main(main)
