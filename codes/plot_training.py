"""Training curves of a run folder as a PNG: train loss per step, train/validation loss per epoch, validation PPL.

    RUN/python codes/plot_training.py RUN_DIR [--output RUN_DIR/training_curves.png]

Reads RUN_DIR/train_log.csv (columns epoch and loss; step/global_step used when present) and RUN_DIR/eval_log.csv
(epoch, eval_loss, eval_ppl); extra columns are ignored, the authors' column names are accepted too, and either file
may be absent (not both). --train_log / --eval_log point at files elsewhere.
"""
import palkit.entry  # noqa: F401 -- first: outside the project's environment, one line saying how to run this
import os

from palkit.argtypes import existing_dir, existing_file, output_file
from palkit.paths import require_output_file
from palkit.cli import ArgumentParser, UserError, run_main

from metric.plots import find_training_logs, plot_training_curves


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", nargs="?", default=None, type=existing_dir, help="training run folder")
    parser.add_argument("--train_log", default=None, type=existing_file, help="default: RUN_DIR/train_log.csv")
    parser.add_argument("--eval_log", default=None, type=existing_file, help="default: RUN_DIR/eval_log.csv")
    parser.add_argument("--output", default=None, type=output_file, help="default: RUN_DIR/training_curves.png")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    train_log, eval_log = find_training_logs(args.run_dir) if args.run_dir else (None, None)
    train_log, eval_log = args.train_log or train_log, args.eval_log or eval_log
    if not (train_log or eval_log):
        raise UserError(f"no train_log.csv or eval_log.csv in {args.run_dir or '(no RUN_DIR given)'}")
    output = args.output or os.path.join(args.run_dir or os.path.dirname(os.path.abspath(train_log or eval_log)),
                                         "training_curves.png")
    require_output_file(output)
    plot_training_curves(train_log, eval_log, output)
    print(f"wrote {output}")


if __name__ == "__main__":
    run_main(main)
