"""The judge's tables of a study database: per judge, system pair and criterion its win/tie/loss and sign test, its position consistency (the same verdict in both orders) and first-position share, its agreement with each
human and with the human majority on the tasks both judged, and human-human agreement on those tasks; plus tokens
and seconds per model. Labels are taken from the first system of the pair (ordered by name): X / tie / Y.
"""
import itertools
import json
import os
from collections import Counter, defaultdict

from palkit.atomic import atomic_write, write_json
from palkit.checks import existing_file, output_dir, require_output_dir
from palkit.cli import ArgumentParser, run_main

from auto_eval.judge import INVALID, VERDICTS, combine
from auto_eval.store import STATIC_CONVERSATION
from human_eval.agreement import cohen_kappa, percent_agreement, sign_test
from human_eval.analyze import stacked_bar_chart, win_tie_loss
from human_eval.store import Store


def read(db_path):
    """(tasks {id: (mode, a, b)}, judge rows, human rows, annotator names) of a study database (read only); None
    when no judge has run on it."""
    store = Store.read_only(db_path)
    try:
        if "auto_judgments" not in store.tables():
            return None
        auto = [tuple(r) for r in store.db.execute(
            "SELECT judge, task_id, conversation_of, criterion, shown_first, verdict FROM auto_judgments "
            "ORDER BY judge, task_id, conversation_of, criterion, shown_first")]
        humans = [(task, annotator, criterion, choice)
                  for task, annotator, _, _, criterion, choice, _ in store.all_judgments()]
        return store.task_systems(), auto, humans, store.annotator_names()
    finally:
        store.close()


def pair_label(choice, system_a, system_b):
    """A task-side choice ('A'/'B'/'tie') as X / tie / Y of the name-ordered pair: 'win' (X), 'tie', 'loss' (Y)."""
    if choice == "tie":
        return "tie"
    winner = system_a if choice == "A" else system_b
    return "win" if winner == min(system_a, system_b) else "loss"


def majority(labels):
    """The label more than half of `labels` carry, else None."""
    if not labels:
        return None
    label, count = Counter(labels).most_common(1)[0]
    return label if 2 * count > len(labels) else None


def agreement(pairs):
    """Percent agreement and Cohen's kappa over label pairs, with ties and without (pairs where neither is a tie)."""
    no_ties = [(a, b) for a, b in pairs if "tie" not in (a, b)]
    return {"n": len(pairs), "percent": percent_agreement(pairs), "kappa": cohen_kappa(pairs),
            "n_without_ties": len(no_ties), "percent_without_ties": percent_agreement(no_ties),
            "kappa_without_ties": cohen_kappa(no_ties)}


def summarise(tasks, auto, humans, names, criteria_order=None):
    """{(judge, X, Y): {criterion: statistics}} (see the module docstring)."""
    orders = defaultdict(dict)  # (judge, task, conversation, criterion) -> {shown_first: verdict}
    for judge, task, conv, criterion, first, verdict in auto:
        orders[judge, task, conv, criterion][first] = verdict
    human_labels = defaultdict(lambda: defaultdict(dict))  # criterion -> task -> {annotator: label}
    for task, annotator, criterion, choice in humans:
        if choice in VERDICTS:  # anything else (a skipped question) is no label
            human_labels[criterion][task][annotator] = pair_label(choice, *tasks[task][1:])
    groups = defaultdict(lambda: defaultdict(list))
    for (judge, task, conv, criterion), verdicts in orders.items():
        _, a, b = tasks[task]
        groups[(judge, *sorted((a, b)))][criterion].append((task, conv, verdicts))
    order = {c: i for i, c in enumerate(criteria_order or [])}
    out = {}
    for key, by_criterion in sorted(groups.items()):
        ordered = sorted(by_criterion.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
        out[key] = {c: criterion_stats(tasks, units, human_labels[c], names) for c, units in ordered}
    return out


def criterion_stats(tasks, units, human_labels, names):
    """units: [(task, conversation, {shown_first: verdict})]; human_labels: {task: {annotator: label}}."""
    complete = [(t, conv, v) for t, conv, v in units if len(v) == 2]
    judge_labels = {}
    first_shown = Counter()
    both_valid = consistent = invalid = 0
    for task, conv, verdicts in complete:
        combined = combine(verdicts["A"], verdicts["B"])
        if combined == INVALID:
            invalid += 1
        else:
            both_valid += 1
            consistent += verdicts["A"] == verdicts["B"]
            judge_labels[task, conv] = pair_label(combined, *tasks[task][1:])
        for first, verdict in verdicts.items():
            if verdict in ("A", "B"):
                first_shown[verdict == first] += 1
    labels = list(judge_labels.values())
    wins, ties, losses = labels.count("win"), labels.count("tie"), labels.count("loss")
    stats = {"units": len(complete), "wins": wins, "ties": ties, "losses": losses, "invalid": invalid,
             "p_sign": sign_test(wins, losses), "both_orders_valid": both_valid, "consistent": consistent,
             "flips": both_valid - consistent,
             "position_consistency": consistent / both_valid if both_valid else None,
             "first_shown_share": (first_shown[True] / sum(first_shown.values())) if first_shown else None}
    per_human = defaultdict(list)
    with_majority, between_humans = [], []
    judged_tasks = defaultdict(list)  # task -> the judge's labels on the conversations the humans judged
    for task, by_annotator in human_labels.items():
        static = tasks[task][0] == "static"
        for annotator, label in by_annotator.items():
            conv = STATIC_CONVERSATION if static else annotator
            if (task, conv) in judge_labels:
                per_human[names.get(annotator, str(annotator))].append((judge_labels[task, conv], label))
                if not static or not judged_tasks[task]:
                    judged_tasks[task].append(judge_labels[task, conv])
        if judged_tasks.get(task):
            judge_majority, human_majority = majority(judged_tasks[task]), majority(list(by_annotator.values()))
            if judge_majority is not None and human_majority is not None:
                with_majority.append((judge_majority, human_majority))
            between_humans += list(itertools.combinations(by_annotator.values(), 2))
    stats["vs_humans"] = {name: agreement(pairs) for name, pairs in sorted(per_human.items())}
    stats["vs_human_majority"] = agreement(with_majority)
    stats["human_human"] = agreement(between_humans)
    return stats


def pct(value):
    return "–" if value is None else f"{100 * value:.0f}%"


def num(value):
    return "–" if value is None else f"{value:.3f}"


def markdown(summary):
    lines = ["## LLM judge", "",
             "Each pair judged in both orders; a verdict that flips with the order counts as a tie; an unreadable "
             "answer (after one retry) is invalid. Consistency: both orders gave the same verdict (of the units with "
             "two valid answers); first shown: share of A/B answers that chose the conversation shown first "
             "(50% = no position bias). Agreement: percent and Cohen's κ, with ties / without ties.", ""]
    for (judge, x, y), by_criterion in summary.items():
        lines += [f"### judge {judge}: {x} vs {y}", "",
                  f"| criterion | {x} wins | tie | {y} wins | invalid | sign-test p | consistency (flips) | "
                  f"first shown | vs human majority | w/o ties | human-human | w/o ties |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for c, s in by_criterion.items():
            m, h = s["vs_human_majority"], s["human_human"]
            lines.append(f"| {c} | {s['wins']} | {s['ties']} | {s['losses']} | {s['invalid']} | {s['p_sign']:.4f} | "
                         f"{pct(s['position_consistency'])} ({s['flips']}/{s['both_orders_valid']}) | "
                         f"{pct(s['first_shown_share'])} | {agreement_cell(m, '')} | {agreement_cell(m, '_without_ties')} | "
                         f"{agreement_cell(h, '')} | {agreement_cell(h, '_without_ties')} |")
        every = [s for s in by_criterion.values()]
        valid, consistent = sum(s["both_orders_valid"] for s in every), sum(s["consistent"] for s in every)
        lines += ["", f"All criteria: position consistency {pct(consistent / valid if valid else None)} "
                      f"({valid - consistent} flips in {valid} pairs with two valid answers), "
                      f"{sum(s['invalid'] for s in every)} invalid of {sum(s['units'] for s in every)}.", ""]
        humans = [(c, name, a) for c, s in by_criterion.items() for name, a in s["vs_humans"].items()]
        if humans:
            lines += ["| criterion | judge vs human | agreement (n) | κ | w/o ties (n) | κ w/o ties |",
                      "|---|---|---|---|---|---|"]
            lines += [f"| {c} | {name} | {pct(a['percent'])} ({a['n']}) | {num(a['kappa'])} | "
                      f"{pct(a['percent_without_ties'])} ({a['n_without_ties']}) | {num(a['kappa_without_ties'])} |"
                      for c, name, a in humans]
            lines.append("")
    return "\n".join(lines) + "\n"


def agreement_cell(a, suffix):
    n = a["n" + suffix]
    return "–" if not n else f"{pct(a['percent' + suffix])}, κ {num(a['kappa' + suffix])} (n={n})"


def bar_chart(summary, path):
    """One panel per judge and pair: a stacked bar per criterion (X wins / tie / Y wins / invalid, % of the pairs
    judged in both orders), its position consistency beside it."""
    invalid = [("invalid", "invalid", "#8c564b")]
    stacked_bar_chart([(f"judge {judge}: {x} vs {y}", by_criterion, win_tie_loss(x, y) + invalid, "units")
                       for (judge, x, y), by_criterion in summary.items()], path, "% of pairs judged in both orders",
                      note=lambda s: f"consistency {pct(s['position_consistency'])}")


def usage_rows(db):
    """[(model, role, calls, seconds, {usage key: sum})] from the auto tables of an open connection."""
    rows = []
    per = defaultdict(lambda: [0, 0.0, Counter()])

    def add(key, calls, seconds, usage):
        per[key][0] += calls
        per[key][1] += seconds
        per[key][2].update(json.loads(usage))
    for model, calls, seconds, usage in db.execute(
            "SELECT seeker_model, seeker_calls, seeker_seconds, seeker_usage FROM auto_turns"):
        add((model, "seeker"), calls, seconds, usage)
    for system, seconds, usage in db.execute("SELECT system, supporter_seconds, supporter_usage FROM auto_turns"):
        add((system, "supporter"), 1, seconds, usage)
    for judge, calls, seconds, usage in db.execute("SELECT judge, attempts, seconds, usage FROM auto_judgments"):
        add((judge, "judge"), calls, seconds, usage)
    for (model, role), (calls, seconds, usage) in sorted(per.items()):
        rows.append((model, role, calls, seconds, dict(usage)))
    return rows


def usage_markdown(db):
    rows = usage_rows(db)
    if not rows:
        return ""
    keys = sorted({k for *_, usage in rows for k in usage})
    lines = ["| model | role | calls | seconds | " + " | ".join(keys) + " |", "|---" * (4 + len(keys)) + "|"]
    lines += [f"| {m} | {r} | {c} | {s:.1f} | " + " | ".join(str(u.get(k, "–")) for k in keys) + " |"
              for m, r, c, s, u in rows]
    return "\n".join(["Tokens and seconds per model (model calls, wall seconds inside them; – where the system does "
                      "not report that count):", ""] + lines) + "\n"


def judge_report(db_path, output, criteria_order=None):
    """Print the judge's tables and write them as OUTPUT.md / .json / .png; False when no judge has run."""
    data = read(db_path)
    if data is None or not data[1]:
        return False
    summary = summarise(*data, criteria_order=criteria_order)
    store = Store.read_only(db_path)
    try:
        table = markdown(summary) + "\n" + usage_markdown(store.db)
    finally:
        store.close()
    with atomic_write(output + ".md") as f:
        f.write(table)
    write_json(output + ".json", [{"judge": j, "system_x": x, "system_y": y, "criterion": c, **s}
                                  for (j, x, y), by_c in summary.items() for c, s in by_c.items()])
    bar_chart(summary, output + ".png")
    print(table, end="")
    print(f"wrote {output}.md, {output}.json, {output}.png")
    return True


def output_stem(db_path, output=None, output_dir=None):
    """Where the report goes, without extension: --output (its .md/.json/.png dropped), else DB_STEM.judge beside
    the database or in --output_dir (study.db -> study.judge.md), so each database keeps its own report."""
    if output:
        stem, ext = os.path.splitext(output)
        return stem if ext in (".md", ".json", ".png") else output
    folder = require_output_dir(output_dir or os.path.dirname(os.path.abspath(db_path)))
    return os.path.join(folder, os.path.splitext(os.path.basename(db_path))[0] + ".judge")


def main(argv=None):
    p = ArgumentParser(prog="RUN/python -m auto_eval.analyze", description=__doc__.split("\n\n")[0])
    p.add_argument("db", type=existing_file)
    p.add_argument("--output", default=None, help="the report's path without extension (or with .md): OUTPUT.md, "
                                                  ".json, .png (default: DB_STEM.judge beside the database)")
    p.add_argument("--output_dir", default=None, type=output_dir, help="default: the database's folder")
    args = p.parse_args(argv)
    store = Store.read_only(args.db)
    try:
        setup = store.get_meta("setup") or {}
    finally:
        store.close()
    stem = output_stem(args.db, args.output, args.output_dir)
    if not judge_report(args.db, stem, setup.get("criteria")):
        print(f"No LLM judge has judged {args.db} yet (RUN/python -m auto_eval run|static|judge).")


if __name__ == "__main__":
    run_main(main)
