"""The pairwise LLM judge: one question per criterion and order, an answer read as A / B / tie, both orders combined.

Every pair is asked twice, once with the task's A shown first and once with B shown first; the answers are mapped
back to the task's A / B. Two equal verdicts stand; two that differ are a tie (a verdict that flips with the order;
the MT-Bench convention); an answer that cannot be read is asked once more, then stored as invalid (never a tie).
The prompts are an editable JSON file (prompts/judge.json); the seeker's is prompts/seeker.json.
"""
import re
import string
import time
import zlib
from collections import Counter
from pathlib import Path

from palkit.loaders import load_json
from palkit.cli import UserError

PROMPTS = Path(__file__).with_name("prompts")
JUDGE_PROMPT = str(PROMPTS / "judge.json")
SEEKER_PROMPT = str(PROMPTS / "seeker.json")
VERDICTS = ("A", "B", "tie")
INVALID = "invalid"
ORDERS = ("A", "B")  # which of the task's sides is shown first (as "A" to the judge)

# "A", "B.", "**Tie**", "Answer: B", "Supporter A is better", "It's a tie"; not "A good supporter ...".
_VERDICT = re.compile(r"^[\W_]*(?:(?:the\s+)?(?:answer|verdict|judge?ment)(?:\s+is)?\W*)?(?:(?:supporter|conversation|reply|response|"
                      r"option)\s+)?(?:(?P<tie>(?:it'?s\s+)?(?:a\s+)?tie)\b|(?P<side>[ab])(?=\s*(?:$|[^\w\s]|(?:is|"
                      r"was|wins|seems|because|better)\b)))", re.IGNORECASE)

_OPTIONS = re.compile(r"\s*(?:,|/|\bor\b)\s*(?:or\s+)?(?:a|b|tie)\b", re.IGNORECASE)

JUDGE_FIELDS = {"system": (), "conversations": ("emotion", "problem", "situation", "transcript_a", "transcript_b"),
                "replies": ("history", "reply_a", "reply_b"), "question": ("question",), "retry": (),
                "seeker": (), "supporter": ()}
SEEKER_FIELDS = {"system": ("emotion", "problem", "situation", "persona"), "persona": ("sentences",),
                 "reprompt": ()}


def load_prompt(path, fields):
    """A prompt file: each of `fields` a string template using only its listed placeholders, max_tokens > 0."""
    data = load_json(path, expect=dict, hint="copy codes/human_eval/prompts/*.json and edit it")
    for key, placeholders in fields.items():
        template = data.get(key)
        if not isinstance(template, str):
            raise UserError(f"{path}: needs a string {key!r}")
        used = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        unknown = used - set(placeholders)
        if unknown:
            raise UserError(f"{path}: {key!r} uses unknown placeholder(s) {sorted(unknown)}; known: "
                            f"{list(placeholders) or 'none'} (write {{{{ and }}}} for literal braces)")
    if not isinstance(data.get("max_tokens"), int) or data["max_tokens"] < 1:
        raise UserError(f"{path}: needs a positive integer 'max_tokens'")
    return data


def load_seeker_prompt(path):
    data = load_prompt(path, SEEKER_FIELDS)
    patterns = data.get("role_break_patterns")
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise UserError(f"{path}: 'role_break_patterns' must be a list of regular expressions")
    if not isinstance(data.get("strip_prefix"), str):
        raise UserError(f"{path}: needs a string 'strip_prefix' (a regular expression)")
    try:
        data["compiled"] = [re.compile(p, re.IGNORECASE) for p in patterns]
        data["strip"] = re.compile(data["strip_prefix"], re.IGNORECASE)
    except re.error as e:
        raise UserError(f"{path}: bad regular expression {e.pattern!r}: {e}")
    return data


def question_text(criterion, mode):
    """The criterion's question for `mode` ('interactive' or 'static'): a plain string, or a per-mode wording (in
    "question", or in "questions" where the criteria loader keeps it)."""
    question = criterion.get("questions") or criterion["question"]
    if isinstance(question, dict):
        return question.get(mode) or question.get("interactive") or next(v for v in question.values() if v)
    return question


def parse_verdict(text):
    """'A', 'B' or 'tie' from the start of a judge's answer; None when it says none of them plainly, or lists the
    options ("A, B or tie", "A/B": an echo of the instruction, not a verdict)."""
    m = _VERDICT.match(text.strip())
    if m is None or _OPTIONS.match(text.strip(), m.end()):
        return None
    return "tie" if m.group("tie") else m.group("side").upper()


def unit_seed(seed, *key):
    """A seed that depends only on the unit it is used for (what ran before or after it does not matter)."""
    return (seed + zlib.crc32(repr(key).encode())) % 2**31


def transcript(messages, prompt):
    names = {"usr": prompt["seeker"], "sys": prompt["supporter"]}
    return "\n".join(f"{names[m['speaker']]}: {m['text']}" for m in messages)


def judge_messages(prompt, task, sides, question, shown_first):
    """The judge's messages for one task, criterion question and order; `sides` {"A": messages, "B": messages}
    (interactive) is unused for a static task."""
    first, second = ORDERS if shown_first == "A" else ORDERS[::-1]
    content = task["content"]
    if task["mode"] == "static":
        body = prompt["replies"].format(history=transcript(content["history"], prompt),
                                        reply_a=content[f"reply_{first.lower()}"],
                                        reply_b=content[f"reply_{second.lower()}"])
    else:
        card = content.get("card", {})
        body = prompt["conversations"].format(emotion=card.get("emotion_type", "?"), problem=card.get("problem_type", "?"),
                                              situation=card.get("situation", "?"),
                                              transcript_a=transcript(sides[first], prompt),
                                              transcript_b=transcript(sides[second], prompt))
    return [{"role": "system", "content": prompt["system"]},
            {"role": "user", "content": body + "\n\n" + prompt["question"].format(question=question)}]


def ask(judge, messages, seed, prompt, shown_first, temperature=None):
    """(verdict in the task's terms or INVALID, the raw answers, summed usage, seconds): one retry when unreadable."""
    answers, usage, seconds = [], Counter(), 0.0
    for attempt in range(2):
        if attempt:
            messages = messages + [{"role": "assistant", "content": answers[-1]},
                                   {"role": "user", "content": prompt["retry"]}]
        start = time.perf_counter()
        reply = judge.reply(messages, seed=seed + attempt, temperature=temperature, max_tokens=prompt["max_tokens"])
        seconds += time.perf_counter() - start
        usage.update({k: v for k, v in (reply.usage or {}).items() if isinstance(v, (int, float))})
        answers.append(reply.text)
        verdict = parse_verdict(reply.text)
        if verdict is not None:
            return to_task_side(verdict, shown_first), answers, dict(usage), seconds
    return INVALID, answers, dict(usage), seconds


def to_task_side(verdict, shown_first):
    """A positional verdict ('A' = the conversation shown first) as the task's side."""
    if verdict == "tie" or shown_first == "A":
        return verdict
    return "B" if verdict == "A" else "A"


def combine(first, second):
    """The verdicts of both orders (task terms) as one: equal stands, different is a tie, an invalid one invalid."""
    if INVALID in (first, second):
        return INVALID
    return first if first == second else "tie"
