"""Stage 2 of PAL: reformat ESConv / PESConv into train.txt, valid.txt and test.txt (docs/reproduction.md#reformat).

Usage (like the authors' script, run inside the folder that holds the data):

    RUN/python codes/_reformat/process.py --add_persona False     # reads ./ESConv.json
    RUN/python codes/_reformat/process.py --add_persona True      # reads ./PESConv.json
    RUN/python codes/_reformat/process.py --add_persona False --input_file DATA/ESConv.json --output_dir DATA

Both ESConv schemas (JSON array, seeker/supporter turns; JSON lines, usr/sys turns) give byte-identical output:
one JSON dialogue per line with the authors' keys in their order. Split: random.seed(13), shuffle, 7:2:1
(910/260/130). --persona_list_source raw_utterances reproduces the released script's overwrite of persona_list
(a bug; docs/reproduction.md#reformat). Bad input stops the script before any file is written, with one line
`error: <file>: dialogue <i>[: turn <j>]: <what is wrong>` (0-based positions), exit status 2; the three outputs
are renamed into place together only after every dialogue validated.
"""
import os
import sys

try:
    import palkit.entry  # noqa: F401 -- first: outside the project's environment, one line saying how to run this
except ModuleNotFoundError:  # palkit is out of reach too (it lives in codes/): the line palkit.entry would say
    sys.exit("error: this is not the project's environment (no torch or pal here): run it as  " + os.path.normpath(
        os.path.join(os.path.dirname(sys.argv[0]), '..', '..', 'RUN', 'python')) + ' ' + ' '.join(sys.argv))

import json
import random
from collections import Counter
from contextlib import ExitStack

from palkit.cli import ArgumentParser, UserError, run_main
from palkit.argtypes import boolean_string, output_dir
from palkit.paths import require_output_file
from pal.completeness import MARK_SUFFIX, marked_write, note_partial, report_empty_personas
from pal.dialogues import load_dialogues
from pal.reformat import DATA_HINT, PERSONA_LIST_SOURCES, convert_all

SPLIT_SEED = 13
SPLIT_NAMES = ("train", "valid", "test")


# ------------------------------------------------------------------------------------------ split + write

def split_dialogues(records, seed=SPLIT_SEED):
    """The authors' 7:2:1 split. A private Random(13) draws the same permutation as random.seed(13)."""
    shuffled = list(records)
    random.Random(seed).shuffle(shuffled)
    n = int(0.1 * len(shuffled))
    return {
        "train": shuffled[3 * n:],
        "valid": shuffled[:n] + shuffled[2 * n:3 * n],
        "test": shuffled[n:2 * n],
    }


def output_paths(output_dir):
    return {name: os.path.join(output_dir, f"{name}.txt") for name in SPLIT_NAMES}


def write_splits(splits, output_dir, partial=None):
    """Write the three files; all are renamed into place only after all three were written completely, each with its
    subset mark (`partial`: what the splits hold, None when complete)."""
    paths = output_paths(output_dir)
    try:
        with ExitStack() as stack:
            files = {name: stack.enter_context(marked_write(paths[name], partial)) for name in SPLIT_NAMES}
            for name in SPLIT_NAMES:
                for record in splits[name]:
                    # json.dumps defaults (ASCII escapes, ", " separators) as the authors write the files.
                    files[name].write(json.dumps(record) + "\n")
    except OSError as e:
        raise UserError(f"cannot write to --output_dir {output_dir}: {e.strerror or e}")
    return paths


def format_counts(counter):
    return ", ".join(f"{key}={count}" for key, count in counter.most_common())


def report(records, splits, paths, input_file, container):
    print(f"read {len(records)} dialogues from {input_file} ({container})")
    print("emotion", format_counts(Counter(str(r["emotion_type"]) for r in records)))
    print("problem", format_counts(Counter(str(r["problem_type"]) for r in records)))
    for name in SPLIT_NAMES:
        print(f"{name} {len(splits[name])} -> {paths[name]}")


# ------------------------------------------------------------------------------------------------- CLI

def build_parser():
    parser = ArgumentParser(
        description="Reformat ESConv/PESConv (JSON array or JSON lines) into train.txt, valid.txt, test.txt "
                    "with the authors' seed-13 7:2:1 split.")
    parser.add_argument("--add_persona", type=boolean_string, required=True,
                        help="True: read PESConv and keep 'persona' and 'persona_list'; False: plain ESConv")
    parser.add_argument("--input_file", default=None,
                        help="input file (default: ./PESConv.json with --add_persona True, else ./ESConv.json)")
    parser.add_argument("--output_dir", default=".", type=output_dir,
                        help="where train.txt, valid.txt, test.txt are written (default: current directory)")
    parser.add_argument("--persona_list_source", choices=PERSONA_LIST_SOURCES, default=None,
                        help="with --add_persona True: 'inferred' (default, the paper) keeps PESConv's inferred "
                             "persona_list; 'raw_utterances' reproduces the released script's bug, replacing "
                             "persona_list with all of the seeker's raw utterances")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.persona_list_source is not None and not args.add_persona:
        raise UserError("--persona_list_source only applies with --add_persona True")
    persona_list_source = args.persona_list_source or "inferred"
    input_file = args.input_file or ("PESConv.json" if args.add_persona else "ESConv.json")
    for path in output_paths(args.output_dir).values():
        require_output_file(path)

    found = load_dialogues(input_file, DATA_HINT)
    partial = note_partial(input_file)
    records = convert_all(input_file, found.dialogues, args.add_persona, persona_list_source)
    splits = split_dialogues(records)
    # the splits of a partial file are partial too
    paths = write_splits(splits, args.output_dir, partial and f"a split of {input_file}, which holds {partial}")
    report(records, splits, paths, input_file, found.container)
    if partial:
        print(f"partial: {input_file} holds {partial}; so do these splits (marked *.txt{MARK_SUFFIX})")
    if args.add_persona:
        report_empty_personas(records, input_file)


if __name__ == "__main__":
    run_main(main)
