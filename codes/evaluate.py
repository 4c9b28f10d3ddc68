"""Re-score an existing gen.json without a model: rewrites metric.json (and friends) in the result folder.

    RUN/python codes/evaluate.py RESULT_DIR [--add_nlg_eval] [--ead_vocab_size 54956] [--gold_file DATA/pesconv/test.txt]

RESULT_DIR is a folder written by codes/infer.py, or by the authors' infer.py (chengjl19/PAL, thu-coai codes_zcj),
or the gen.json file itself. Writes metric.json, metric_list.json, the strategy confusion matrix (JSON + PNG) and
report when gen.json has gold and predicted strategies, and metric_nlgeval.json with --add_nlg_eval (METEOR needs
Java; without it METEOR is skipped with a warning). The authors' gen.json has predicted strategies but no gold ones:
every other metric is computed and a note says why strategy accuracy is not; --gold_file TEST_FILE reads the gold
strategies from the reformatted test file the records were generated from (file order; the record count and
sample_ids are checked).
The folder is changed as one unit and sealed (pal.results): a kill leaves it as it was or fully rescored; a mixed
folder (files not committed with its gen.json) is named in one line and its metric files are replaced.
NLTK's English punkt_tab ships in codes/metric/nltk_data/ (used when NLTK finds none of its own).
"""
import palkit.entry  # noqa: F401 -- first: outside the project's environment, one line saying how to run this
import sys

from palkit.argtypes import existing_file, existing_path, int_range
from palkit.cli import ArgumentParser, UserError, run_main
from pal.results import check_result_folder, result_folder_of, updated_result_folder

from metric import EAD_VOCAB_SIZE, evaluate_records, require_punkt
from metric.records import load_gen_json, with_gold_strategies


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("result_dir", type=existing_path, help="result folder holding gen.json (or the gen.json file)")
    parser.add_argument("--add_nlg_eval", action="store_true",
                        help="also BLEU/METEOR/ROUGE-L/CIDEr via pycocoevalcap into metric_nlgeval.json")
    parser.add_argument("--ead_vocab_size", type=int_range(2), default=EAD_VOCAB_SIZE,
                        help="V in the EAD expectation (default: %(default)s, BlenderBot-small + PAL's added tokens)")
    parser.add_argument("--gold_file", default=None, type=existing_file,
                        help="the reformatted test file (codes/_reformat/process.py) gen.json was generated from: "
                             "gold strategies for records without cls_strat_id (the authors' gen.json)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    require_punkt()
    save_dir = result_folder_of(args.result_dir)
    if save_dir is None:
        raise UserError(f"{args.result_dir}: not a result folder or its gen.json; pass the folder codes/infer.py "
                        "wrote (or copy the file into a folder of its own as gen.json)")
    records = load_gen_json(save_dir)
    if args.gold_file:
        records = with_gold_strategies(records, args.gold_file)
    try:
        check_result_folder(save_dir, note_unsealed=False)
    except UserError as e:
        print(f"note: {e}; rescoring it", file=sys.stderr)
    with updated_result_folder(save_dir) as tmp:
        evaluate_records(records, tmp, add_nlg_eval=args.add_nlg_eval, ead_vocab_size=args.ead_vocab_size)
    print(f"wrote the metric files into {save_dir}")


if __name__ == "__main__":
    run_main(main)
