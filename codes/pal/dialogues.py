"""ESConv dialogues on disk: the one reader and the one whitespace normalisation (docs/reproduction.md#data).

Used by the reformat (codes/_reformat/process.py), featurization (pal.inputter) and persona annotation
(persona_extractor/extractor_annotation.py).

Files: a JSON array of dialogues (the original ESConv.json / PESConv.json) or one JSON dialogue per line (the
reformatted train/valid/test.txt and the JSON-lines copies of ESConv in circulation); the container is told by the
first non-blank character ("[" = JSON array). Turns come in two schemas: the original
`{"speaker": "seeker"|"supporter", "content", "annotation": {"strategy"}}` and the reformatted
`{"speaker": "usr"|"sys", "text", "strategy"}`; `turn_fields` reads either.

Bad input raises one-line UserErrors that name the file and, where known, the dialogue (0-based position), the
line and column (1-based, like editors) and the turn.
"""
import json
from dataclasses import dataclass

from palkit.loaders import read_text
from palkit.cli import UserError

JSON_ARRAY, JSON_LINES = "JSON array", "JSON lines"
# Both speaker vocabularies map to the reformatted one; the text and strategy live in different keys.
ORIGINAL_SPEAKERS = {"seeker": "usr", "supporter": "sys"}
REFORMATTED_SPEAKERS = {"usr": "usr", "sys": "sys"}


def normalise(text):
    """Collapse every run of whitespace to one space and strip the ends (the authors' `_norm`)."""
    return " ".join(text.split())


# ---- persona strings (docs/reproduction.md#data): what the persona extractor writes, PAL reads, Cos-Sim scores
PERSONA_TOKEN = "<persona>"  # precedes each persona sentence
INPUT_TOKEN = "<input>"  # closes a persona string
EMPTY_PERSONA = INPUT_TOKEN  # the persona string with no sentence


def format_persona(sentences):
    """The persona string: '<persona> s1 <persona> s2 <input>', or '<input>' when nothing is left."""
    return " ".join(f"{PERSONA_TOKEN} {s}" for s in sentences) + (" " if sentences else "") + INPUT_TOKEN


@dataclass
class DialogueFile:
    """The raw dialogue objects of one file. `line_numbers[i]` is dialogue i's line (JSON lines; None in an array)."""
    path: str
    container: str
    dialogues: list
    line_numbers: list


def parse_json_array(path, text):
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}")
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON array of dialogues, got a JSON {type(data).__name__}")
    return data


def parse_json_lines(path, text):
    """(dialogues, line numbers), one dialogue per non-blank line. Split on '\\n' only: JSON strings may hold
    other line separators."""
    dialogues, line_numbers = [], []
    for line_number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            dialogues.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise UserError(f"{path}: dialogue {len(dialogues)} (line {line_number}, column {e.colno}): "
                            f"invalid JSON: {e.msg}")
        line_numbers.append(line_number)
    return dialogues, line_numbers


def load_dialogues(path, hint, containers=(JSON_ARRAY, JSON_LINES)):
    """A DialogueFile for `path`; a container outside `containers`, or no dialogue at all, is a UserError."""
    text = read_text(path, hint)
    container = JSON_ARRAY if text.lstrip().startswith("[") else JSON_LINES
    if container not in containers:
        raise UserError(f"{path}: a {container} file, expected {' or '.join(containers)}; {hint}")
    if container == JSON_ARRAY:
        dialogues = parse_json_array(path, text)
        line_numbers = [None] * len(dialogues)
    else:
        dialogues, line_numbers = parse_json_lines(path, text)
    if not dialogues:
        raise UserError(f"{path}: contains no dialogues; {hint}")
    return DialogueFile(str(path), container, dialogues, line_numbers)


def turn_fields(turn, where):
    """(speaker 'usr'/'sys', raw text, strategy or None) of one turn in either schema."""
    if not isinstance(turn, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(turn).__name__}")
    speaker = turn.get("speaker")
    if speaker in ORIGINAL_SPEAKERS:
        text_key = "content"
        annotation = turn.get("annotation") or {}
        if not isinstance(annotation, dict):
            raise UserError(f"{where}: 'annotation' must be a JSON object")
        strategy = annotation.get("strategy")
        role = ORIGINAL_SPEAKERS[speaker]
    elif speaker in REFORMATTED_SPEAKERS:
        text_key = "text"
        strategy = turn.get("strategy")
        role = REFORMATTED_SPEAKERS[speaker]
    else:
        raise UserError(f"{where}: unknown speaker {speaker!r}; expected 'seeker'/'supporter' (ESConv) "
                        f"or 'usr'/'sys' (reformatted)")
    text = turn.get(text_key)
    if not isinstance(text, str):
        raise UserError(f"{where}: {speaker} turn has no string {text_key!r}")
    return role, text, strategy
