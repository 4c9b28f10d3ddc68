"""One ESConv / PESConv dialogue -> one reformatted record, validated (docs/reproduction.md#reformat);
codes/_reformat/process.py is the command line (split and write)."""
from palkit.cli import UserError
from pal.config import STRATEGIES
from pal.dialogues import normalise, turn_fields

PERSONA_LIST_SOURCES = ("inferred", "raw_utterances")
REQUIRED_FIELDS = ("emotion_type", "problem_type", "situation")
DATA_HINT = "see DATA/README.md for where to get it, or pass --input_file"


def check_strategy(strategy, where):
    if strategy is None:
        raise UserError(f"{where}: supporter turn without a strategy; every supporter turn needs one of: "
                        f"{', '.join(STRATEGIES)}")
    if strategy not in STRATEGIES:
        raise UserError(f"{where}: strategy {strategy!r} is not one of the 8 ESConv strategies: "
                        f"{', '.join(STRATEGIES)}")


def convert_turn(turn, where):
    role, text, strategy = turn_fields(turn, where)
    converted = {"text": normalise(text), "speaker": role}
    if role == "sys":
        check_strategy(strategy, where)
        converted["strategy"] = strategy
    return converted


def convert_dialog(raw, where):
    if "dialog" not in raw:
        raise UserError(f"{where}: missing 'dialog' (the list of turns)")
    turns = raw["dialog"]
    if not isinstance(turns, list):
        raise UserError(f"{where}: 'dialog' must be a list of turns, got {type(turns).__name__}")
    if not turns:
        raise UserError(f"{where}: empty dialogue ('dialog' has no turns); remove it from the file")
    return [convert_turn(turn, f"{where}: turn {j}") for j, turn in enumerate(turns)]


def persona_fields(raw, dialog, where, persona_list_source):
    """(persona, persona_list) for --add_persona True, checked against the dialogue they describe."""
    missing = [key for key in ("persona", "persona_list") if key not in raw]
    if missing:
        raise UserError(f"{where}: --add_persona True needs 'persona' and 'persona_list' (PESConv) but "
                        f"{' and '.join(repr(k) for k in missing)} {'is' if len(missing) == 1 else 'are'} missing; "
                        f"annotate the data with "
                        f"persona_extractor/annotate_esconv.py or run with --add_persona False")
    persona = raw["persona"]
    if not isinstance(persona, str):
        raise UserError(f"{where}: 'persona' must be a string, got {type(persona).__name__}")
    seeker_utterances = [turn["text"] for turn in dialog if turn["speaker"] == "usr"]
    if persona_list_source == "raw_utterances":
        # The released script's behaviour (see the module docstring): the inferred list is discarded.
        return persona, seeker_utterances
    inferred = raw["persona_list"]
    if not isinstance(inferred, list) or not all(isinstance(p, str) for p in inferred):
        raise UserError(f"{where}: 'persona_list' must be a list of strings")
    # The inputter reads persona_list[k - 3] at a supporter turn after the seeker's k-th utterance (k >= 3).
    needed = max(0, len(seeker_utterances) - 2)
    if len(inferred) < needed:
        raise UserError(f"{where}: persona_list has {len(inferred)} entries but the dialogue has "
                        f"{len(seeker_utterances)} seeker turns, so it needs at least {needed} "
                        f"(one per seeker turn from the 3rd on); re-run the persona annotation")
    return persona, list(inferred)


def convert_dialogue(raw, where, add_persona, persona_list_source):
    """One output record, keys in the order the authors' script writes them."""
    if not isinstance(raw, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    dialog = convert_dialog(raw, where)
    for key in REQUIRED_FIELDS:
        if key not in raw:
            raise UserError(f"{where}: missing {key!r}")
    record = {"emotion_type": raw["emotion_type"], "problem_type": raw["problem_type"]}
    if add_persona:
        record["persona"], record["persona_list"] = persona_fields(raw, dialog, where, persona_list_source)
    record["situation"] = raw["situation"]
    record["dialog"] = dialog
    return record


def convert_all(path, dialogues, add_persona, persona_list_source):
    return [convert_dialogue(raw, f"{path}: dialogue {i}", add_persona, persona_list_source)
            for i, raw in enumerate(dialogues)]
