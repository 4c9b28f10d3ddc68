"""The pairwise LLM judge: one question about two sides shown in one order, answered as A / B / tie.

Every pair is asked twice, once with each side shown first; the answers are mapped back to the pair's sides.
- text verdicts: the answer is generated (greedy unless told otherwise) and read as A / B / tie. Two equal verdicts
  stand; two that differ are a tie (the MT-Bench convention; a flip when one said A and the other B). An unreadable
  answer gets one constrained answer where the judge gives token probabilities (the most likely of A / B / tie),
  else one follow-up question; then it is invalid (never a tie).
- probability verdicts (prob): the judge's next-token probabilities of "A", "B" (and "tie" where it is one token)
  right after the prompt, normalised over these answers, mapped to the pair's sides and averaged over the two
  orders. Swapping the sides mirrors the verdict exactly; a margin |P(A) - P(B)| below the tie margin is a tie.
`judge_messages` is the one way a prompt is built (the study, the static mode and the validation use it). The
prompts are editable JSON files (prompts/judge.json, validate.json; the seeker's is prompts/seeker.json).
"""
import inspect
import math
import re
import string
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from palkit.loaders import load_json
from palkit.cli import UserError

from chat_systems import require
from chat_systems.reply import similar_length_batches

PROMPTS = Path(__file__).with_name("prompts")
JUDGE_PROMPT = str(PROMPTS / "judge.json")
SEEKER_PROMPT = str(PROMPTS / "seeker.json")
VALIDATION_PROMPT = str(PROMPTS / "validate.json")
VERDICTS = ("A", "B", "tie")
INVALID = "invalid"
ORDERS = ("A", "B")  # which of the pair's sides is shown first (as "A" to the judge)
CANDIDATES = ("A", "B", "tie")  # the answers whose next-token probabilities make a probability verdict
VERDICT_MODES = ("prob", "text")
TIE_MARGIN = 0.05  # a probability verdict whose |P(A) - P(B)| (averaged over both orders) is below this is a tie

# "A", "B.", "**Tie**", "Answer: B", "Supporter A is better", "It's a tie"; not "A good supporter ...".
_VERDICT = re.compile(r"^[\W_]*(?:(?:the\s+)?(?:answer|verdict|judge?ment)(?:\s+is)?\W*)?(?:(?:supporter|conversation|reply|response|"
                      r"option)\s+)?(?:(?P<tie>(?:it'?s\s+)?(?:a\s+)?tie)\b|(?P<side>[ab])(?=\s*(?:$|[^\w\s]|(?:is|"
                      r"was|wins|seems|because|better)\b)))", re.IGNORECASE)

_OPTIONS = re.compile(r"\s*(?:,|/|\bor\b)\s*(?:or\s+)?(?:a|b|tie)\b", re.IGNORECASE)

CARD = ("emotion", "problem", "situation")
JUDGE_FIELDS = {"system": (), "conversations": CARD + ("transcript_a", "transcript_b"),
                "replies": ("history", "reply_a", "reply_b"), "question": ("question",), "retry": (),
                "seeker": (), "supporter": ()}
VALIDATION_FIELDS = {"system": (), "conversations": tuple(f"{k}_{s}" for s in "ab" for k in CARD + ("transcript",))}


# ---- prompts --------------------------------------------------------------------------------------------------------
def load_prompt(path, fields, needs_max_tokens=True):
    """A prompt file: each of `fields` a string template using only its listed placeholders, max_tokens > 0."""
    data = load_json(path, expect=dict, hint="copy codes/auto_eval/prompts/*.json and edit it")
    for key, placeholders in fields.items():
        template = data.get(key)
        if not isinstance(template, str):
            raise UserError(f"{path}: needs a string {key!r}")
        used = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        unknown = used - set(placeholders)
        if unknown:
            raise UserError(f"{path}: {key!r} uses unknown placeholder(s) {sorted(unknown)}; known: "
                            f"{list(placeholders) or 'none'} (write {{{{ and }}}} for literal braces)")
    if needs_max_tokens and (not isinstance(data.get("max_tokens"), int) or data["max_tokens"] < 1):
        raise UserError(f"{path}: needs a positive integer 'max_tokens'")
    return data


def load_judge_prompt(path, validation_path=None):
    """The judge's prompt file; with `validation_path`, its system message and its template of two conversations
    with two different help-seekers (each with its own card) replace the study's (key "two_seekers")."""
    prompt = load_prompt(path, JUDGE_FIELDS)
    if validation_path is not None:
        validation = load_prompt(validation_path, VALIDATION_FIELDS, needs_max_tokens=False)
        prompt = {**prompt, "system": validation["system"], "two_seekers": validation["conversations"]}
    return prompt


def question_text(criterion, mode):
    """The criterion's question for `mode` ('interactive' or 'static'): a plain string, or a per-mode wording (in
    "question", or in "questions" where the criteria loader keeps it)."""
    question = criterion.get("questions") or criterion["question"]
    if isinstance(question, dict):
        return question.get(mode) or question.get("interactive") or next(v for v in question.values() if v)
    return question


def unit_seed(seed, *key):
    """A seed that depends only on the unit it is used for (what ran before or after it does not matter)."""
    return (seed + zlib.crc32(repr(key).encode())) % 2**31


def transcript(messages, prompt):
    names = {"usr": prompt["seeker"], "sys": prompt["supporter"]}
    return "\n".join(f"{names[m['speaker']]}: {m['text']}" for m in messages)


def card_fields(card):
    """{emotion, problem, situation} of a role card or of a study task's card (emotion_type, ...); '?' if unknown."""
    card = card or {}
    return {k: card.get(k) or card.get(f"{k}_type") or "?" for k in CARD}


def side(messages, card=None):
    """One side of a pair: its messages ({speaker: usr|sys, text}; a static side: the one reply) and its seeker's
    card."""
    return {"transcript": list(messages), "card": card_fields(card)}


def judge_messages(prompt, question, first, second, history=None):
    """The judge's messages for one question about two sides (`side`), `first` shown as A. With `history` (the
    conversation before two candidate replies: a static task) the sides are the replies; sides with the same card
    (one help-seeker) fill the study's "conversations"; sides with different cards (two help-seekers, the
    validation) fill "two_seekers" (load_judge_prompt with a validation file). The question comes last, so
    questions about one pair share their prompt's beginning."""
    if history is not None:
        body = prompt["replies"].format(history=transcript(history, prompt), reply_a=first["transcript"][-1]["text"],
                                        reply_b=second["transcript"][-1]["text"])
    elif first["card"] == second["card"]:
        body = prompt["conversations"].format(**first["card"], transcript_a=transcript(first["transcript"], prompt),
                                              transcript_b=transcript(second["transcript"], prompt))
    else:
        if "two_seekers" not in prompt:
            raise UserError("two conversations with two different help-seekers need the validation prompt "
                            "(prompts/validate.json)")
        fields = {f"{k}_{s}": v for s, one in (("a", first), ("b", second)) for k, v in
                  [*one["card"].items(), ("transcript", transcript(one["transcript"], prompt))]}
        body = prompt["two_seekers"].format(**fields)
    return [{"role": "system", "content": prompt["system"]},
            {"role": "user", "content": body + "\n\n" + prompt["question"].format(question=question)}]


# ---- asking ---------------------------------------------------------------------------------------------------------
@dataclass
class Answer:
    """One order's answer: `verdict` positional ('A' = the side shown first, 'B', 'tie') or INVALID; the raw
    answers (text mode); `probabilities` over CANDIDATES, positional and normalised (prob mode, and a text answer
    read by a constrained retry); usage of the model calls."""
    verdict: str
    answers: list = field(default_factory=list)
    probabilities: dict | None = None
    usage: dict = field(default_factory=dict)
    calls: int = 1


def has_probabilities(judge):
    """Whether the loaded judge reads next-token probabilities (a local LLM, an endpoint; not a PAL checkpoint)."""
    return judge.capabilities.has("next_token_logprobs")


def verdict_mode(judge, requested):
    """The verdict mode to use: `requested`, or (None) prob where the judge gives probabilities, else text."""
    if requested is None:
        return "prob" if has_probabilities(judge) else "text"
    if requested == "prob":
        require(judge, "next_token_logprobs", "--verdict prob", fix="use --verdict text")
    return requested


def ask(judge, conversations, mode, prompt, seeds, temperature=0.0, bf16=False):
    """[Answer] for conversations (each a judge_messages list) in `mode`; bf16: prob verdicts of a local LLM under
    bfloat16 autocast (check_bf16)."""
    if mode == "prob":
        return ask_prob(judge, conversations, bf16)
    return ask_text(judge, conversations, prompt, seeds, temperature)


def check_bf16(judge, mode):
    """--bf16 applies to probability verdicts read in process (a local LLM); anything else is a UserError."""
    reader = getattr(judge, "next_token_logprobs", None)
    if mode != "prob" or reader is None or "autocast" not in inspect.signature(reader).parameters:
        raise UserError(f"--bf16: applies to probability verdicts of a local LLM judge, not to {mode} verdicts of "
                        f"judge {judge.name}")


def ask_prob(judge, conversations, bf16=False):
    """Probability verdicts: one next-token read per conversation (no generation)."""
    answers = []
    extra = {"autocast": "bfloat16"} if bf16 else {}
    for logprobs in judge.next_token_logprobs(conversations, CANDIDATES, single_token=True, **extra):
        probabilities = normalised(logprobs)
        if "A" not in probabilities and "B" not in probabilities:
            answers.append(Answer(INVALID, probabilities=probabilities, usage={}))
            continue
        answers.append(Answer(max(CANDIDATES, key=lambda c: probabilities.get(c, -1.0)),
                              probabilities=probabilities, usage={}))
    return answers


def normalised(logprobs):
    """{candidate: probability} over the candidates the judge scored, summing to 1 (a softmax of their logprobs)."""
    present = {c: lp for c, lp in logprobs.items() if lp is not None and math.isfinite(lp)}
    if not present:
        return {}
    top = max(present.values())
    weights = {c: math.exp(lp - top) for c, lp in present.items()}
    total = sum(weights.values())
    return {c: w / total for c, w in weights.items()}


def ask_text(judge, conversations, prompt, seeds, temperature=0.0):
    """Text verdicts: greedy answers at temperature 0 (a judge is deterministic unless told otherwise), one batch;
    each unreadable one asked again once, as a different question (module docstring)."""
    temperature = 0.0 if temperature is None else temperature
    replies = replies_of(judge, conversations, seeds, temperature, prompt["max_tokens"])
    answers = []
    for reply in replies:
        verdict = parse_verdict(reply.text)
        answers.append(Answer(INVALID if verdict is None else verdict, [reply.text], usage=numeric(reply.usage)))
    unread = [i for i, a in enumerate(answers) if a.verdict == INVALID]
    if not unread:
        return answers
    if has_probabilities(judge):  # a constrained answer: the most likely of A / B / tie for the same prompt
        for i, read in zip(unread, ask_prob(judge, [conversations[i] for i in unread])):
            answers[i].verdict, answers[i].probabilities, answers[i].calls = read.verdict, read.probabilities, 2
            answers[i].answers.append(f"(constrained) {read.verdict}")
        return answers
    followups = [conversations[i] + [{"role": "assistant", "content": answers[i].answers[0]},
                                     {"role": "user", "content": prompt["retry"]}] for i in unread]
    for i, reply in zip(unread, replies_of(judge, followups, [seeds[i] + 1 for i in unread], temperature,
                                           prompt["max_tokens"])):
        answer = answers[i]
        verdict = parse_verdict(reply.text)
        answer.verdict = INVALID if verdict is None else verdict
        answer.answers.append(reply.text)
        answer.usage = retry_usage(answer.usage, numeric(reply.usage))
        answer.calls = 2
    return answers


def replies_of(judge, conversations, seeds, temperature, max_tokens):
    """The judge's replies, each with its own seed, in batches of prompts of similar length (padding a short prompt
    to a long one is wasted work; a batch gives each reply what it gets alone)."""
    size = [sum(len(m["content"]) for m in c) for c in conversations]
    replies = [None] * len(conversations)
    for batch in similar_length_batches(range(len(conversations)), size):
        for i, reply in zip(batch, judge.reply_batch([conversations[i] for i in batch], seed=[seeds[i] for i in batch],
                                                     temperature=temperature, max_tokens=max_tokens)):
            replies[i] = reply
    return replies


def numeric(usage):
    return {k: v for k, v in (usage or {}).items() if isinstance(v, (int, float))}


def retry_usage(first, retry):
    """The usage of an answer and its follow-up: the follow-up's prompt repeats the first prompt and answer, so only
    its new prompt tokens count."""
    total = Counter(first)
    total.update({k: v for k, v in retry.items() if k != "prompt_tokens"})
    if "prompt_tokens" in retry:
        seen = first.get("prompt_tokens", 0) + first.get("completion_tokens", 0)
        total["prompt_tokens"] = first.get("prompt_tokens", 0) + max(0, retry["prompt_tokens"] - seen)
    return dict(total)


def parse_verdict(text):
    """'A', 'B' or 'tie' from the start of a judge's answer; None when it says none of them plainly, or lists the
    options ("A, B or tie", "A/B": an echo of the instruction, not a verdict)."""
    m = _VERDICT.match(text.strip())
    if m is None or _OPTIONS.match(text.strip(), m.end()):
        return None
    return "tie" if m.group("tie") else m.group("side").upper()


# ---- from one order's answer to the pair's verdict ------------------------------------------------------------------
def to_task_side(verdict, shown_first):
    """A positional verdict ('A' = the side shown first) as the pair's side; 'tie' and INVALID stay."""
    if verdict not in VERDICTS + (INVALID,):
        raise ValueError(f"not a verdict: {verdict!r}")
    if verdict in ("tie", INVALID) or shown_first == "A":
        return verdict
    return "B" if verdict == "A" else "A"


def to_task_probabilities(probabilities, shown_first):
    """Positional probabilities as the pair's sides' ({A, B, tie} where scored)."""
    if not probabilities or shown_first == "A":
        return dict(probabilities or {})
    return {{"A": "B", "B": "A"}.get(c, c): p for c, p in probabilities.items()}


def combine(first, second):
    """The verdicts of both orders (pair terms) as one: equal stands, different is a tie, an invalid one invalid."""
    if INVALID in (first, second):
        return INVALID
    return first if first == second else "tie"


def combine_probabilities(first, second, tie_margin=TIE_MARGIN):
    """(verdict, averaged probabilities, margin P(A) - P(B)) of both orders' pair-term probabilities; INVALID
    (None, None) when an order has none."""
    if not first or not second:
        return INVALID, None, None
    averaged = {c: (first.get(c, 0.0) + second.get(c, 0.0)) / 2 for c in CANDIDATES if c in first or c in second}
    margin = averaged.get("A", 0.0) - averaged.get("B", 0.0)
    verdict = "tie" if abs(margin) < tie_margin else "A" if margin > 0 else "B"
    return verdict, averaged, margin


def outcome(first, second, combined):
    """What the chart shows of one pair: 'A', 'B', 'tie' (a tie answer, or orders that agree on no side), 'flip'
    (one order chose A and the other B: the verdict followed the position) or INVALID."""
    if combined == INVALID:
        return INVALID
    if combined == "tie" and {first, second} == {"A", "B"}:
        return "flip"
    return combined
