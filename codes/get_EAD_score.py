"""Expectation-adjusted distinct (EAD; the paper's E-1/E-2) of the generations in a gen.json.

    RUN/python codes/get_EAD_score.py --input_file RESULT_DIR/gen.json [--n 1 2] [--vocab_size 54956]

EAD-n = N / (V * (1 - ((V-1)/V)^C)), N = distinct n-grams, C = all n-grams of the generations, each generation
split into sentences (nltk.sent_tokenize) and words (nltk.word_tokenize), not lower-cased, as the authors do.
Unlike the authors' script, only the `generation` field is scored (theirs scored whole JSON records when given
gen.json). A JSON list of plain strings is accepted too. Writes ead.json (values x100, like the paper's table)
next to the input unless --output_file says otherwise; beside a gen.json it is committed into the result folder as
one unit and sealed with that gen.json (pal.results), so readers know which generations it describes.
"""
import palkit.entry  # noqa: F401 -- first: outside the project's environment, one line saying how to run this
import os

from palkit.argtypes import boolean_string, existing_path, int_range, output_file, positive_int
from palkit.paths import require_output_file
from palkit.cli import ArgumentParser, UserError, run_main
from palkit.atomic import write_json
from pal.results import result_folder_of, updated_result_folder

from metric import EAD_VOCAB_SIZE, ead_metrics, require_punkt
from metric.records import first_text, load_gen_json


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input_file", required=True, type=existing_path, help="gen.json (or a JSON list of strings)")
    parser.add_argument("--n", type=positive_int, nargs="+", default=[1, 2], help="n-gram orders (default: 1 2)")
    parser.add_argument("--vocab_size", type=int_range(2), default=EAD_VOCAB_SIZE,
                        help="V in the expectation (default: %(default)s, BlenderBot-small + PAL's added tokens)")
    parser.add_argument("--lower", type=boolean_string, default=False,
                        help="lower-case before tokenizing (default False, as the authors)")
    parser.add_argument("--output_file", default=None, type=output_file, help="default: ead.json beside the input")
    return parser.parse_args(argv)


def generations_of(records, path):
    texts = []
    for i, record in enumerate(records):
        if isinstance(record, str):
            texts.append(record)
        elif isinstance(record, dict) and _is_text(record.get("generation")):
            texts.append(first_text(record["generation"]))
        elif isinstance(record, dict) and "generation" in record:
            raise UserError(f"{path}: record {i}: 'generation' must be a string (or a list of strings), got "
                            f"{'null' if record['generation'] is None else type(record['generation']).__name__}")
        else:
            raise UserError(f"{path}: record {i} has no 'generation' (expected gen.json records or plain strings)")
    return texts


def _is_text(value):
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def main(argv=None):
    args = parse_args(argv)
    input_dir = args.input_file if os.path.isdir(args.input_file) else os.path.dirname(os.path.abspath(args.input_file))
    output = require_output_file(args.output_file or os.path.join(input_dir, "ead.json"))
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
