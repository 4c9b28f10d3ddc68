"""Featurize a training file once and cache it for train.py (the authors' codes/prepare.py;
docs/reproduction.md#featurization).

Writes DATA/{inputter_name}.{config_name}/features/ (or <--output_dir>/features/), committed as one unit
(pal.prepared: a kill at any instant leaves the earlier preparation or the new one):
  data.pkl       the training examples (a pickled list of pal.inputter.Feature, in file order)
  meta.json      the arguments and tokenizer they were made with; train.py refuses features made with other settings
  manifest.json  size and SHA-256 of both; train.py refuses a set whose files do not belong together

Usage (from the repository root; RUN/prepare_strat.sh has the released settings):
  RUN/python codes/prepare.py --config_name strat --inputter_name strat --train_input_file DATA/pesconv/train.txt
Differences from the authors' script, none changing an id: the output folder name (theirs had a suffix their
train.py did not read back); the tokenizer is rebuilt from the config, not pickled; one process is used.
"""
import palkit.entry  # noqa: F401 -- first: outside the project's environment, one line saying how to run this
import os
import sys

from palkit.argtypes import boolean_string, existing_file, output_dir
from palkit.paths import require_output_dir
from palkit.cli import ArgumentParser, DefaultsHelpFormatter, UserError, run_main
from pal.completeness import note_partial, report_empty_personas
from pal.config import build_tokenizer, load_config, resolve_pretrained_path
from pal.dialogues import load_dialogues
from pal.inputter import Featurizer, settings_for
from pal.prepared import default_prepared_dir, features_dir, write_prepared
from pal.options import (add_authors_arguments, add_length_arguments, add_model_arguments, add_persona_argument,
                         add_pretrained_argument, check_encode_context)
from palkit.options import add_pbar_argument


def build_parser():
    p = ArgumentParser(description=__doc__.split("\n\n")[0],
                       formatter_class=DefaultsHelpFormatter)
    add_model_arguments(p)
    p.add_argument("--train_input_file", required=True, type=existing_file,
                   help="train.txt written by codes/_reformat/process.py")
    add_length_arguments(p)
    add_persona_argument(p)
    add_pretrained_argument(p)
    p.add_argument("--output_dir", default=None, type=output_dir, help="default: DATA/{inputter_name}.{config_name}")
    add_pbar_argument(p)
    p.add_argument("--allow_no_persona", type=boolean_string, default=False,
                   help="True: prepare a persona config (PAL) on a file where no dialogue has a persona field "
                        "(otherwise an error: PAL trained on empty personas is a different model)")
    add_authors_arguments(p, "encode_context", "max_knowledge_length", "label_num", "only_encode", "single_processing")
    return p


def check_training_file(args, settings):
    """The partial mark of the training file (None: complete), said in one line; for PAL (a persona config) a
    file where no dialogue has a persona field is an error unless --allow_no_persona True, and the share of empty
    personas is reported."""
    partial = note_partial(args.train_input_file)
    if settings.persona_in_batches:
        dialogues = load_dialogues(args.train_input_file, "codes/_reformat/process.py writes train.txt").dialogues
        if not any(isinstance(d, dict) and ("persona" in d or "persona_list" in d) for d in dialogues):
            if not args.allow_no_persona:
                raise UserError(f"{args.train_input_file}: no dialogue has a persona field, so PAL would train on "
                                f"empty personas (a different model); reformat PESConv with --add_persona True, or "
                                f"pass --allow_no_persona True to go on")
            print(f"warning: {args.train_input_file}: no persona in any dialogue (--allow_no_persona True)",
                  file=sys.stderr)
        report_empty_personas(dialogues, args.train_input_file)
    return partial


def prepare(args):
    check_encode_context(args.encode_context)
    out_dir = require_output_dir(args.output_dir or default_prepared_dir(args.inputter_name, args.config_name))
    config = load_config(args.config_name)
    settings = settings_for(config, args.inputter_name, args.max_input_length, args.max_decoder_input_length,
                            args.use_all_persona)
    partial = check_training_file(args, settings)  # cheap checks before the tokenizer loads
    pretrained = resolve_pretrained_path(config, args.pretrained_model_path)
    toker = build_tokenizer(config, pretrained)
    featurizer = Featurizer(toker, settings)
    per_dialogue = featurizer.file_features(args.train_input_file, "training", progress=args.pbar)
    features = [f for dialogue in per_dialogue for f in dialogue]
    if not features:
        raise UserError(f"{args.train_input_file}: no training example (no supporter turn after a dialogue's first "
                        f"turn)")
    meta = {
        "config_name": args.config_name,
        "inputter_name": args.inputter_name,
        "train_input_file": os.path.abspath(args.train_input_file),
        "max_input_length": args.max_input_length,
        "max_decoder_input_length": args.max_decoder_input_length,
        "use_all_persona": args.use_all_persona,
        "pretrained_model_path": pretrained,
        "vocab_size": len(toker),
        "n_dialogues": len(per_dialogue),
        "n_examples": len(features),
        "partial": partial,
    }
    write_prepared(out_dir, features, meta)
    print(f"{len(features)} training examples from {len(per_dialogue)} dialogues -> {features_dir(out_dir)}"
          + (f" (partial: {partial})" if partial else ""))
    return out_dir


def main(argv=None):
    prepare(build_parser().parse_args(argv))


if __name__ == "__main__":
    run_main(main)
