"""Expectation-adjusted distinct (EAD; the paper's E-1/E-2) of the generations in a gen.json.

    python codes/get_EAD_score.py --input_file RESULT_DIR/gen.json [--n 1 2] [--vocab_size 54956]

EAD-n = N / (V * (1 - ((V-1)/V)^C)), N = distinct n-grams, C = all n-grams of the generations, each generation
split into sentences (nltk.sent_tokenize) and words (nltk.word_tokenize), not lower-cased, as the authors do.
Unlike the authors' script, only the `generation` field is scored (theirs scored whole JSON records when given
gen.json). A JSON list of plain strings is accepted too. Writes ead.json (values x100, like the paper's table)
next to the input unless --output_file says otherwise; beside a gen.json it is committed into the result folder as
one unit and sealed with that gen.json (pal.results), so readers know which generations it describes.
"""
import argparse
import os

from pal.cli import UserError, boolean_string, run_main, write_json
from pal.results import result_folder_of, updated_result_folder

from metric import EAD_VOCAB_SIZE, ead_metrics, require_punkt
from metric.records import first_text, load_gen_json


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input_file", required=True, help="gen.json (or a JSON list of strings)")
    parser.add_argument("--n", type=int, nargs="+", default=[1, 2], help="n-gram orders (default: 1 2)")
    parser.add_argument("--vocab_size", type=int, default=EAD_VOCAB_SIZE,
                        help="V in the expectation (default: %(default)s, BlenderBot-small + PAL's added tokens)")
    parser.add_argument("--lower", type=boolean_string, default=False,
                        help="lower-case before tokenizing (default False, as the authors)")
    parser.add_argument("--output_file", default=None, help="default: ead.json beside the input")
    return parser.parse_args(argv)


def generations_of(records, path):
    texts = []
    for i, record in enumerate(records):
        if isinstance(record, str):
            texts.append(record)
        elif isinstance(record, dict) and "generation" in record:
            texts.append(first_text(record["generation"]))
        else:
            raise UserError(f"{path}: record {i} has no 'generation' (expected gen.json records or plain strings)")
    return texts


def main(argv=None):
    args = parse_args(argv)
    if args.vocab_size < 2 or any(n < 1 for n in args.n):
        raise UserError("--vocab_size must be >= 2 and every --n >= 1")
    require_punkt()
    folder = result_folder_of(args.input_file)
    records = load_gen_json(folder or args.input_file)
    generations = generations_of(records, args.input_file)
    result = ead_metrics(generations, orders=args.n, vocab_size=args.vocab_size, lower=args.lower)
    result.update({"vocab_size": args.vocab_size, "lower": args.lower, "num_generations": len(generations)})
    if args.output_file or folder is None:  # not a result folder's file
        output = args.output_file or os.path.join(os.path.dirname(os.path.abspath(args.input_file)), "ead.json")
        write_json(output, result)
    else:
        output = os.path.join(folder, "ead.json")
        with updated_result_folder(folder) as tmp:
            write_json(os.path.join(tmp, "ead.json"), result)
    for n in args.n:
        print(f"EAD-{n}: {result[f'ead-{n}']:.4f} (x100; {result[f'ead-{n}_distinct_ngrams']} distinct of "
              f"{result[f'ead-{n}_total_ngrams']} {n}-grams, V={args.vocab_size})")
    print(f"wrote {output}")


if __name__ == "__main__":
    run_main(main)
