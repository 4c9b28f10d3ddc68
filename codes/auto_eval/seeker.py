"""The simulated help-seeker: its prompt, its next turn, and how its turns compare with real help-seekers'.

A turn that breaks the role (one of the prompt's role_break_patterns: the seeker acting as the supporter; or empty)
or repeats the seeker's previous turn is asked again once with the prompt's re-prompt; when that reply breaks too,
the conversation ends there and the reason is recorded. `style` measures seeker turns (length, questions, distinct-2,
first person) so the report can put simulated seekers beside the real ESConv seekers of the same cards.
"""
import re
import time
from collections import Counter

from palkit.cli import UserError

from auto_eval.judge import load_prompt, numeric

SEEKER_FIELDS = {"system": ("emotion", "problem", "situation", "persona"), "persona": ("sentences",),
                 "reprompt": ()}
REPEAT = "repeats the previous seeker turn"
FIRST_PERSON = re.compile(r"\b(i|i'm|i've|i'd|i'll|me|my|mine|myself)\b", re.IGNORECASE)


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


def system_message(prompt, card):
    persona = prompt["persona"].format(sentences=" ".join(card["persona"])) if card["persona"] else ""
    return prompt["system"].format(emotion=card["emotion"], problem=card["problem"], situation=card["situation"],
                                   persona=persona)


def seeker_view(history):
    """The conversation from the seeker's side: its own turns are 'assistant', the supporter's 'user'."""
    return [{"role": "assistant" if m["speaker"] == "usr" else "user", "content": m["text"]} for m in history]


def words(text):
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def role_break(text, prompt, previous=None):
    """Why the seeker's text is not a help-seeker's next turn (None when it is): empty, a role-break pattern, or the
    seeker's previous turn again (the same words, case and punctuation aside)."""
    if not text:
        return "empty"
    if previous is not None and words(text) == words(previous):
        return REPEAT
    return next((f"matches {p.pattern!r}" for p in prompt["compiled"] if p.search(text)), None)


def clean(text, prompt):
    return prompt["strip"].sub("", " ".join(text.split()), count=1)


def seeker_turn(seeker, prompt, card, history, seed):
    """(text or None, record): the seeker's next message. record: calls, role_break (why the turn was asked again,
    None when the first reply was fine), ended (why the conversation ends here: the re-asked reply broke too; text
    is then None and record["text"] holds that reply), usage, seconds."""
    system = system_message(prompt, card)
    previous = next((m["text"] for m in reversed(history) if m["speaker"] == "usr"), None)
    record = {"calls": 0, "role_break": None, "ended": None, "usage": Counter(), "seconds": 0.0}
    for attempt in range(2):
        if attempt:
            system = system + " " + prompt["reprompt"]
        start = time.perf_counter()
        reply = seeker.reply([{"role": "system", "content": system}] + seeker_view(history), seed=seed + attempt,
                             max_tokens=prompt["max_tokens"])
        record["seconds"] += time.perf_counter() - start
        record["calls"] += 1
        record["usage"].update(numeric(reply.usage))
        text = clean(reply.text, prompt)
        problem = role_break(text, prompt, previous)
        if problem is None:
            break
        if attempt:
            record.update(ended=problem, text=text)
            text = None
        else:
            record["role_break"] = problem
    record["usage"] = dict(record["usage"])
    return text, record


def reason_kind(reason):
    """A reason's kind for counting: 'repeat', 'empty' or 'role break'."""
    return "repeat" if reason == REPEAT else "empty" if reason == "empty" else "role break"


def style(turns):
    """{turns, words_per_turn, question_share, distinct_2, first_person_share} of seeker turns (None when none):
    whitespace words per turn; the share of turns with a '?'; distinct bigrams / bigrams (lowercased words, within
    turns); the share of turns with I / me / my / mine / myself (I'm, I've, ...)."""
    if not turns:
        return None
    bigrams = [tuple(w[i:i + 2]) for w in (words(t) for t in turns) for i in range(len(w) - 1)]
    return {"turns": len(turns), "words_per_turn": sum(len(t.split()) for t in turns) / len(turns),
            "question_share": sum("?" in t for t in turns) / len(turns),
            "distinct_2": len(set(bigrams)) / len(bigrams) if bigrams else None,
            "first_person_share": sum(bool(FIRST_PERSON.search(t)) for t in turns) / len(turns)}
