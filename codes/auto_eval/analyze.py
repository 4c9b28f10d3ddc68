"""The judge's tables of a study database (RUN/python -m auto_eval.analyze DB): per judge, system pair and criterion
its win/tie/loss and sign test, its position consistency (the same verdict in both orders) and first-position share,
its agreement with each human and with the human majority on the tasks both judged, and human-human agreement on
those tasks; each judge's table starts with its validity (auto_eval.validity). Then the simulated seekers (turns
asked again, conversations ended, their turns beside the real seekers' of the same cards) and the tokens and seconds
per model. Labels are taken from the first system of the pair (ordered by name): X / tie / Y.
"""
import itertools
import json
import os
from collections import Counter, defaultdict

from palkit.atomic import atomic_write, write_json
from palkit.argtypes import existing_file, output_dir
from palkit.cli import ArgumentParser, run_main

from auto_eval import seeker as seekers, store as auto_store
from auto_eval.judge import INVALID, TIE_MARGIN, VERDICTS, combine, combine_probabilities, outcome
from auto_eval.store import STATIC_CONVERSATION
from auto_eval.validity import validity_lines
from human_eval.agreement import cohen_kappa, percent_agreement, sign_test
from human_eval.analyze import output_stem as human_output_stem, stacked_bar_chart, win_tie_loss
from human_eval.store import Store


def read(db_path):
    """(tasks {id: (mode, a, b)}, judge rows (judge, task, conversation, criterion, shown_first, verdict,
    probabilities), human rows, annotator names, judges {name: (key, verdict mode, tie margin)}) of a study database
    (read only); None when no judge has run on it."""
    store = Store.read_only(db_path)
    try:
        if "auto_judgments" not in store.tables():
            return None
        columns = {r[1] for r in store.db.execute("PRAGMA table_info(auto_judgments)")}
        probabilities = "probabilities" if "probabilities" in columns else "NULL"  # a database of an older version
        auto = [(*r[:6], r[6] and json.loads(r[6])) for r in store.db.execute(
            f"SELECT judge, task_id, conversation_of, criterion, shown_first, verdict, {probabilities} FROM "
            f"auto_judgments ORDER BY judge, task_id, conversation_of, criterion, shown_first")]
        humans = [(task, annotator, criterion, choice)
                  for task, annotator, _, _, criterion, choice, _ in store.all_judgments()]
        return store.task_systems(), auto, humans, store.annotator_names(), auto_store.judges(store)
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


def summarise(tasks, auto, humans, names, judges=None, criteria_order=None):
    """{(judge, X, Y): {criterion: statistics}} (see the module docstring)."""
    orders = defaultdict(dict)  # (judge, task, conversation, criterion) -> {shown_first: (verdict, probabilities)}
    for judge, task, conv, criterion, first, verdict, probabilities in auto:
        orders[judge, task, conv, criterion][first] = (verdict, probabilities)
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
        _, mode, margin = (judges or {}).get(key[0], (None, "text", None))
        ordered = sorted(by_criterion.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
        out[key] = {c: criterion_stats(tasks, units, human_labels[c], names, mode, margin) for c, units in ordered}
    return out


def criterion_stats(tasks, units, human_labels, names, mode="text", tie_margin=None):
    """units: [(task, conversation, {shown_first: (verdict, probabilities)})]; human_labels: {task: {annotator:
    label}}. A prob judge's pair verdict comes from both orders' probabilities averaged (judge.combine_probabilities);
    a text judge's from its two verdicts (judge.combine). ties = tie_answers (a tie said, or orders that agree on no
    side) + order_flips (one order chose A, the other B: the verdict followed the position)."""
    complete = [(t, conv, v) for t, conv, v in units if len(v) == 2]
    judge_labels = {}
    first_shown = Counter()
    both_valid = consistent = invalid = flips = 0
    for task, conv, verdicts in complete:
        (first, first_p), (second, second_p) = verdicts["A"], verdicts["B"]
        if mode == "prob":
            combined = combine_probabilities(first_p, second_p, TIE_MARGIN if tie_margin is None else tie_margin)[0]
        else:
            combined = combine(first, second)
        if INVALID not in (first, second):
            both_valid += 1
            consistent += first == second
        if combined == INVALID:
            invalid += 1
        else:
            flips += outcome(first, second, combined) == "flip"
            judge_labels[task, conv] = pair_label(combined, *tasks[task][1:])
        for shown, (verdict, _) in verdicts.items():
            if verdict in ("A", "B"):
                first_shown[verdict == shown] += 1
    labels = list(judge_labels.values())
    wins, ties, losses = labels.count("win"), labels.count("tie"), labels.count("loss")
    stats = {"units": len(complete), "verdict_mode": mode, "wins": wins, "ties": ties, "losses": losses,
             "tie_answers": ties - flips, "order_flips": flips, "invalid": invalid,
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


def markdown(summary, judges=None):
    lines = ["## LLM judge", "",
             "Each pair judged in both orders. Text verdicts: two equal answers stand, two that differ are a tie "
             "(an order flip when one chose A and the other B); an unreadable answer (after one constrained retry or "
             "follow-up) is invalid. Prob verdicts: the probabilities of A / B / tie of both orders averaged, a tie "
             "below the tie margin. Consistency: both orders gave the same verdict (of the units with two valid "
             "answers); first shown: share of A/B answers that chose the conversation shown first (50% = no position "
             "bias). Agreement: percent and Cohen's κ, with ties / without ties.", ""]
    for (judge, x, y), by_criterion in summary.items():
        key, mode, _ = (judges or {}).get(judge, (None, None, None))
        lines += [f"### judge {judge}: {x} vs {y}", ""]
        lines += [f"Judge {judge}" + (f" ({mode} verdicts)" if mode else "") + f": {line}"
                  for line in validity_lines(key, mode)] + [""]
        lines += [f"| criterion | {x} wins | tie (said / order flip) | {y} wins | invalid | sign-test p | consistency (flips) | "
                  f"first shown | vs human majority | w/o ties | human-human | w/o ties |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for c, s in by_criterion.items():
            m, h = s["vs_human_majority"], s["human_human"]
            lines.append(f"| {c} | {s['wins']} | {s['ties']} ({s['tie_answers']} / {s['order_flips']}) | {s['losses']} | "
                         f"{s['invalid']} | {s['p_sign']:.4f} | "
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
    """One panel per judge and pair: a stacked bar per criterion (X wins / tie said / order flip / Y wins / invalid,
    % of the pairs judged in both orders), its position consistency beside it. An order flip (hatched red) is the
    judge following the position, not a verdict that the systems are equal."""
    wins, _, losses = win_tie_loss("X", "Y")
    segments = lambda x, y: [(wins[0], f"{x} wins", wins[2]), ("tie_answers", "tie (said)", "#c9c9c9"),
                             ("order_flips", "order flip (position bias)", "#d62728"),
                             (losses[0], f"{y} wins", losses[2]), ("invalid", "invalid", "#8c564b")]
    stacked_bar_chart([(f"judge {judge}: {x} vs {y}", by_criterion, segments(x, y), "units")
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
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'auto_endings'").fetchone():  # (an older database has none)
        for model, calls, seconds, usage in db.execute(
                "SELECT seeker_model, seeker_calls, seeker_seconds, seeker_usage FROM auto_endings"):
            add((model, "seeker"), calls, seconds, usage)
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


def seeker_summary(store):
    """[{seeker, conversations, turns, asked_again {kind: n}, ended {kind: n}, simulated (seeker.style), real
    (seeker.style of the real ESConv seekers of the study's cards)}], one per simulated seeker model. Turns: the
    seeker's own turns (the card's first utterance left out on both sides)."""
    if "auto_seekers" not in store.tables():
        return []
    cards = (store.get_meta("setup") or {}).get("cards") or []
    real = [t for card in cards for t in (card.get("seeker_turns") or [])[1:]]
    out = []
    for annotator, model in store.db.execute("SELECT annotator_id, model FROM auto_seekers ORDER BY model"):
        turns = store.db.execute("SELECT task_id, side, role_break FROM auto_turns WHERE annotator_id = ? AND turn > 0",
                                 (annotator,)).fetchall()
        sides = {(r[0], r[1]) for r in store.db.execute(
            "SELECT task_id, side FROM auto_turns WHERE annotator_id = ?", (annotator,))}
        endings = [r[0] for r in store.db.execute("SELECT reason FROM auto_endings WHERE annotator_id = ?",
                                                  (annotator,))]
        texts = [m["text"] for task in sorted({t for t, _ in sides}) for side in "AB"
                 for m in store.messages(task, annotator, side)[1:] if m["speaker"] == "usr"]
        out.append({"seeker": model, "conversations": len(sides), "turns": len(turns),
                    "asked_again": dict(Counter(seekers.reason_kind(r[2]) for r in turns if r[2])),
                    "ended": dict(Counter(seekers.reason_kind(r) for r in endings)),
                    "simulated": seekers.style(texts), "real": seekers.style(real)})
    return out


def seeker_markdown(summary):
    if not summary:
        return ""
    kinds = ("role break", "repeat", "empty")
    lines = ["## Simulated seekers", "",
             "A seeker turn that breaks its role (acts as the supporter; empty) or repeats its previous turn is asked "
             "again once; when it breaks again the conversation with that supporter ends there.", "",
             "| seeker | conversations | seeker turns | asked again (role break / repeat / empty) | conversations ended "
             "(role break / repeat / empty) |", "|---|---|---|---|---|"]
    for s in summary:
        again = " / ".join(str(s["asked_again"].get(k, 0)) for k in kinds)
        ended = " / ".join(str(s["ended"].get(k, 0)) for k in kinds)
        lines.append(f"| {s['seeker']} | {s['conversations']} | {s['turns']} | {again} | {ended} |")
    lines += ["", "Seeker turns after the first utterance, simulated beside the real ESConv seekers of the same cards "
                  "(words per turn; share of turns with '?'; distinct bigrams / bigrams; share of turns in the first "
                  "person):", "", "| seekers | turns | words per turn | questions | distinct-2 | first person |",
              "|---|---|---|---|---|---|"]
    rows = [(f"{s['seeker']} (simulated)", s["simulated"]) for s in summary]
    rows.append(("ESConv seekers (real, same cards)", summary[0]["real"]))
    for name, st in rows:
        lines.append(f"| {name} | – | – | – | – | – |" if st is None else
                     f"| {name} | {st['turns']} | {st['words_per_turn']:.1f} | {pct(st['question_share'])} | "
                     f"{num(st['distinct_2'])} | {pct(st['first_person_share'])} |")
    return "\n".join(lines) + "\n"


def report(db_path, output, criteria_order=None):
    """Print the judge's tables, the simulated seekers' and the usage, and write them as OUTPUT.md / .json / .png
    (the chart: the judges' verdicts); False when the database holds no automatic evaluation."""
    data = read(db_path)
    store = Store.read_only(db_path)
    try:
        seeker_rows = seeker_summary(store)
        usage = usage_markdown(store.db) if "auto_turns" in store.tables() else ""
    finally:
        store.close()
    judged = data is not None and bool(data[1])
    if not judged and not seeker_rows:
        return False
    summary = summarise(*data, criteria_order=criteria_order) if judged else {}
    table = (markdown(summary, data[4]) + "\n" if judged else "No LLM judge has judged this study yet.\n\n")
    table += seeker_markdown(seeker_rows) + ("\n" + usage if usage else "")
    with atomic_write(output + ".md") as f:
        f.write(table)
    write_json(output + ".json", {"judges": [{"judge": j, "system_x": x, "system_y": y, "criterion": c, **s}
                                             for (j, x, y), by_c in summary.items() for c, s in by_c.items()],
                                  "seekers": seeker_rows})
    if judged:
        bar_chart(summary, output + ".png")
    print(table, end="")
    print(f"wrote {output}.md, {output}.json" + (f", {output}.png" if judged else ""))
    return True


def output_stem(db_path, output=None, output_dir=None):
    """Where the report goes, without extension: --output (a .md/.json/.png ending dropped), else DB_STEM.judge
    beside the database or in --output_dir (study.db -> study.judge.md; human_eval.analyze writes study.md)."""
    return human_output_stem(db_path, output) if output else human_output_stem(db_path, None, output_dir) + ".judge"


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
    if not report(args.db, stem, setup.get("criteria")):
        print(f"No automatic evaluation in {args.db} yet (RUN/python -m auto_eval run|static|judge).")


if __name__ == "__main__":
    run_main(main)
