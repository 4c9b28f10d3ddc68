"""Can this judge be trusted? Its verdicts on pairs of real ESConv conversations against the help-seekers' own
ratings of their supporters (README "Can this judge be trusted?").

Pairs: two dialogues of ESConv.json with the same problem type whose seekers rated them apart (RATINGS), drawn
without replacement from all such pairs with a fixed seed. Each pair is judged in both orders with the study's
question of the criterion the rating maps to (RATING_CRITERION), each conversation shown with its own seeker's card
(prompts/validate.json). The judge agrees with a pair when it prefers the conversation its seeker rated higher; a
tie (and an invalid verdict) counts half. Trivial judges on the same pairs (BASELINES) say what agreement is worth.
The rows are kept in DIR/judge_validity.db, one transaction per group of judgments, so a killed validation finishes
with the same command and ends with the rows of an uninterrupted one.
"""
import os
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from palkit.atomic import atomic_write, file_sha256, write_json
from palkit.loaders import load_json
from palkit.cli import UserError

from auto_eval import judge as judging, store as auto_store, validity
from auto_eval.study import progress_bar
from human_eval.agreement import wilson_interval
from human_eval.tasks import load_criteria
from pal.dialogues import normalise, turn_fields

RATINGS = ("empathy", "relevance", "improvement")
# The study criterion whose question each rating is compared with: a seeker's empathy rating ("how much did the
# supporter understand and empathise with you") with Comforting; relevance ("how relevant were the supporter's
# replies to your problem") with Identification (exploring and identifying the seeker's problem); the drop of the
# seeker's emotion intensity over the conversation (how much the support helped) with Overall.
RATING_CRITERION = {"empathy": "Comforting", "relevance": "Identification", "improvement": "Overall"}
HIGH, LOW = 5, 3  # empathy / relevance: a seeker who gave 5 against one who gave at most 3
MIN_IMPROVEMENT_GAP = 2  # improvement (initial - final emotion intensity): the two differ by at least this
BASELINES = ("random", "length", "questions")
SHOWN_FIRST = {"A": "better", "B": "worse"}  # the pair's side A is the better-rated conversation
PAIR_TERMS = {"A": "better", "B": "worse", "tie": "tie", judging.INVALID: judging.INVALID}
SCORE = {"better": 1.0, "tie": 0.5, judging.INVALID: 0.5, "worse": 0.0}
CHUNK = 8  # judgments asked together and stored in one transaction
RELIABILITY_BINS = 5  # the reliability curve's bins, each with a fifth of the pairs
REPO = Path(__file__).resolve().parents[2]
ESCONV_CANDIDATES = ("DATA/ESConv.json", str(REPO / "DATA" / "ESConv.json"),
                     str(REPO.parent / "shared" / "data" / "esconv" / "ESConv.json"))


@dataclass
class Validation:
    """What one validation is (built once by the command line)."""
    esconv: str
    rating: str = "empathy"
    pairs: int = 200
    seed: int = 13
    output: str = ""
    mode: str | None = None  # None: prob where the judge gives probabilities
    tie_margin: float = judging.TIE_MARGIN
    temperature: float = 0.0
    max_turns: int | None = None
    concurrency: int = 1
    bf16: bool = False
    judge_prompt: str = judging.JUDGE_PROMPT
    validation_prompt: str = judging.VALIDATION_PROMPT
    criteria: str = ""
    progress: bool = True


# ---- ESConv and the pairs -------------------------------------------------------------------------------------------
def default_esconv():
    """DATA/ESConv.json (here or in the checkout), else ../shared's beside the checkout; None when neither."""
    return next((p for p in ESCONV_CANDIDATES if os.path.isfile(p)), None)


def load_esconv(path):
    """The dialogues of an ESConv.json (its order: a pair names dialogues by their 0-based index); a file none of
    whose dialogues carries the seekers' survey scores is a UserError."""
    dialogues = load_json(path, expect=list, hint="give the original ESConv.json (a JSON array of dialogues)")
    if not any(seeker_score(d, "empathy") is not None for d in dialogues):
        raise UserError(f"{path}: no dialogue has the seekers' survey scores (survey_score.seeker.empathy, "
                        f".relevance, initial_/final_emotion_intensity); the validation needs the original ESConv.json")
    return dialogues


def seeker_score(dialogue, rating):
    """The seeker's own rating of one dialogue (int), None when it has none. improvement = initial - final emotion
    intensity."""
    scores = ((dialogue.get("survey_score") or {}).get("seeker") or {}) if isinstance(dialogue, dict) else {}
    keys = ("initial_emotion_intensity", "final_emotion_intensity") if rating == "improvement" else (rating,)
    try:
        values = [int(scores[k]) for k in keys]
    except (KeyError, TypeError, ValueError):
        return None
    return values[0] - values[1] if rating == "improvement" else values[0]


def rated_apart(better, worse, rating):
    """Whether a seeker's rating `better` stands far enough above `worse` (module docstring)."""
    if rating == "improvement":
        return better - worse >= MIN_IMPROVEMENT_GAP
    return better == HIGH and worse <= LOW


def draw_pairs(dialogues, rating, n, seed):
    """(pairs, how many exist): n pairs drawn without replacement (all when fewer exist) from every (better, worse)
    of the same problem type rated apart, each {better, worse (ESConv indices), better_rating, worse_rating,
    problem_type}."""
    scored = [(i, seeker_score(d, rating), d.get("problem_type")) for i, d in enumerate(dialogues)]
    scored = [s for s in scored if s[1] is not None]
    eligible = [(i, j) for i, ri, pi in scored for j, rj, pj in scored if pi == pj and rated_apart(ri, rj, rating)]
    drawn = random.Random(seed).sample(eligible, min(n, len(eligible)))
    score = {i: r for i, r, _ in scored}
    return [{"better": i, "worse": j, "better_rating": score[i], "worse_rating": score[j],
             "problem_type": dialogues[i]["problem_type"]} for i, j in drawn], len(eligible)


def messages_of(dialogue, where):
    """The dialogue's turns as {speaker: usr|sys, text}."""
    out = []
    for k, turn in enumerate(dialogue.get("dialog") or []):
        speaker, text, _ = turn_fields(turn, f"{where}: turn {k}")
        out.append({"speaker": speaker, "text": normalise(text)})
    return out


def card_of(dialogue):
    return {"emotion": dialogue.get("emotion_type"), "problem": dialogue.get("problem_type"),
            "situation": normalise(dialogue.get("situation") or "")}


# ---- fitting the judge's context ------------------------------------------------------------------------------------
def turns_shown(judge, prompt, question, better, worse, answer_tokens, max_turns, where):
    """K: both conversations are shown as their first K turns (None: whole). With max_turns, at most that many;
    a judge that counts its tokens (a local LLM) gets the largest K whose prompts (both orders) fit its context with
    room for the answer; a prompt that does not fit with one turn each is a UserError."""
    longest = max(len(better["transcript"]), len(worse["transcript"]))
    cap = min(longest, max_turns) if max_turns else longest

    def cut(k):
        return [judging.judge_messages(prompt, question, *(judging.side(s["transcript"][:k], s["card"]) for s in pair))
                for pair in ((better, worse), (worse, better))]

    counter = getattr(judge, "prompt_token_counts", None)
    if counter is None:
        return cap if cap < longest else None
    limit = judge.context_length() - answer_tokens

    def fits(k):
        return max(counter(cut(k))) <= limit
    if fits(cap):
        return cap if cap < longest else None
    if not fits(1):
        raise UserError(f"{where}: even one turn of each conversation makes a prompt longer than the judge's context "
                        f"({judge.context_length()} tokens); shorten the prompt files")
    low, high = 1, cap  # fits(low), not fits(high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


# ---- the run --------------------------------------------------------------------------------------------------------
def validate(judge, spec, options):
    """Judge the pairs (resuming what is stored), write DIR/judge_validity.json/.md/.png, store the validity; the
    summary dict."""
    dialogues = load_esconv(options.esconv)
    pairs, available = draw_pairs(dialogues, options.rating, options.pairs, options.seed)
    if not pairs:
        raise UserError(f"{options.esconv}: no two dialogues of one problem type were rated apart on "
                        f"{options.rating}; nothing to validate")
    if available < options.pairs:
        print(f"note: {options.esconv} has {available} pairs rated apart on {options.rating}, fewer than the "
              f"{options.pairs} asked for; using all of them")
    criterion = RATING_CRITERION[options.rating]
    found = [c for c in load_criteria(options.criteria) if c["name"] == criterion]
    if not found:
        raise UserError(f"{options.criteria}: no criterion {criterion!r}, the one the {options.rating} rating is "
                        f"compared with; give the study's criteria file")
    question = judging.question_text(found[0], "interactive")
    prompt = judging.load_judge_prompt(options.judge_prompt, options.validation_prompt)
    mode = judging.verdict_mode(judge, options.mode)
    if options.bf16:
        judging.check_bf16(judge, mode)
    key = validity.judge_key(spec, options.judge_prompt, mode, options.tie_margin, options.temperature, options.bf16)
    sides = {}
    for i in sorted({p[k] for p in pairs for k in ("better", "worse")}):
        sides[i] = judging.side(messages_of(dialogues[i], f"{options.esconv}: dialogue {i}"), card_of(dialogues[i]))
    answer_tokens = 1 if mode == "prob" else prompt["max_tokens"]
    shown = [turns_shown(judge, prompt, question, sides[p["better"]], sides[p["worse"]], answer_tokens,
                         options.max_turns, f"{options.esconv}: pair {n} (dialogues {p['better']}, {p['worse']})")
             for n, p in enumerate(pairs)]
    units = []  # (pair index, the side shown first: A = better)
    conversations = []
    for n, (p, k) in enumerate(zip(pairs, shown)):
        better, worse = (judging.side(sides[p[s]]["transcript"][:k], sides[p[s]]["card"]) for s in ("better", "worse"))
        for first, pair in (("A", (better, worse)), ("B", (worse, better))):
            units.append((n, first))
            conversations.append(judging.judge_messages(prompt, question, *pair))
    if mode == "prob":  # fail in one line, before anything is written, when an endpoint returns no probabilities
        first = [judging.side(sides[pairs[0][s]]["transcript"][:1], sides[pairs[0][s]]["card"])
                 for s in ("better", "worse")]
        judging.ask_prob(judge, [judging.judge_messages(prompt, question, *first)], options.bf16)
    setup = {"judge": key, "rating": options.rating, "criterion": criterion, "seed": options.seed,
             "esconv_sha256": file_sha256(options.esconv), "pairs": [[p["better"], p["worse"]] for p in pairs],
             "validation_prompt_sha256": file_sha256(options.validation_prompt), "max_turns": options.max_turns,
             "question": question}
    os.makedirs(options.output, exist_ok=True)
    db = auto_store.open_validation(os.path.join(options.output, "judge_validity.db"), setup)
    started = time.perf_counter()
    try:
        judge_units(db, judge, mode, prompt, units, conversations, options)
        rows = auto_store.validation_rows(db)
    finally:
        db.close()
    summary = summarise(pairs, shown, rows, mode, options.tie_margin, dialogues)
    summary.update(judge={"spec": spec.identity(), "key": key}, verdict_mode=mode, rating=options.rating,
                   criterion=criterion, question=question, seed=options.seed, esconv=os.path.abspath(options.esconv),
                   pairs_available=available, this_session_s=time.perf_counter() - started)
    write_report(summary, options.output)
    stored = validity.store_validity(key, options.rating, {k: summary[k] for k in (
        "criterion", "agreement", "best_baseline", "beats_best_baseline", "verdict_mode", "judgments_per_s")} |
        {"report": os.path.abspath(os.path.join(options.output, "judge_validity.json"))})
    print(f"validity stored for this judge (model, prompt, verdict mode): {stored}")
    return summary


def judge_units(db, judge, mode, prompt, units, conversations, options):
    """Every unit not yet stored, in fixed groups of CHUNK (the same groups whatever ran before, so a resumed run
    computes what an uninterrupted one does), `concurrency` groups at a time; each group one transaction."""
    done = set(auto_store.validation_rows(db))
    chunks = [list(range(i, min(i + CHUNK, len(units)))) for i in range(0, len(units), CHUNK)]
    todo = [c for c in chunks if any((units[i][0], SHOWN_FIRST[units[i][1]]) not in done for i in c)]
    bar = progress_bar(len(units), len(units) - sum(len(c) for c in todo), f"judgments ({judge.name}, {mode})",
                       "judgment", options.progress)

    def ask(chunk):
        start = time.perf_counter()
        seeds = [judging.unit_seed(options.seed, *units[i]) for i in chunk]
        answers = judging.ask(judge, [conversations[i] for i in chunk], mode, prompt, seeds, options.temperature,
                              options.bf16)
        return answers, (time.perf_counter() - start) / len(chunk)

    with ThreadPoolExecutor(max_workers=options.concurrency) as pool:
        for chunk, (answers, seconds) in zip(todo, pool.map(ask, todo)):
            rows = []
            for i, a in zip(chunk, answers):
                n, first = units[i]
                if (n, SHOWN_FIRST[first]) in done:
                    continue
                probabilities = a.probabilities and {PAIR_TERMS[c]: p for c, p in
                                                     judging.to_task_probabilities(a.probabilities, first).items()}
                rows.append((n, SHOWN_FIRST[first],
                             {"verdict": PAIR_TERMS[judging.to_task_side(a.verdict, first)],
                              "probabilities": probabilities, "answers": a.answers, "calls": a.calls,
                              "usage": a.usage, "seconds": seconds}))
            auto_store.add_validation_rows(db, rows)
            bar.update(len(chunk))
    bar.close()


# ---- the numbers ----------------------------------------------------------------------------------------------------
def agreement_block(scores):
    """{value, ci95 (Wilson), n, decisive_share, decisive_agreement} of per-pair scores (1 agree, 0.5 no
    preference, 0 disagree)."""
    n = len(scores)
    decisive = [s for s in scores if s != 0.5]
    return {"value": sum(scores) / n if n else None, "ci95": wilson_interval(sum(scores), n), "n": n,
            "decisive_share": len(decisive) / n if n else None,
            "decisive_agreement": sum(decisive) / len(decisive) if decisive else None}


def supporter_words(dialogue):
    return sum(len(m["text"].split()) for m in messages_of(dialogue, "") if m["speaker"] == "sys")


def supporter_questions(dialogue):
    return sum("?" in m["text"] for m in messages_of(dialogue, "") if m["speaker"] == "sys")


def prefer(better_value, worse_value):
    return 1.0 if better_value > worse_value else 0.0 if better_value < worse_value else 0.5


def baselines(pairs, dialogues):
    """The agreement of judges that need no model on the same pairs: random (no preference: 0.5), length (the
    side whose supporter wrote more whitespace-separated words over the whole conversation), questions (the side
    with more supporter turns containing '?'); a tie counts half."""
    return {"random": agreement_block([0.5] * len(pairs)),
            "length": agreement_block([prefer(supporter_words(dialogues[p["better"]]),
                                              supporter_words(dialogues[p["worse"]])) for p in pairs]),
            "questions": agreement_block([prefer(supporter_questions(dialogues[p["better"]]),
                                                 supporter_questions(dialogues[p["worse"]])) for p in pairs])}


def summarise(pairs, shown, rows, mode, tie_margin, dialogues):
    """The report's numbers (every key of judge_validity.json but the run's description)."""
    records, scores, confidence = [], [], []
    consistent = both_valid = first_chosen = sided = 0
    seconds = sum(r["seconds"] for r in rows.values())
    for n, (p, k) in enumerate(zip(pairs, shown)):
        one, two = rows[n, "better"], rows[n, "worse"]
        if mode == "prob":
            verdict, averaged, margin = judging.combine_probabilities(
                *(to_sides(r["probabilities"]) for r in (one, two)), tie_margin)
            verdict = PAIR_TERMS[verdict]
        else:
            verdict, averaged, margin = judging.combine(one["verdict"], two["verdict"]), None, None
        if judging.INVALID not in (one["verdict"], two["verdict"]):
            both_valid += 1
            consistent += one["verdict"] == two["verdict"]
        for first, r in (("better", one), ("worse", two)):
            if r["verdict"] in ("better", "worse"):
                sided += 1
                first_chosen += r["verdict"] == first
        scores.append(SCORE[verdict])
        if averaged is not None and averaged.get("A", 0) + averaged.get("B", 0) > 0:
            confidence.append((max(averaged.get("A", 0), averaged.get("B", 0)) /
                               (averaged.get("A", 0) + averaged.get("B", 0)), SCORE[verdict]))
        records.append({**p, "turns_shown": k, "verdict": verdict, "margin": margin,
                        "orders": {"better_first": one, "worse_first": two}})
    found = baselines(pairs, dialogues)
    best = max(BASELINES, key=lambda b: (found[b]["value"], -BASELINES.index(b)))
    agreement = agreement_block(scores)
    verdicts = [r["verdict"] for r in records]
    return {"pairs": records, "agreement": agreement, "baselines": found,
            "best_baseline": {"name": best, "value": found[best]["value"]},
            "beats_best_baseline": agreement["ci95"][0] > found[best]["value"],
            "position_consistency": consistent / both_valid if both_valid else None,
            "first_position_share": first_chosen / sided if sided else None,
            "tie_rate": verdicts.count("tie") / len(verdicts), "invalid_rate": verdicts.count(judging.INVALID) /
            len(verdicts), "judgments_per_s": 2 * len(pairs) / seconds if seconds else None,
            "judgment_seconds": seconds, "tie_margin": tie_margin if mode == "prob" else None,
            "shortened": sum(k is not None for k in shown), "reliability": reliability(confidence) if
            mode == "prob" else None, "distinct_dialogues": len({p[s] for p in pairs for s in ("better", "worse")})}


def to_sides(probabilities):
    """Pair-term probabilities (better / worse / tie) as the A (better) / B / tie that combine_probabilities takes."""
    if not probabilities:
        return None
    return {{"better": "A", "worse": "B"}.get(c, c): p for c, p in probabilities.items()}


def reliability(confidence):
    """Agreement by confidence bin: confidence = max(P(better), P(worse)) / (P(better) + P(worse)) of the averaged
    probabilities (0.5: no preference, 1: certain); the pairs sorted by it and cut into RELIABILITY_BINS bins of
    (nearly) equal size, so the curve follows the judge's own range. A calibrated judge agrees as often as it is
    confident."""
    ordered = sorted(confidence)
    bins = min(RELIABILITY_BINS, len(ordered))
    cuts = [round(k * len(ordered) / bins) for k in range(bins + 1)]
    out = []
    for start, end in zip(cuts, cuts[1:]):
        inside = ordered[start:end]
        out.append({"bin": [inside[0][0], inside[-1][0]], "n": len(inside),
                    "mean_confidence": sum(c for c, _ in inside) / len(inside),
                    "agreement": sum(s for _, s in inside) / len(inside)})
    return out


# ---- the report -----------------------------------------------------------------------------------------------------
def pct(value):
    return "–" if value is None else f"{100 * value:.1f}%"


def interval(block):
    return "–" if block["ci95"] is None else f"[{block['ci95'][0]:.3f}, {block['ci95'][1]:.3f}]"


def conclusion(summary):
    a, best = summary["agreement"], summary["best_baseline"]
    low = a["ci95"][0]
    if summary["beats_best_baseline"]:
        return (f"Does this judge beat the best trivial baseline ({best['name']}, {best['value']:.3f})? yes: its 95% "
                f"interval starts at {low:.3f}, above it.")
    return (f"Does this judge beat the best trivial baseline ({best['name']}, {best['value']:.3f})? no: its 95% "
            f"interval starts at {low:.3f}, not above it; its verdicts are not evidence.")


def markdown(summary):
    s, a = summary, summary["agreement"]
    spec = ",".join(f"{k}={v}" for k, v in s["judge"]["spec"].items() if k != "kind")
    rows = [("judge " + spec, a), *((f"baseline: {b}", s["baselines"][b]) for b in BASELINES)]
    lines = [f"# Can this judge be trusted? {spec}, {s['verdict_mode']} verdicts", "",
             f"ESConv help-seekers' {s['rating']} ratings ({s['criterion']}: \"{s['question']}\"); "
             f"{len(s['pairs'])} pairs of the same problem type rated apart ({s['pairs_available']} exist; "
             f"{s['distinct_dialogues']} distinct dialogues), each judged in both orders. Agreement: the judge "
             f"prefers the conversation its seeker rated higher (a tie or an invalid verdict counts half); 95% "
             f"Wilson interval.", "",
             "| judge | agreement | 95% interval | n | decisive | agreement when decisive |", "|---|---|---|---|---|---|"]
    lines += [f"| {name} | {b['value']:.3f} | {interval(b)} | {b['n']} | {pct(b['decisive_share'])} | "
              f"{num(b['decisive_agreement'])} |" for name, b in rows]
    lines += ["", f"Position consistency (both orders gave the same verdict, of the pairs with two valid ones): "
                  f"{pct(s['position_consistency'])}; share of side verdicts choosing the conversation shown first: "
                  f"{pct(s['first_position_share'])} (50%: no position bias); ties {pct(s['tie_rate'])}, invalid "
                  f"{pct(s['invalid_rate'])}" + (f" (a tie: |P(better) - P(worse)| < {s['tie_margin']} after "
                                                  f"averaging both orders)" if s["tie_margin"] is not None else "")
              + f". {s['shortened']} pairs shown shortened (both conversations cut to their first K turns to fit "
                f"the judge's context, or --max_turns). {s['judgments_per_s'] or 0:.3f} judgments/s "
                f"({s['judgment_seconds']:.0f} s in the judge over {2 * len(s['pairs'])} judgments, every "
                f"session of the run together).", ""]
    if s["reliability"]:
        lines += ["Reliability (agreement by confidence max(P) / (P(better) + P(worse)), five bins of equal size; a "
                  "calibrated judge agrees as often as it is confident):", "",
                  "| confidence | pairs | mean confidence | agreement |", "|---|---|---|---|"]
        lines += [f"| {r['bin'][0]:.3f}-{r['bin'][1]:.3f} | {r['n']} | {num(r['mean_confidence'])} | "
                  f"{num(r['agreement'])} |" for r in s["reliability"]]
        lines.append("")
    lines.append(conclusion(s))
    return "\n".join(lines) + "\n"


def num(value):
    return "–" if value is None else f"{value:.3f}"


def chart(summary, path):
    """Agreement with 95% intervals (judge and baselines), and the reliability curve (prob verdicts)."""
    import matplotlib  # lazy: plotting is the report's last step
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: plotting is the report's last step
    panels = 2 if summary["reliability"] else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 3.6), squeeze=False)
    ax = axes[0, 0]
    names = ["judge", *BASELINES]
    blocks = [summary["agreement"], *(summary["baselines"][b] for b in BASELINES)]
    values = [b["value"] for b in blocks]
    errors = [[v - b["ci95"][0] for v, b in zip(values, blocks)], [b["ci95"][1] - v for v, b in zip(values, blocks)]]
    ax.bar(names, values, yerr=errors, capsize=4, color=["#3b7dd8", "#c9c9c9", "#c9c9c9", "#c9c9c9"])
    ax.axhline(0.5, color="#555555", linewidth=0.8, linestyle=":")
    ax.set_ylim(0, 1)
    ax.set_ylabel("agreement with the seekers")
    ax.set_title(f"{summary['rating']} ({summary['verdict_mode']} verdicts), {len(summary['pairs'])} pairs", fontsize=9)
    if summary["reliability"]:
        ax = axes[0, 1]
        points = [(r["mean_confidence"], r["agreement"], r["n"]) for r in summary["reliability"] if r["n"]]
        ax.plot([0.5, 1], [0.5, 1], color="#555555", linewidth=0.8, linestyle=":", label="calibrated")
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color="#3b7dd8", label="judge")
        for x, y, n in points:
            ax.annotate(f"n={n}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xlim(0.5, max(0.6, max(p[0] for p in points) + 0.02))
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (mean of each fifth of the pairs)")
        ax.set_ylabel("agreement")
        ax.set_title("reliability", fontsize=9)
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


def write_report(summary, output):
    """DIR/judge_validity.json, .md, .png; the markdown is printed too."""
    base = os.path.join(output, "judge_validity")
    write_json(base + ".json", summary)
    table = markdown(summary)
    with atomic_write(base + ".md") as f:
        f.write(table)
    chart(summary, base + ".png")
    sys.stdout.write(table)
    print(f"wrote {base}.json, {base}.md, {base}.png")
