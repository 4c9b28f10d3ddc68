"""Persona-response cosine similarity (the paper's Cos-Sim) of a gen.json, with a sentence encoder.

    python codes/get_cos_similarity.py --input_file RESULT_DIR/gen.json [--model DIR_OR_HUB_NAME]

For each example: cosine between the encoder's pooler output for the persona and for the generation (the paper's
number), and between the persona and the gold response. Writes cos_similarity.json (means; `cos-sim-generation`
is Table 3's Cos-Sim) and cos_similarity_list.json (per example) beside the input. --annotate_input True also
writes the per-example scores into the input file as `simcse_score` (the authors' script always did that).
--model defaults to princeton-nlp/sup-simcse-bert-base-uncased; any local encoder folder works.
Beside a gen.json the files are committed into its result folder as one unit and sealed with that gen.json
(pal.results); with --output_file they are written there as they are.
"""
import argparse
import os

from pal.atomic import crash_point
from pal.cli import UserError, boolean_string, run_main, write_json
from pal.results import LABEL, result_folder_of, updated_result_folder

from metric.records import check_records, load_gen_json
from metric.simcse import DEFAULT_ENCODER, load_encoder, persona_similarities


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input_file", required=True, help="gen.json written by codes/infer.py (or its folder)")
    parser.add_argument("--model", default=DEFAULT_ENCODER, help="encoder directory or hub name (default: %(default)s)")
    parser.add_argument("--batch_size", type=int, default=64, help="examples per forward pass")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--output_file", default=None, help="default: cos_similarity.json beside the input")
    parser.add_argument("--annotate_input", type=boolean_string, default=False,
                        help="also add `simcse_score` to every record of the input file (authors' behaviour)")
    return parser.parse_args(argv)


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
    if args.batch_size < 1:
        raise UserError("--batch_size must be >= 1")
    folder = result_folder_of(args.input_file)
    records = load_gen_json(folder or args.input_file)
    check_records(records, args.input_file)
    missing = next((i for i, r in enumerate(records) if "persona" not in r), None)
    if missing is not None:
        raise UserError(f"{args.input_file}: record {missing} has no 'persona' (Cos-Sim needs the persona text; "
                        "use a gen.json from a persona model)")
    import torch
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer, model = load_encoder(args.model, device)
    scores = persona_similarities(records, tokenizer, model, args.batch_size)
    summary = {
        "cos-sim-generation": sum(s["generation"] for s in scores) / len(scores),
        "cos-sim-response": sum(s["response"] for s in scores) / len(scores),
        "model": args.model,
        "num_examples": len(scores),
    }
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
