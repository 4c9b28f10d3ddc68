"""PersonaChat (ParlAI text format) -> train.csv, valid.csv, test.csv for the persona extractor
(docs/reproduction.md#data).

    RUN/python persona_extractor/process_bart_df.py [--data_dir Persona_chat/personachat] [--output_dir .]

Reads `{split}_both_original.txt` (or the `_no_cands` variant) for split in train, valid, test; a split with no
file is skipped with a note. Each dialogue gives two rows, first for the speaker of the response column ("your
persona"), then for the partner (first column, "partner's persona"):
  context = that speaker's utterances joined by " <sep> ", persona = their persona sentences joined by
  " <persona> ", both followed by " </s>" as in the authors' CSVs (`--eos_suffix ""` leaves it out).
The CSVs are written with pandas' default index column, like the authors' `df.to_csv(name)`, so either can be
fed to train_bart.py. A malformed line stops the script with `error: <file>:<line>: ...` before any CSV is
written.
"""
import os
import sys

try:
    import palkit.entry  # noqa: F401 -- first: outside the project's environment, one line saying how to run this
except ModuleNotFoundError:  # palkit is out of reach too (it lives in codes/): the line palkit.entry would say
    sys.exit("error: this is not the project's environment (no torch or pal here): run it as  " + os.path.normpath(
        os.path.join(os.path.dirname(sys.argv[0]), '..', 'RUN', 'python')) + ' ' + ' '.join(sys.argv))
from contextlib import ExitStack

from palkit.argtypes import argument_type, output_dir
from palkit.paths import require_dir, require_output_file
from palkit.cli import ArgumentParser, UserError, run_main
from palkit.atomic import atomic_write
from persona_extractor.persona_text import EOS_TEXT
from persona_extractor.personachat import dialogue_examples, read_personachat

SPLITS = ("train", "valid", "test")
FILE_VARIANTS = ("{split}_both_original.txt", "{split}_both_original_no_cands.txt")
DATA_DIR_HINT = "it should hold PersonaChat's {train,valid,test}_both_original.txt (ParlAI ConvAI2 release)"


def find_split_file(data_dir, split):
    for pattern in FILE_VARIANTS:
        path = os.path.join(data_dir, pattern.format(split=split))
        if os.path.isfile(path):
            return path
    return None


def split_rows(path, eos_suffix):
    rows = []
    for dialogue in read_personachat(path):
        rows.extend(dialogue_examples(dialogue, eos_suffix))
    if not rows:
        raise UserError(f"{path}: holds no dialogues (an empty file would give an empty CSV); give the PersonaChat "
                        "file in ParlAI text format, or move it out of --data_dir to skip that split")
    return rows


def write_csvs(rows, out_dir):
    """One CSV per split; all are renamed into place only after every one was written completely."""
    import pandas as pd  # lazy: not needed for --help
    with ExitStack() as stack:
        for split, split_rows in rows.items():
            frame = pd.DataFrame({"context": [c for c, _ in split_rows], "persona": [p for _, p in split_rows]})
            frame.to_csv(stack.enter_context(atomic_write(os.path.join(out_dir, f"{split}.csv"))))


def build_parser():
    parser = ArgumentParser(description="PersonaChat ParlAI files -> context/persona CSVs for BART.")
    parser.add_argument("--data_dir", default="Persona_chat/personachat",
                        type=argument_type(require_dir, DATA_DIR_HINT),
                        help="folder with {train,valid,test}_both_original[_no_cands].txt "
                             "(default: the authors' Persona_chat/personachat)")
    parser.add_argument("--output_dir", default=".", type=output_dir,
                        help="where train.csv, valid.csv, test.csv go (default: .)")
    parser.add_argument("--eos_suffix", default=" " + EOS_TEXT,
                        help="appended to every context and persona (default: ' </s>', as the authors' CSVs)")
    parser.add_argument("--splits_present", action="store_true",
                        help="write the CSVs of the splits that are there even without the train split (otherwise "
                             "a missing train_both_original.txt is an error)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    found = {split: find_split_file(args.data_dir, split) for split in SPLITS}
    if not any(found.values()):
        raise UserError(f"--data_dir {args.data_dir}: none of "
                        f"{', '.join(v.format(split=s) for s in SPLITS for v in FILE_VARIANTS)} is there")
    if found["train"] is None and not args.splits_present:
        raise UserError(f"--data_dir {args.data_dir}: no train_both_original.txt (ParlAI ConvAI2's train split), which "
                        f"the extractor trains on; add it, or pass --splits_present to write only the CSVs of the "
                        f"splits that are there")
    for split, path in found.items():
        if path is not None:
            require_output_file(os.path.join(args.output_dir, f"{split}.csv"))
    # Parse every split before writing anything, so a malformed file leaves no partial output behind.
    rows = {}
    for split, path in found.items():
        if path is None:
            print(f"note: no {split}_both_original[_no_cands].txt in {args.data_dir}; {split}.csv skipped")
            continue
        rows[split] = split_rows(path, args.eos_suffix)
    write_csvs(rows, args.output_dir)
    for split, split_data in rows.items():
        out = os.path.join(args.output_dir, f"{split}.csv")
        print(f"{split}: {len(split_data) // 2} dialogues -> {len(split_data)} rows -> {out}")


if __name__ == "__main__":
    run_main(main)
