"""A system in the supporter's seat: the conversation as messages (with the editable supporter prompt for chat
LLMs; PAL ignores system messages), and `--ask_strategy`: ask a chat LLM for one of the 8 ESConv strategies first,
then for the reply in that strategy (prompts in prompts/ask_strategy.txt, or a copy the user edits). The examples of
a test split are codes/infer.py's (`supporter_examples`)."""
import re
from importlib import resources

from palkit.loaders import read_text
from palkit.cli import UserError
from pal.config import STRATEGIES
from pal.inputter import checked_turns, read_dialogues

PROMPTS = resources.files("chat_systems") / "prompts"
SUPPORTER_PROMPT = str(PROMPTS / "supporter.txt")
ASK_STRATEGY_PROMPTS = str(PROMPTS / "ask_strategy.txt")
SECTIONS = ("strategy question", "reply instruction")
# the ESConv strategies in the words of its annotation guide (Liu et al., 2021), shortened
DEFINITIONS = {
    "Question": "ask for information about the problem, to help the seeker say what they face",
    "Restatement or Paraphrasing": "restate what the seeker said, more concisely, so they see their situation "
                                   "more clearly",
    "Reflection of feelings": "name and reflect the feelings the seeker expresses",
    "Self-disclosure": "share a similar experience or feeling of your own, to show empathy",
    "Affirmation and Reassurance": "affirm the seeker's strengths, motivation and capabilities, and reassure them",
    "Providing Suggestions": "suggest how the seeker could change things, without telling them what to do",
    "Information": "give useful information, e.g. facts, data, opinions or resources",
    "Others": "exchange pleasantries or use another strategy than the ones above",
}


def supporter_prompt(path=SUPPORTER_PROMPT):
    return read_text(path, "give a text file with the supporter's instructions").strip()


def supporter_examples(path, limit=None):
    """(sample_id, history turns ending with the seeker's, gold reply turn) of a reformatted test split, in
    infer.py's order: each supporter turn right after a seeker turn, with the conversation before it."""
    examples = []
    for index, (line, data) in enumerate(read_dialogues(path)):
        turns = checked_turns(data, f"{path}: line {line}", need_strategy=True)
        dialog = [{"speaker": s, "text": t, "strategy": g} for s, t, g in turns]
        for i in range(1, len(dialog)):
            if dialog[i]["speaker"] == "sys" and dialog[i - 1]["speaker"] == "usr":
                examples.append((index, dialog[:i], dialog[i]))
    if not examples:
        raise UserError(f"{path}: no examples (no supporter turn right after a seeker turn)")
    return examples[:limit]


def turn_messages(turns):
    """OpenAI-style messages of pal.chat turns ({"speaker": "usr"|"sys", "text", "strategy"})."""
    out = []
    for t in turns:
        if t["speaker"] == "usr":
            out.append({"role": "user", "content": t["text"]})
        else:
            out.append({"role": "assistant", "content": t["text"],
                        **({"strategy": t["strategy"]} if t.get("strategy") else {})})
    return out


def supporter_messages(turns, seeker_text=None, prompt=None):
    """[system: the supporter prompt] + the turns + the seeker's new turn (when given)."""
    new = [{"role": "user", "content": seeker_text}] if seeker_text is not None else []
    return [{"role": "system", "content": prompt or supporter_prompt()}] + turn_messages(turns) + new


class StrategyPrompts:
    """The two prompts of --ask_strategy, read from one file with "=== strategy question ===" and
    "=== reply instruction ===" sections ("#" lines are comments)."""

    def __init__(self, path=ASK_STRATEGY_PROMPTS):
        text = read_text(path, "give a prompt file like chat_systems/prompts/ask_strategy.txt")
        lines = [line for line in text.splitlines() if not line.startswith("#")]
        parts = re.split(r"^=== (.+?) ===\s*$", "\n".join(lines), flags=re.M)
        sections = {name.strip(): body.strip() for name, body in zip(parts[1::2], parts[2::2])}
        missing = [s for s in SECTIONS if not sections.get(s)]
        if missing:
            raise UserError(f"{path}: no '=== {missing[0]} ===' section (the file needs: "
                            f"{', '.join(f'=== {s} ===' for s in SECTIONS)})")
        listing = "\n".join(f"- {name}: {DEFINITIONS[name]}" for name in STRATEGIES)
        try:
            self.question = sections["strategy question"].format(strategies=listing)
            sections["reply instruction"].format(strategy="x", definition="y")
        except (KeyError, IndexError, ValueError) as e:
            raise UserError(f"{path}: bad placeholder {e} (known: {{strategies}}, {{strategy}}, {{definition}}; "
                            f"write a literal brace as {{{{ or }}}})")
        self.reply_template = sections["reply instruction"]

    def reply_instruction(self, strategy):
        return self.reply_template.format(strategy=strategy, definition=DEFINITIONS[strategy])


def parse_strategy(answer):
    """The strategy an answer names first (case-insensitive), or None when it names none."""
    lowered = answer.lower()
    found = [(lowered.find(s.lower()), s) for s in STRATEGIES if s.lower() in lowered]
    return min(found)[1] if found else None


def ask_strategy_replies(system, conversations, prompts, **decoding):
    """Replies for turn-message conversations (no system message): first the strategy question, then the reply
    under the chosen strategy's instruction (the plain supporter prompt when the answer names none). Returns
    (Reply, the model's raw answer to the question) pairs; each Reply's strategy is the chosen one (None: the
    answer names none)."""
    questions = [[{"role": "system", "content": prompts.question}] + c for c in conversations]
    answers = system.reply_batch(questions, **{**decoding, "max_tokens": 16})
    strategies = [parse_strategy(a.text) for a in answers]
    asks = [[{"role": "system", "content": prompts.reply_instruction(s) if s else supporter_prompt()}] + c
            for s, c in zip(strategies, conversations)]
    replies = system.reply_batch(asks, **decoding)
    for reply, strategy in zip(replies, strategies):
        reply.strategy = strategy
    return [(reply, answer.text) for reply, answer in zip(replies, answers)]
