"""Fine-tune PAL / Blender-Joint / vanilla BlenderBot-small on prepared features (the authors' codes/train.py).

Usage (from the repository root; RUN/train_strat.sh has the released settings):
  RUN/python codes/prepare.py --config_name strat --inputter_name strat --train_input_file DATA/pesconv/train.txt
  RUN/python codes/train.py --config_name strat --inputter_name strat --eval_input_file DATA/pesconv/valid.txt
  torchrun --nproc_per_node 2 codes/train.py ...             # DistributedDataParallel (nccl on GPUs, gloo on CPU)
  RUN/python codes/train.py --resume DATA/strat.strat/RUN        # continue a stopped run exactly where it stopped

Reads DATA/{inputter}.{config}/features/ (codes/prepare.py) and writes the run folder
DATA/{inputter}.{config}/<timestamp>.<lr>.<batch>.<n>gpu/: epoch-N.bin (a plain state_dict after epoch N, from 0),
train_log.csv (one row per optimizer step), eval_log.csv (validation loss/PPL after every epoch), args.json,
config.json, and training_state/ for --resume (committed as one unit; removed when all epochs are done).
The defaults are the released ones (RELEASED below); what they are, why, and every option that departs from the
released code (--paper_hparams, --weight_decay_rule, --optimizer, --loss_averaging, processes, accumulation,
--max_steps, --resume): docs/reproduction.md#training.
"""
import palkit.entry  # noqa: F401 -- first: outside the project's environment, one line saying how to run this
import datetime
import json
import math
import os
import sys

import torch

from transformers import get_linear_schedule_with_warmup

from palkit.atomic import discard, side_paths, write_json
from palkit.argtypes import (argument_type, boolean_string, existing_dir, existing_file, int_range,
                             non_negative_float, non_negative_int, output_dir, positive_int)
from palkit.paths import require_dir
from palkit.cli import ArgumentParser, DefaultsHelpFormatter, UserError, run_main
from pal.completeness import note_partial
from pal.config import PAPER_HPARAMS, RELEASED, load_config, resolve_pretrained_path
from pal.options import (add_authors_arguments, add_checkpoint_argument, add_fp16_argument, add_fusion_arguments,
                         add_length_arguments, add_model_arguments, add_persona_argument, add_pretrained_argument,
                         check_encode_context)
from palkit.options import add_device_argument, add_pbar_argument, add_seed_argument
from palkit.engine import Engine, ModelDiffers, ResumeError, note, seed_everything, start_runtime
from pal.inputter import BucketBatchSampler, Featurizer, settings_for
from pal.checkpoint import unwrap_model
from pal.model import build_model
from pal.optim import OptimizerOptions, build_optimizer
from pal.prepared import default_prepared_dir, load_prepared
from palkit.run_folder import parse_resume, resume_command
from pal.training import BUCKET_FACTOR, EVAL_LOG_COLUMNS, TRAIN_LOG_COLUMNS, PalTask, TrainingData, TrainingOptions
from pal.variants import variant

# ------------------------------------------------------------------------------------------- defaults in one place
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
                       formatter_class=DefaultsHelpFormatter)
    add_model_arguments(p)
    p.add_argument("--eval_input_file", required=True, type=existing_file,
                   help="valid.txt written by codes/_reformat/process.py")
    add_seed_argument(p, RELEASED["seed"])
    add_checkpoint_argument(p, from_run_folder=False)
    add_pretrained_argument(p)
    p.add_argument("--prepared_dir", default=None, type=argument_type(require_dir, "make it with codes/prepare.py"),
                   help="prepare.py output; default DATA/{inputter}.{config}")
    p.add_argument("--output_dir", default=None, type=output_dir,
                   help="the run folder; default <prepared_dir>/<timestamp>.<lr>.<batch>.<n>gpu")
    add_length_arguments(p)
    add_persona_argument(p)
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
    p.add_argument("--optimizer", choices=("hf4_adamw", "torch_adamw"), default="hf4_adamw",
                   help="hf4_adamw: transformers 4.x AdamW (eps 1e-6), the authors'; torch_adamw: torch.optim.AdamW")
    p.add_argument("--loss_averaging", choices=("micro_batch", "optimizer_step"), default="micro_batch",
                   help="micro_batch: the mean of each micro-batch's token mean (the authors'); optimizer_step: the "
                        "token mean over the whole step's batch")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default=None,
                   help="autocast dtype; default fp32 (fp16 with --fp16 true); fp16 needs CUDA")
    add_fp16_argument(p, "the authors' flag: same as --precision fp16")
    add_fusion_arguments(p)
    add_device_argument(p)
    p.add_argument("--resume", default=None, type=existing_dir, metavar="RUN_DIR", help="continue the run in RUN_DIR")
    p.add_argument("--save_state_steps", type=non_negative_int, default=1000,
                   help="also write the resumable state every this many optimizer steps (0: only after each epoch)")
    add_pbar_argument(p)
    accepted = add_authors_arguments(p, "encode_context", "max_knowledge_len", "label_num", "only_encode")
    accepted.add_argument("--loss_scale", type=non_negative_float, default=0.0,
                          help="apex's static loss scale: ignored (fp16 uses a dynamic GradScaler)")
    accepted.add_argument("--local_rank", "--local-rank", type=int_range(-1), default=-1,
                          help="ignored: torchrun's LOCAL_RANK environment variable is used")
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
    with open(variant(args_dict["config_name"]).config_file, encoding="utf-8") as f:
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
    seed_everything(args.seed)
    config = load_config(args.config_name)
    settings = settings_for(config, args.inputter_name, args.max_input_length, args.max_decoder_input_length,
                            args.use_all_persona)
    pretrained = resolve_pretrained_path(config, args.pretrained_model_path)
    toker, model = build_model(args.config_name, pretrained, checkpoint=args.load_checkpoint,
                               fusion_mask_padding=args.fusion_mask_padding,
                               flush_subnormal_fusion=args.flush_subnormal_fusion)
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
    # the one sampler of the run: global micro-batches (all processes; each takes its slice)
    sampler = BucketBatchSampler([f.bucket_length for f in features], global_micro, args.seed, BUCKET_FACTOR)
    steps_per_epoch = sampler.batches_per_epoch() // args.gradient_accumulation_steps
    if steps_per_epoch == 0:
        raise UserError(f"{len(features)} training examples do not fill one optimizer step of "
                        f"{args.train_batch_size * runtime.world_size} examples; lower --train_batch_size")
    # The authors' schedule length: num_epochs * ceil(examples / batch) (incomplete batches counted).
    num_training_steps = args.num_epochs * math.ceil(len(features) / (global_micro * args.gradient_accumulation_steps))

    model.to(runtime.device)
    model.train()
    optimizer = build_optimizer(model, OptimizerOptions(args.learning_rate, args.weight_decay, args.weight_decay_rule,
                                                        args.optimizer))
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
    continue_with = resume_command(os.path.relpath(__file__), run_dir, runtime)
    engine = Engine(model, optimizer, scheduler, runtime, os.path.join(run_dir, STATE_DIR),
                    {k: args_dict[k] for k in RESUME_INVARIANTS}, continue_with, precision=args.precision,
                    max_grad_norm=args.max_grad_norm, progress=args.pbar)
    saved = None
    if args.resume:
        saved = resume_engine(engine)
        check_steps_left(args, engine)
    elif runtime.is_main:
        write_run_files(run_dir, args_dict, model)
    options = TrainingOptions(args.gradient_accumulation_steps, args.loss_averaging, args.eval_batch_size,
                              args.save_state_steps)
    data = TrainingData(sampler, features, eval_features, toker.pad_token_id, settings.persona_in_batches,
                        steps_per_epoch)
    task = PalTask(options, data, runtime, run_dir,
                   engine.open_log(os.path.join(run_dir, "train_log.csv"), TRAIN_LOG_COLUMNS, "global_step"),
                   engine.open_log(os.path.join(run_dir, "eval_log.csv"), EVAL_LOG_COLUMNS, "global_step"), saved)
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


def resume_engine(engine):
    """engine.resume() with its ResumeError phrased for this command line; returns the task's saved state."""
    try:
        return engine.resume()
    except ModelDiffers as e:
        raise UserError(f"--resume {engine.state_dir}: {e}; resume with the run's --config_name and "
                        "--pretrained_model_path (its args.json records both)")
    except ResumeError as e:
        raise UserError(f"--resume {engine.state_dir}: {e}")


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
