"""Persona-response cosine similarity (the paper's Cos-Sim) of a gen.json, with a sentence encoder.

    RUN/python codes/get_cos_similarity.py --input_file RESULT_DIR/gen.json [--model DIR_OR_HUB_NAME]

For each example: cosine between the encoder's pooler output for the persona and for the generation (the paper's
number), and between the persona and the gold response. Writes cos_similarity.json (means; `cos-sim-generation`
is Table 3's Cos-Sim) and cos_similarity_list.json (per example) beside the input. --annotate_input True also
writes the per-example scores into the input file as `simcse_score` (the authors' script always did that).
Records with an empty persona are counted (a warning; num_empty_persona in cos_similarity.json) and, as the authors
do, included in the mean; --exclude_empty_persona True leaves them out (`nonempty` always holds that mean).
--model defaults to princeton-nlp/sup-simcse-bert-base-uncased; any local encoder folder works.
Beside a gen.json the files are committed into its result folder as one unit and sealed with that gen.json
(pal.results); with --output_file they are written there as they are.
"""
import palkit.entry  # noqa: F401 -- first: outside the project's environment, one line saying how to run this
import os

from palkit.argtypes import boolean_string, existing_path, output_file, positive_int
from palkit.model_files import ENCODER_TOKENIZER_FILES, check_model_dir, check_tokenizer_dir
from palkit.paths import require_output_file
from palkit.cli import ArgumentParser, UserError, resolve_device, run_main
from palkit.atomic import crash_point, write_json
from pal.results import LABEL, result_folder_of, updated_result_folder

from metric.records import check_records, load_gen_json
from metric.simcse import DEFAULT_ENCODER, load_encoder, persona_similarities, summarize_similarities
from palkit.options import add_device_argument


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input_file", required=True, type=existing_path,
                        help="gen.json written by codes/infer.py (or its folder)")
    parser.add_argument("--model", default=DEFAULT_ENCODER, help="encoder directory or hub name (default: %(default)s)")
    parser.add_argument("--batch_size", type=positive_int, default=64, help="examples per forward pass")
    add_device_argument(parser, None)
    parser.add_argument("--output_file", default=None, type=output_file,
                        help="default: cos_similarity.json beside the input")
    parser.add_argument("--annotate_input", type=boolean_string, default=False,
                        help="also add `simcse_score` to every record of the input file (authors' behaviour)")
    parser.add_argument("--exclude_empty_persona", type=boolean_string, default=False,
                        help="leave records with an empty persona out of the mean (the authors include them; their "
                             "count is reported either way)")
    return parser.parse_args(argv)


def check_texts(records, source):
    """persona, response and generation of every record are strings (a null persona is not text to score)."""
    for i, record in enumerate(records):
        for key in ("persona", "response", "generation"):
            if key not in record:
                raise UserError(f"{source}: record {i} has no {key!r} (Cos-Sim needs the persona text; use a gen.json "
                                "from a persona model)")
            if not isinstance(record[key], str):
                got = "null" if record[key] is None else type(record[key]).__name__
                raise UserError(f"{source}: record {i}: {key!r} must be a string, got {got}; Cos-Sim scores text "
                                "(use a gen.json written by codes/infer.py with a persona model)")


def check_outputs(args, folder):
    """The files written outside a result folder (--output_file, or beside a lone gen.json), checked to be
    writable before any work."""
    if folder is None or args.output_file:
        output = args.output_file or os.path.join(os.path.dirname(os.path.abspath(args.input_file)),
                                                  "cos_similarity.json")
        require_output_file(output)
        require_output_file(os.path.join(os.path.dirname(os.path.abspath(output)), "cos_similarity_list.json"))


def write_outputs(output, annotated_input, summary, scores, records):
    """cos_similarity.json at `output`, cos_similarity_list.json beside it, and the scores into `annotated_input`."""
    write_json(output, summary)
    crash_point(LABEL, "partial")
    write_json(os.path.join(os.path.dirname(os.path.abspath(output)), "cos_similarity_list.json"), scores, indent=None)
    if annotated_input:
        for record, score in zip(records, scores):
            record["simcse_score"] = score
        write_json(annotated_input, records)


def main(argv=None):
    args = parse_args(argv)
    device = resolve_device(args.device)
    folder = result_folder_of(args.input_file)
    check_outputs(args, folder)
    records = load_gen_json(folder or args.input_file)
    check_records(records, args.input_file)
    check_texts(records, args.input_file)
    hint = "pass --model DIR holding a complete sentence encoder (config.json, weights, tokenizer files)"
    check_tokenizer_dir(args.model, ENCODER_TOKENIZER_FILES, hint)
    check_model_dir(args.model, hint)
    tokenizer, model = load_encoder(args.model, device)
    scores = persona_similarities(records, tokenizer, model, args.batch_size)
    summary = {**summarize_similarities(records, scores, args.exclude_empty_persona, args.input_file),
               "model": args.model}
    if folder is None or (args.output_file and not args.annotate_input):  # nothing of a result folder changes
        output = args.output_file or os.path.join(os.path.dirname(os.path.abspath(args.input_file)),
                                                  "cos_similarity.json")
        write_outputs(output, args.input_file if args.annotate_input else None, summary, scores, records)
    else:
        with updated_result_folder(folder) as tmp:
            write_outputs(args.output_file or os.path.join(tmp, "cos_similarity.json"),
                          os.path.join(tmp, "gen.json") if args.annotate_input else None, summary, scores, records)
        output = args.output_file or os.path.join(folder, "cos_similarity.json")
    print(f"average cos similarity: response {summary['cos-sim-response']:.4f}, "
          f"generation {summary['cos-sim-generation']:.4f}; wrote {output}")


if __name__ == "__main__":
    run_main(main)
