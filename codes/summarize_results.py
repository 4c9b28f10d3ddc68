"""Table 3 from result folders: grouped by system and checkpoint-selection rule, mean +- sd over training seeds and
a 95% confidence interval per cell, beside the paper's rows.

    RUN/python codes/summarize_results.py RESULT_DIR [RESULT_DIR ...] [--select best_ppl epoch:9 every]
        [--names A B] [--compare_to pal|pal_alpha0|blender_joint|none ...] [--output FILE.md] [--json FILE.json]
        [--plot FILE.png]

A RESULT_DIR is a folder written by codes/infer.py or a folder holding such folders (e.g. DATA/table3). System,
decoding seed and checkpoint come from each folder's infer_args.json, training seed and validation PPL from the
checkpoint's run folder (args.json, eval_log.csv). Values: metric.json (E-1/E-2 else ead.json) and
cos_similarity.json; "–" where absent. Under each row: its 95% CI (t interval over training seeds) and Δ = ours
minus the system's own paper row. Rules (--select, several allowed): given (folders as given), epoch:N, best_ppl
(per training run, the decoded epoch with the lowest validation PPL), every (a row per epoch). Default: given when
every run has one epoch, else best_ppl and every.
"""
import palkit.entry  # noqa: F401 -- first: outside the project's environment, one line saying how to run this
import argparse
import sys

from palkit.argtypes import output_file
from palkit.cli import ArgumentParser, UserError, run_main
from palkit.atomic import atomic_write, write_json

from metric.paper import COLUMNS, PAPER
from metric.result_folders import find_result_folders, group_by_system, parse_rule, read_infos, select
from metric.summary import build_row, epochs_table, markdown_table, read_result_folder

RULE_TITLES = {"given": "Result folders as given", "best_ppl": "Checkpoint: lowest validation PPL of each run",
               "every": "Every epoch"}


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter,
                            epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("result_dirs", nargs="+", help="result folders, or folders holding them")
    parser.add_argument("--select", nargs="+", default=None, metavar="RULE",
                        help="given, best_ppl, every, epoch:N (default: given, or best_ppl every for several epochs)")
    parser.add_argument("--names", nargs="+", default=None, help="row names, one per system (default: the system)")
    parser.add_argument("--compare_to", nargs="+", default=None, choices=sorted(PAPER) + ["none"],
                        help="paper row for the Δ row: one for all systems or one per system (default: each "
                             "system's own row; none: no Δ row)")
    parser.add_argument("--distinct", choices=["authors", "standard"], default="authors",
                        help="D-1/D-2: the authors' off-by-one Distinct (paper parity, default) or the standard one")
    parser.add_argument("--output", default=None, type=output_file, help="also write the Markdown here")
    parser.add_argument("--json", default=None, type=output_file,
                        help="write every cell (mean, sd, CI, per-seed values, folders) here")
    parser.add_argument("--plot", default=None, type=output_file,
                        help="write the metrics-per-epoch figure (PNG) here")
    args = parser.parse_args(argv)
    for rule in args.select or []:
        parse_rule(rule)
    return args


def default_rules(infos):
    runs = {}
    for info in infos:
        runs.setdefault((info.system, info.run_dir, info.train_seed), set()).add(info.epoch)
    return ["best_ppl", "every"] if any(len(epochs) > 1 for epochs in runs.values()) else ["given"]


def paper_rows(systems, args):
    """{system: paper key or None}."""
    if args.compare_to is None:
        return {s: (s if s in PAPER else None) for s in systems}
    if len(args.compare_to) not in (1, len(systems)):
        raise UserError(f"--compare_to gives {len(args.compare_to)} rows for {len(systems)} systems "
                        f"({', '.join(systems)}): give one for all, one per system, or leave it out (each system "
                        "is compared with its own paper row)")
    rows = args.compare_to * len(systems) if len(args.compare_to) == 1 else args.compare_to
    return {s: (None if r == "none" else r) for s, r in zip(systems, rows)}


def display_names(systems, infos, args):
    labels = {i.system: i.label for i in infos}
    if args.names is None:
        return {s: labels[s] for s in systems}
    if len(args.names) != len(systems):
        raise UserError(f"--names gives {len(args.names)} names for {len(systems)} systems ({', '.join(systems)})")
    return dict(zip(systems, args.names))


def chosen_epochs(rows):
    """Below a best_ppl table: the epoch each training run chose, per system ("PAL: seed 13 epoch 4, ...")."""
    lines = ["Epochs chosen (lowest validation PPL of each training run):\n"]
    for row in rows:
        picks = sorted({(str(f["training_seed"]), f["epoch"]) for f in row["selected"]})
        lines.append(f"- {row['name']}: " + ", ".join(f"seed {seed} epoch {epoch}" for seed, epoch in picks) + "\n")
    return "".join(lines)


def build_tables(infos, values, rules, names, papers):
    """[(rule, [(system or None, rows)])]: one table per rule, or per system for `every`."""
    tables = []
    for rule in rules:
        groups = select(infos, rule)
        if rule == "every":
            per_system = {}
            for (system, epoch), members in groups.items():
                per_system.setdefault(system, []).append(build_row(members, values, f"epoch {epoch}", papers[system],
                                                                   epoch))
            tables.append((rule, list(per_system.items())))
        else:
            rows = [build_row(members, values, names[system], papers[system]) for (system, _), members in
                    groups.items()]
            tables.append((rule, [(None, rows)]))
    return tables


def markdown(tables, names):
    parts = []
    titled = len(tables) > 1 or tables[0][0] != "given"
    for rule, sections in tables:
        for system, rows in sections:
            if titled:
                title = RULE_TITLES.get(rule, f"Checkpoint: epoch {rule.split(':')[-1]} of each run")
                parts.append(f"### {title}" + (f": {names[system]}" if system else "") + "\n\n")
            parts.append(epochs_table(rows) if system else markdown_table(rows))
            if rule == "best_ppl":
                parts.append("\n" + chosen_epochs(rows))
            if titled:
                parts.append("\n")
    return "".join(parts)


def epoch_curves(tables, names):
    """({label: {column: [(epoch, mean, sd)]}}, {label: [(epoch, mean, sd)]} validation PPL, once per run family)."""
    curves, val_ppl, seen_runs = {}, {}, {}
    for rule, sections in tables:
        if rule != "every":
            continue
        for system, rows in sections:
            label = names[system]
            curves[label] = {c: [(r["epoch"], r["cells"][c]["mean"], r["cells"][c]["sd"]) for r in rows
                                 if r["cells"][c]] for c in COLUMNS}
            runs = tuple(sorted(str(s["run_dir"]) for r in rows for s in r["selected"]))
            points = [(r["epoch"], r["validation_ppl"]["mean"], r["validation_ppl"]["sd"]) for r in rows
                      if r["validation_ppl"]]
            if runs in seen_runs:  # PAL α=0 decodes PAL's checkpoints: one validation curve for both
                old = seen_runs[runs]
                val_ppl[f"{old}, {label}"] = val_ppl.pop(old)
                seen_runs[runs] = f"{old}, {label}"
            elif points:
                val_ppl[label] = points
                seen_runs[runs] = label
    return curves, val_ppl


def main(argv=None):
    args = parse_args(argv)
    infos = read_infos(find_result_folders(args.result_dirs))
    values = {i.path: read_result_folder(i.path, args.distinct) for i in infos}
    systems = list(group_by_system(infos))
    rules = args.select or default_rules(infos)
    names, papers = display_names(systems, infos, args), paper_rows(systems, args)
    tables = build_tables(infos, values, rules, names, papers)
    text = markdown(tables, names)
    curves, val_ppl = epoch_curves(tables, names)
    if args.plot and not curves:  # checked before anything is written
        raise UserError("--plot draws metrics per epoch: add `every` to --select (needs the folders' epochs)")
    print(text, end="")
    if args.output:
        with atomic_write(args.output) as f:
            f.write(text)
        print(f"wrote {args.output}", file=sys.stderr)
    if args.json:
        write_json(args.json, {"paper": PAPER, "tables": [
            {"rule": rule, "system": system, "rows": rows} for rule, sections in tables for system, rows in sections]})
    if args.plot:
        from metric.plots import plot_epochs  # lazy: matplotlib takes seconds to import; only --plot needs it
        plot_epochs(curves, val_ppl, COLUMNS, args.plot)


if __name__ == "__main__":
    run_main(main)
