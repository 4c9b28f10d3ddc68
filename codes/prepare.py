"""Featurize a training file once and cache it for train.py (the authors' codes/prepare.py, SPEC "Stage 3").

Writes into DATA/{inputter_name}.{config_name}/ (or --output_dir):
  data.pkl   the training examples (a pickled list of pal.inputter.Feature, in file order)
  meta.json  the arguments and tokenizer they were made with; train.py refuses features made with other settings

Usage (from the repository root; RUN/prepare_strat.sh has the released settings):
  python codes/prepare.py --config_name strat --inputter_name strat --train_input_file DATA/pesconv/train.txt \
      --max_input_length 512 --max_decoder_input_length 50 --use_all_persona False

Differences from the authors' script: the output folder is DATA/{inputter}.{config} (theirs carried a
"_persona_attention_final_rebuttal" suffix that their train.py did not read back); the tokenizer is not pickled
(train.py rebuilds it from the config and checks its size against meta.json); one process is used (featurizing
all of ESConv takes seconds, as each utterance is tokenized once).
"""
import argparse
import json
import os
import pickle
from contextlib import ExitStack

from pal.checks import existing_file, expect_type, load_json, load_pickle, output_dir, positive_int, require_output_dir
from pal.cli import ArgumentParser, UserError, atomic_write, boolean_string, run_main
from pal.config import REPO_ROOT, build_tokenizer, load_config, resolve_pretrained_path
from pal.inputter import Featurizer, settings_for

FEATURES_FILE = "data.pkl"
META_FILE = "meta.json"
FORMAT_VERSION = 1


def build_parser():
    p = ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config_name", required=True, help="strat (PAL), strat_no_persona (Blender-Joint), vanilla")
    p.add_argument("--inputter_name", required=True, help="strat or vanilla")
    p.add_argument("--train_input_file", required=True, type=existing_file,
                   help="train.txt written by codes/_reformat/process.py")
    p.add_argument("--max_input_length", type=positive_int, default=512, help="context ids kept (the last ones)")
    p.add_argument("--max_decoder_input_length", type=positive_int, default=50, help="reply ids kept")
    p.add_argument("--use_all_persona", type=boolean_string, default=False,
                   help="True: every example uses the dialogue's overall 'persona' instead of persona_list[k-3]")
    p.add_argument("--pretrained_model_path", default=None,
                   help="where the tokenizer files are (overrides the config; a directory or hub name)")
    p.add_argument("--output_dir", default=None, type=output_dir, help="default: DATA/{inputter_name}.{config_name}")
    p.add_argument("--pbar", type=boolean_string, default=True, help="progress bar")
    accepted = p.add_argument_group("accepted for the authors' scripts")
    accepted.add_argument("--encode_context", type=boolean_string, default=True,
                          help="only True (tokenize the joined text, the PAL code path) is supported")
    for name in ("--max_knowledge_length", "--label_num"):
        accepted.add_argument(name, type=int, default=None, help=argparse.SUPPRESS)
    accepted.add_argument("--only_encode", action="store_true", help=argparse.SUPPRESS)
    accepted.add_argument("--single_processing", action="store_true", help=argparse.SUPPRESS)
    return p


def default_prepared_dir(inputter_name, config_name):
    return str(REPO_ROOT / "DATA" / f"{inputter_name}.{config_name}")


def check_encode_context(value):
    if not value:
        raise UserError("--encode_context False (pre-tokenized utterances joined by eos) is not supported; PAL's "
                        "released scripts use True")


def prepare(args):
    check_encode_context(args.encode_context)
    out_dir = require_output_dir(args.output_dir or default_prepared_dir(args.inputter_name, args.config_name))
    config = load_config(args.config_name)
    settings = settings_for(config, args.inputter_name, args.max_input_length, args.max_decoder_input_length,
                            args.use_all_persona)
    pretrained = resolve_pretrained_path(config, args.pretrained_model_path)
    toker = build_tokenizer(config, pretrained)
    featurizer = Featurizer(toker, settings)
    per_dialogue = featurizer.file_features(args.train_input_file, "training", progress=args.pbar)
    features = [f for dialogue in per_dialogue for f in dialogue]
    if not features:
        raise UserError(f"{args.train_input_file}: no training example (no supporter turn after a dialogue's first "
                        f"turn)")
    meta = {
        "format_version": FORMAT_VERSION,
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
    }
    # Both files are renamed into place only after both were written, so data.pkl and meta.json always match.
    with ExitStack() as stack:
        features_file = stack.enter_context(atomic_write(os.path.join(out_dir, FEATURES_FILE), "wb"))
        meta_file = stack.enter_context(atomic_write(os.path.join(out_dir, META_FILE)))
        pickle.dump(features, features_file, protocol=pickle.HIGHEST_PROTOCOL)
        json.dump(meta, meta_file, ensure_ascii=False, indent=2)
        meta_file.write("\n")
    print(f"{len(features)} training examples from {len(per_dialogue)} dialogues -> {out_dir}")
    return out_dir


def load_prepared(prepared_dir, expected):
    """(features, meta) of a prepare.py output; `expected` maps meta keys to the values the caller needs."""
    data_path, meta_path = os.path.join(prepared_dir, FEATURES_FILE), os.path.join(prepared_dir, META_FILE)
    if not os.path.isfile(data_path) or not os.path.isfile(meta_path):
        raise UserError(f"no prepared features in {prepared_dir} (need {FEATURES_FILE} and {META_FILE}); run "
                        f"codes/prepare.py (RUN/prepare_*.sh) with the same --config_name/--inputter_name first")
    rerun = "run codes/prepare.py again"
    meta = load_json(meta_path, expect=dict, hint=rerun)
    if meta.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{meta_path}: made by another version of prepare.py; run codes/prepare.py again")
    differing = [f"{k}: prepared {meta.get(k)!r}, now {v!r}" for k, v in expected.items() if meta.get(k) != v]
    if differing:
        raise UserError(f"{prepared_dir} was prepared with other settings ({'; '.join(differing)}); run "
                        f"codes/prepare.py again with these settings or pass matching arguments")
    features = expect_type(load_pickle(data_path, hint=rerun), list, data_path, rerun)
    if len(features) != meta.get("n_examples"):
        raise UserError(f"{data_path}: holds {len(features)} examples, {meta_path} says {meta.get('n_examples')}; "
                        f"{rerun}")
    return features, meta


def main(argv=None):
    prepare(build_parser().parse_args(argv))


if __name__ == "__main__":
    run_main(main)
