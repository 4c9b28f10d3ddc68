"""Analyse a human-evaluation database: win/tie/loss per criterion and system pair, sign tests, agreement.

    RUN/python -m human_eval.analyze DB [--output_dir DIR | --output PATH]

Writes DB_STEM.md (the table, also printed), DB_STEM.json (every number) and DB_STEM.png (bar chart) beside the
database (study.db -> study.md; --output_dir DIR: in DIR; --output PATH: PATH.md, .json, .png). An LLM judge's
verdicts on the study are reported by `RUN/python -m auto_eval.analyze DB` (printed here when it has run). A pair
(X, Y) is ordered by name; "X wins" counts judgments that preferred X. Agreement is computed over tasks judged by
two or more annotators, on the labels X / tie / Y.
"""
import os
from collections import defaultdict

from palkit.argtypes import existing_file, output_dir
from palkit.paths import require_output_dir
from palkit.cli import ArgumentParser, UserError, run_main
from palkit.atomic import atomic_write, write_json

from human_eval.agreement import fleiss_kappa, krippendorff_alpha, sign_test
from human_eval.store import Store

JUDGE_TABLES = "auto_judgments"  # where the automatic evaluation (package auto_eval) keeps an LLM judge's verdicts


def read_study(db_path):
    """(human judgment rows [(task_id, annotator_id, system_a, system_b, criterion, winner)], the study's criteria
    in order (or None), whether an LLM judge's verdicts are stored too)."""
    if not os.path.isfile(db_path):
        raise UserError(f"{db_path}: no such database (RUN/python -m human_eval creates it)")
    store = Store.read_only(db_path)
    try:
        rows = [(task, annotator, a, b, criterion, winner)
                for task, annotator, a, b, criterion, _, winner in store.all_judgments()]
        return rows, (store.get_meta("setup") or {}).get("criteria"), store.has_rows(JUDGE_TABLES)
    finally:
        store.close()


def summarise(rows, criteria_order=None):
    """{(X, Y): {criterion: {wins, ties, losses, n, p_sign, fleiss_kappa, krippendorff_alpha, annotated_tasks}}}."""
    labels = defaultdict(lambda: defaultdict(list))  # (pair, criterion) -> task -> labels
    for task_id, _annotator, a, b, criterion, winner in rows:
        pair = tuple(sorted((a, b)))
        label = "win" if winner == pair[0] else "loss" if winner == pair[1] else "tie"
        labels[pair, criterion][task_id].append(label)
    out = defaultdict(dict)
    for (pair, criterion), per_task in labels.items():
        flat = [label for units in per_task.values() for label in units]
        wins, ties, losses = flat.count("win"), flat.count("tie"), flat.count("loss")
        units = list(per_task.values())
        out[pair][criterion] = {"wins": wins, "ties": ties, "losses": losses, "n": len(flat),
                                "p_sign": sign_test(wins, losses), "fleiss_kappa": fleiss_kappa(units),
                                "krippendorff_alpha": krippendorff_alpha(units),
                                "multiply_annotated_tasks": sum(len(u) >= 2 for u in units)}
    order = {c: i for i, c in enumerate(criteria_order or [])}
    return {pair: dict(sorted(by_c.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
            for pair, by_c in sorted(out.items())}


def fmt(value, digits=3):
    return "–" if value is None else f"{value:.{digits}f}"


def markdown(summary):
    lines = []
    for (x, y), by_criterion in summary.items():
        lines += [f"### {x} vs {y}", "",
                  f"| criterion | {x} wins | tie | {y} wins | n | sign-test p | Fleiss κ | Krippendorff α |",
                  "|---|---|---|---|---|---|---|---|"]
        for criterion, s in by_criterion.items():
            pct = [f"{c} ({100 * c / s['n']:.0f}%)" for c in (s["wins"], s["ties"], s["losses"])]
            lines.append(f"| {criterion} | {' | '.join(pct)} | {s['n']} | {fmt(s['p_sign'], 4)} | "
                         f"{fmt(s['fleiss_kappa'])} | {fmt(s['krippendorff_alpha'])} |")
        lines.append("")
    if not summary:
        lines.append("No judgments yet.")
    return "\n".join(lines) + "\n"


def bar_chart(summary, path):
    """One panel per pair: a stacked horizontal bar per criterion (X wins / tie / Y wins, % of judgments)."""
    stacked_bar_chart([(f"{x} vs {y}", by_criterion, win_tie_loss(x, y), "n") for (x, y), by_criterion in
                       summary.items()], path, "% of judgments")


def win_tie_loss(x, y):
    """The bar segments of a pair: (statistic, legend label, colour)."""
    return [("wins", f"{x} wins", "#3b7dd8"), ("ties", "tie", "#c9c9c9"), ("losses", f"{y} wins", "#e07b39")]


def stacked_bar_chart(panels, path, xlabel, note=None):
    """panels: [(title, {criterion: statistics}, segments, the statistic that is 100%)], one stacked horizontal bar
    per criterion; note(statistics) is written right of each bar when given."""
    import matplotlib  # lazy: plotting is the report's last step
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: plotting is the report's last step
    fig, axes = plt.subplots(len(panels), 1, squeeze=False, figsize=(
        8.5 + (0.5 if note else 0), 0.5 + 0.45 * sum(len(p[1]) for p in panels) + 0.6 * len(panels)))
    for ax, (title, by_criterion, segments, total) in zip(axes[:, 0], panels):
        names = list(by_criterion)[::-1]
        left = [0.0] * len(names)
        for key, label, color in segments:
            share = [100 * by_criterion[c][key] / max(by_criterion[c][total], 1) for c in names]
            ax.barh(names, share, left=left, color=color, label=label)
            left = [a + b for a, b in zip(left, share)]
        for i, c in enumerate(names if note else []):
            ax.text(101, i, note(by_criterion[c]), va="center", fontsize=8)
        ax.set_xlim(0, 100)
        ax.set_xlabel(xlabel)
        ax.set_title(title)
        ax.legend(loc="center left", bbox_to_anchor=(1.2 if note else 1.01, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


def output_stem(db_path, output=None, out_dir=None):
    """The report's path without extension: --output (a .md/.json/.png ending dropped), else the database's name
    in --output_dir or beside the database (study.db -> study), so two databases in one folder keep their reports."""
    if output:
        require_output_dir(os.path.dirname(os.path.abspath(output)))
        stem, ext = os.path.splitext(output)
        return stem if ext in (".md", ".json", ".png") else output
    folder = require_output_dir(out_dir or os.path.dirname(os.path.abspath(db_path)))
    return os.path.join(folder, os.path.splitext(os.path.basename(db_path))[0])


def main(argv=None):
    p = ArgumentParser(prog="RUN/python -m human_eval.analyze", description=__doc__.split("\n\n")[0])
    p.add_argument("db", type=existing_file)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--output_dir", default=None, type=output_dir,
                     help="write DB_STEM.md/.json/.png here (default: the database's folder)")
    out.add_argument("--output", default=None, help="write OUTPUT.md, OUTPUT.json, OUTPUT.png")
    args = p.parse_args(argv)
    stem = output_stem(args.db, args.output, args.output_dir)
    rows, criteria, judged_by_llm = read_study(args.db)
    pointer = f"RUN/python -m auto_eval.analyze {args.db}"
    if not rows and judged_by_llm:
        print(f"No human judgments in {args.db}: it holds an LLM judge's verdicts only; their tables: {pointer}")
        return
    summary = summarise(rows, criteria)
    table = markdown(summary)
    with atomic_write(stem + ".md") as f:
        f.write(table)
    write_json(stem + ".json", [{"system_x": x, "system_y": y, "criterion": c, **s}
                                for (x, y), by_c in summary.items() for c, s in by_c.items()])
    if summary:
        bar_chart(summary, stem + ".png")
    print(table, end="")
    print(f"wrote {stem}.md, {stem}.json" + (f", {stem}.png" if summary else ""))
    if judged_by_llm:
        print(f"An LLM judge has judged this study too; its tables and its agreement with these humans: {pointer}")


if __name__ == "__main__":
    run_main(main)
