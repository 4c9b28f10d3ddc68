"""One Markdown table of Table 3's columns for one or more result folders, beside the paper's rows.

    python codes/summarize_results.py RESULT_DIR [RESULT_DIR ...] [--names A B] [--compare_to pal] [--output FILE]

Reads metric.json (ACC, PPL, B-2, B-4, D-1, D-2, E-1, E-2, R-L), falling back to ead.json for E-1/E-2, and
cos_similarity.json for Cos-Sim (codes/get_cos_similarity.py); a value that is not there shows as "–". Under each
folder's row, a Δ row gives ours minus the paper row named by --compare_to (pal, pal_alpha0, blender_joint).
"""
import argparse

from pal.cli import UserError, atomic_write, run_main

from metric.paper import PAPER
from metric.summary import markdown_table, read_result_folder


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("result_dirs", nargs="+", help="result folders (each with metric.json)")
    parser.add_argument("--names", nargs="+", default=None, help="row names (default: the folder paths)")
    parser.add_argument("--compare_to", nargs="+", default=["pal"], choices=sorted(PAPER),
                        help="paper row to subtract: one for all folders, or one per folder (default: pal)")
    parser.add_argument("--distinct", choices=["authors", "standard"], default="authors",
                        help="D-1/D-2 from the authors' off-by-one Distinct (paper parity, default) or the standard one")
    parser.add_argument("--output", default=None, help="also write the table to this Markdown file")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    names = args.names or args.result_dirs
    if len(names) != len(args.result_dirs):
        raise UserError(f"--names gives {len(names)} names for {len(args.result_dirs)} result folders")
    compare_to = args.compare_to * len(args.result_dirs) if len(args.compare_to) == 1 else args.compare_to
    if len(compare_to) != len(args.result_dirs):
        raise UserError(f"--compare_to gives {len(args.compare_to)} rows for {len(args.result_dirs)} result folders")
    results = [(name, read_result_folder(d, args.distinct)) for name, d in zip(names, args.result_dirs)]
    table = markdown_table(results, compare_to)
    print(table, end="")
    if args.output:
        with atomic_write(args.output) as f:
            f.write(table)


if __name__ == "__main__":
    run_main(main)
