"""Fine-tune BART as the persona extractor, and/or generate personas for a CSV
(docs/reproduction.md#persona-extractor).

Train (defaults = the authors' hyperparameters; what the training reproduces: extractor_training.py):
    RUN/python persona_extractor/train_bart.py --train_dir data/both_original --output_dir runs/bart \\
        [--model_name_or_path facebook/bart-large-cnn] [--learning_rate 1e-5] [--train_batch_size 16] ...
Continue an interrupted run:      RUN/python persona_extractor/train_bart.py --resume runs/bart
    (the arguments recorded in runs/bart/args.json are used; an explicit one that would change the run is refused,
    --max_steps, --device, --no_progress may be given; a bare --resume continues --output_dir)
Several processes (DistributedDataParallel; nccl on GPUs, gloo on CPU; each batch is split across them):
    torchrun --nproc_per_node 2 persona_extractor/train_bart.py --train_dir ... --output_dir ...
Generate for a CSV (authors' infer step: 10 beams, max length 128, batches of 8, inputs cut to 512 tokens):
    RUN/python persona_extractor/train_bart.py --do_infer --output_dir runs/bart [--infer_file data/test.csv]
It writes the input CSV plus `infer_res` (raw generation) and `persona_inferred` (the filtered persona string).
"""
import os
import sys

try:
    import palkit.entry  # noqa: F401 -- first: outside the project's environment, one line saying how to run this
except ModuleNotFoundError:  # palkit is out of reach too (it lives in codes/): the line palkit.entry would say
    sys.exit("error: this is not the project's environment (no torch or pal here): run it as  " + os.path.normpath(
        os.path.join(os.path.dirname(sys.argv[0]), '..', 'RUN', 'python')) + ' ' + ' '.join(sys.argv))

from tqdm import tqdm

from palkit.argtypes import (existing_dir, existing_file, float_range, non_negative_float, non_negative_int,
                             output_dir, output_file, positive_int)
from palkit.paths import require_dir, require_file, require_output_file
from palkit.cli import ArgumentParser, UserError, run_main
from palkit.atomic import atomic_write
from palkit.run_folder import explicit_dests, parse_resume
from persona_extractor.extractor import PersonaExtractor
from persona_extractor.extractor_data import read_csv_frame
from persona_extractor.extractor_training import SCHEDULER_INTERVALS, TrainConfig, train
from persona_extractor.modeling import DEFAULT_MODEL, MAX_GEN_LENGTH, MAX_INPUT_LENGTH, NUM_BEAMS, DecodingSettings
from persona_extractor.persona_text import persona_from_generation
from palkit.options import add_device_argument, add_seed_argument


def build_parser():
    p = ArgumentParser(description="Fine-tune BART on PersonaChat context->persona pairs (persona "
                                   "extractor) and/or generate personas for a CSV.")
    p.add_argument("--do_train", action="store_true", help="train (the default when --do_infer is not given)")
    p.add_argument("--do_infer", action="store_true", help="generate personas for --infer_file")
    p.add_argument("--model_name_or_path", default=DEFAULT_MODEL,
                   help="BART checkpoint to start from: local directory or hub name (default: %(default)s)")
    p.add_argument("--train_dir", default="data/both_original",
                   help="folder with train.csv, valid.csv, test.csv from process_bart_df.py "
                        "(default: the authors' data/both_original)")
    p.add_argument("--train_file", default=None, type=existing_file, help="default: <train_dir>/train.csv")
    p.add_argument("--valid_file", default=None, type=existing_file, help="default: <train_dir>/valid.csv")
    p.add_argument("--test_file", default=None, type=existing_file,
                   help="default: <train_dir>/test.csv when it exists (loss of the best checkpoint after training)")
    p.add_argument("--output_dir", default="runs/bart_persona_extractor", type=output_dir)
    p.add_argument("--max_source_length", type=positive_int, default=128)
    p.add_argument("--max_target_length", type=positive_int, default=128)
    p.add_argument("--learning_rate", type=non_negative_float, default=1e-5)
    p.add_argument("--train_batch_size", type=positive_int, default=16)
    p.add_argument("--eval_batch_size", type=positive_int, default=16, help="validation/test batch size")
    p.add_argument("--warmup_steps", type=non_negative_int, default=100)
    p.add_argument("--num_epochs", type=positive_int, default=10)
    p.add_argument("--val_check_interval", type=float_range(0, 1, lo_open=True), default=0.25,
                   help="validate every int(batches_per_epoch * this) batches (0.25: 4 times per epoch)")
    p.add_argument("--patience", type=positive_int, default=5,
                   help="stop after this many validations without improvement")
    add_seed_argument(p, 42)
    p.add_argument("--scheduler_interval", choices=SCHEDULER_INTERVALS, default="epoch",
                   help="epoch: step the learning-rate schedule once per epoch, as the authors' Lightning 1.x run did "
                        "(lr 0 in epoch 0 with 100 warmup steps); step: after every batch, as the paper describes")
    p.add_argument("--max_steps", type=positive_int, default=None,
                   help="stop after this many optimizer steps in total (resumable with --resume; for smoke runs)")
    p.add_argument("--resume", nargs="?", const=True, default=None, metavar="OUTPUT_DIR",
                   help="continue the run in OUTPUT_DIR (bare: in --output_dir) with the arguments of its args.json")
    p.add_argument("--overwrite_output_dir", action="store_true", help="start over in an --output_dir with a run")
    add_device_argument(p, None)
    p.add_argument("--no_progress", action="store_true", help="no progress bars")
    # inference
    p.add_argument("--infer_checkpoint", default=None, type=existing_dir,
                   help="checkpoint for --do_infer (default: <output_dir>/best)")
    p.add_argument("--infer_file", default=None, type=existing_file,
                   help="CSV with a context column (default: <train_dir>/test.csv)")
    p.add_argument("--infer_output", default=None, type=output_file,
                   help="default: <output_dir>/<infer_file name>_gen_beams_<num_beams>.csv")
    p.add_argument("--infer_batch_size", type=positive_int, default=8)
    p.add_argument("--num_beams", type=positive_int, default=NUM_BEAMS)
    p.add_argument("--max_length", type=positive_int, default=MAX_GEN_LENGTH, help="generation length limit")
    p.add_argument("--max_input_length", type=positive_int, default=MAX_INPUT_LENGTH, help="inputs are cut to this")
    return p


# What an explicit argument may change on --resume (no weight or logged number depends on it; the model comes from
# last/, so --model_name_or_path does nothing there, and the output folder is the one resumed).
CHANGEABLE_ON_RESUME = ("max_steps", "device", "output_dir", "model_name_or_path", "overwrite_output_dir")


def folder_to_resume(args):
    if not args.resume:
        return None
    return args.output_dir if args.resume is True else args.resume


def parse_args(argv=None):
    """The command line; with --resume, the run's args.json fills what argv does not give (palkit.run_folder)."""
    parser = build_parser()
    args = parse_resume(parser, argv, folder_to_resume, CHANGEABLE_ON_RESUME)
    if args.resume:
        args.output_dir, args.resume = folder_to_resume(args), True
        check_train_dir_on_resume(args, explicit_dests(parser, sys.argv[1:] if argv is None else argv))
    return args


def check_train_dir_on_resume(args, explicit):
    """--train_dir names the files another way: it must name the run's own (taken from args.json)."""
    if "train_dir" not in explicit:
        return
    for key, name in (("train_file", "train.csv"), ("valid_file", "valid.csv")):
        given = os.path.join(args.train_dir, name)
        if key not in explicit and os.path.abspath(given) != os.path.abspath(getattr(args, key)):
            raise UserError(f"--train_dir {args.train_dir}: the run was trained on {getattr(args, key)} "
                            f"({args.output_dir}/args.json); drop --train_dir: a resumed run keeps its files")


def train_config(args):
    test_file = args.test_file
    if test_file is None and os.path.isfile(os.path.join(args.train_dir, "test.csv")):
        test_file = os.path.join(args.train_dir, "test.csv")
    return TrainConfig(
        train_file=args.train_file or os.path.join(args.train_dir, "train.csv"),
        valid_file=args.valid_file or os.path.join(args.train_dir, "valid.csv"),
        test_file=test_file, output_dir=args.output_dir, model_name_or_path=args.model_name_or_path,
        max_source_length=args.max_source_length, max_target_length=args.max_target_length,
        learning_rate=args.learning_rate, train_batch_size=args.train_batch_size,
        eval_batch_size=args.eval_batch_size, warmup_steps=args.warmup_steps, num_epochs=args.num_epochs,
        val_check_interval=args.val_check_interval, patience=args.patience, seed=args.seed,
        scheduler_interval=args.scheduler_interval,
        max_steps=args.max_steps, device=args.device, resume=bool(args.resume),
        overwrite_output_dir=args.overwrite_output_dir, progress=not args.no_progress)


def run_infer(args):
    checkpoint = args.infer_checkpoint or os.path.join(args.output_dir, "best")
    infer_file = args.infer_file or os.path.join(args.train_dir, "test.csv")
    require_file(infer_file, "pass --infer_file, a CSV with a context column")
    stem = os.path.splitext(os.path.basename(infer_file))[0]
    out = require_output_file(args.infer_output or
                              os.path.join(args.output_dir, f"{stem}_gen_beams_{args.num_beams}.csv"))
    frame = read_csv_frame(infer_file)
    if "context" not in frame.columns or frame.empty:
        raise UserError(f"{infer_file}: no 'context' column or no rows; expected a CSV with a context column")
    frame = frame.drop(columns=[c for c in frame.columns if c.startswith("Unnamed: ")])
    extractor = PersonaExtractor.from_pretrained(
        checkpoint, device=args.device, max_input_length=args.max_input_length,
        decoding=DecodingSettings(num_beams=args.num_beams, max_length=args.max_length))
    contexts = frame["context"].tolist()
    with tqdm(total=len(contexts), desc="generating", disable=args.no_progress) as bar:
        raw = extractor.generate_raw(contexts, batch_size=args.infer_batch_size, progress=bar)
    frame["infer_res"] = raw
    frame["persona_inferred"] = [persona_from_generation(r) for r in raw]
    with atomic_write(out) as f:
        frame.to_csv(f)
    print(f"{len(frame)} generations -> {out}")


def main(argv=None):
    args = parse_args(argv)
    if args.do_train or not args.do_infer:
        if not (args.train_file and args.valid_file):
            require_dir(args.train_dir, "pass --train_dir, the --output_dir of persona_extractor/process_bart_df.py")
        train(train_config(args))
    if args.do_infer:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise UserError("--do_infer runs in one process; run it with python, not torchrun")
        run_infer(args)


if __name__ == "__main__":
    run_main(main)
