"""PersonaChat in ParlAI's text format -> the extractor's (context, persona) training pairs (docs/reproduction.md#data).

A `*_both_original.txt` file holds numbered lines; numbering restarts at 1 for each dialogue. Persona lines
("your persona: ..." / "partner's persona: ...") come first, then utterance lines
"<n> <partner utterance>\\t<your response>[\\t...candidates]". Each dialogue gives two pairs (`dialogue_examples`):
the response speaker's utterances -> their persona, then the partner's.
"""
import re
from dataclasses import dataclass, field

from palkit.cli import UserError
from persona_extractor.persona_text import EOS_TEXT, join_persona, join_utterances


@dataclass
class PersonaChatDialogue:
    """One ParlAI dialogue. "your" is the speaker of the second (response) column, "partner" of the first."""
    first_line: int
    your_persona: list = field(default_factory=list)
    partner_persona: list = field(default_factory=list)
    partner_utterances: list = field(default_factory=list)
    your_utterances: list = field(default_factory=list)


_NUMBERED_LINE = re.compile(r"(\d+) (.*)\Z", re.DOTALL)
_PERSONA_PREFIXES = {"your persona: ": "your_persona", "partner's persona: ": "partner_persona"}


def _parse_line(dialogues, text, path, line_number):
    """Add one numbered line's content to the dialogue list (starting a new dialogue when the number is 1)."""
    where = f"{path}:{line_number}"
    match = _NUMBERED_LINE.match(text)
    if not match:
        raise UserError(f"{where}: expected '<number> <text>' (ParlAI text format), got {text[:60]!r}")
    number, rest = int(match.group(1)), match.group(2)
    if number == 1:
        dialogues.append((PersonaChatDialogue(first_line=line_number), 1))
    elif not dialogues or dialogues[-1][1] + 1 != number:
        expected = dialogues[-1][1] + 1 if dialogues else 1
        raise UserError(f"{where}: line number {number} where {expected} was expected "
                        f"(numbers restart at 1 for each dialogue)")
    dialogue = dialogues[-1][0]
    dialogues[-1] = (dialogue, number)
    for prefix, attribute in _PERSONA_PREFIXES.items():
        if rest.startswith(prefix):
            if dialogue.your_utterances:
                raise UserError(f"{where}: persona line after the dialogue's utterances; persona lines must "
                                f"come first")
            getattr(dialogue, attribute).append(rest[len(prefix):])
            return
    columns = rest.split("\t")
    if len(columns) < 2:
        raise UserError(f"{where}: utterance line without a tab-separated response "
                        f"(expected '<number> <utterance>\\t<response>[\\t...candidates]')")
    dialogue.partner_utterances.append(columns[0])
    dialogue.your_utterances.append(columns[1])


def read_personachat(path):
    """All dialogues of a ParlAI `*_both_original.txt` file (with or without candidate columns)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start})")
    numbered = []  # (dialogue, last line number seen)
    for line_number, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue  # a trailing newline (or stray blank line) carries nothing
        _parse_line(numbered, line, path, line_number)
    dialogues = [d for d, _ in numbered]
    for d in dialogues:
        if not d.your_utterances:
            raise UserError(f"{path}:{d.first_line}: dialogue has persona lines but no utterance lines")
    return dialogues


def dialogue_examples(dialogue, eos_suffix=" " + EOS_TEXT):
    """The two (context, persona) pairs of a dialogue: the response speaker's ("your") first, then the partner's."""
    return [
        (join_utterances(dialogue.your_utterances, eos_suffix), join_persona(dialogue.your_persona, eos_suffix)),
        (join_utterances(dialogue.partner_utterances, eos_suffix),
         join_persona(dialogue.partner_persona, eos_suffix)),
    ]
