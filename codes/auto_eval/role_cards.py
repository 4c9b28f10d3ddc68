"""Role cards for a simulated help-seeker: emotion, problem, situation, the seeker's first utterance and (optionally)
the seeker's persona sentences, taken from an ESConv/PESConv file (a reformatted test.txt or the JSON array) and kept
in an editable JSON file:

    {"source": "DATA/pesconv/test.txt", "cards": [{"id": "test.txt#0", "emotion": "anxiety", "problem": "job crisis",
      "situation": "...", "first_utterance": "...", "persona": ["i have two kids."], "seeker_turns": [...]}, ...]}

"seeker_turns" (optional) are the real help-seeker's turns of that dialogue: never shown to the simulated seeker,
only put beside its turns in the report (auto_eval.analyze).
"""
import os

from palkit.loaders import load_json
from palkit.atomic import write_json
from palkit.cli import UserError
from pal.dialogues import INPUT_TOKEN, PERSONA_TOKEN, load_dialogues, normalise, turn_fields

CARD_FIELDS = ("emotion", "problem", "situation", "first_utterance")
CARD_HINT = "write cards like those of RUN/python -m auto_eval cards (README \"Automatic evaluation\")"


def persona_sentences(persona):
    """The sentences of a PESConv persona string '<persona> s1 <persona> s2 <input>' (none for '<input>')."""
    text = persona.replace(INPUT_TOKEN, " ")
    return [" ".join(s.split()) for s in text.split(PERSONA_TOKEN) if s.strip()]


def cards_from_test_file(test_file, num_cards, with_persona=True):
    """Cards of the first `num_cards` dialogues of a dialogue file: a reformatted test.txt (JSON lines) or an
    ESConv/PESConv JSON array. A dialogue without a seeker turn is skipped (it has no first utterance); persona
    sentences only when `with_persona` and the file has them (PESConv)."""
    found = load_dialogues(test_file, "give a reformatted test.txt (codes/_reformat/process.py) or ESConv.json")
    cards = []
    name = os.path.basename(test_file)
    for index, (line, d) in enumerate(zip(found.line_numbers, found.dialogues)):
        if len(cards) == num_cards:
            break
        where = f"{test_file}:{line}" if line is not None else f"{test_file}: dialogue {index}"
        if not isinstance(d, dict):
            raise UserError(f"{where}: expected a JSON object")
        missing = [k for k in ("emotion_type", "problem_type", "situation") if not isinstance(d.get(k), str)]
        if missing or not isinstance(d.get("dialog"), list):
            raise UserError(f"{where}: no {', '.join(missing) or 'dialog'} (an ESConv dialogue has emotion_type, "
                            f"problem_type, situation and dialog)")
        turns = [turn_fields(t, f"{where}: turn {j}") for j, t in enumerate(d["dialog"])]
        first = next((normalise(text) for role, text, _ in turns if role == "usr" and text.strip()), None)
        if first is None:
            continue
        card = {"id": f"{name}#{index}", "emotion": d["emotion_type"], "problem": d["problem_type"],
                "situation": normalise(d["situation"]), "first_utterance": first}
        card["persona"] = persona_sentences(d["persona"]) if with_persona and isinstance(d.get("persona"), str) else []
        card["seeker_turns"] = [normalise(text) for role, text, _ in turns if role == "usr" and text.strip()]
        cards.append(card)
    if not cards:
        raise UserError(f"{test_file}: no dialogue with a seeker turn")
    if len(cards) < num_cards:
        print(f"note: {test_file} has {len(cards)} dialogues with a seeker turn, fewer than the {num_cards} cards "
              f"asked for")
    return cards


def write_cards(path, cards, source):
    write_json(path, {"source": source, "cards": cards})


def load_cards(path):
    """The cards of a card file, checked (one-line errors naming the card and field)."""
    data = load_json(path, hint=CARD_HINT)
    cards = data.get("cards") if isinstance(data, dict) else None
    if not isinstance(cards, list) or not cards:
        raise UserError(f'{path}: expected {{"cards": [{{"emotion": ..., "problem": ..., "situation": ..., '
                        f'"first_utterance": ...}}, ...]}}; {CARD_HINT}')
    for i, card in enumerate(cards):
        if not isinstance(card, dict):
            raise UserError(f"{path}: cards[{i}] is not an object")
        for key in CARD_FIELDS:
            if not isinstance(card.get(key), str) or not card[key].strip():
                raise UserError(f"{path}: cards[{i}] needs a non-empty string {key!r}")
        persona = card.setdefault("persona", [])
        if not isinstance(persona, list) or not all(isinstance(s, str) for s in persona):
            raise UserError(f"{path}: cards[{i}]: 'persona' must be a list of sentences")
        real = card.get("seeker_turns", [])
        if not isinstance(real, list) or not all(isinstance(t, str) for t in real):
            raise UserError(f"{path}: cards[{i}]: 'seeker_turns' must be a list of the real seeker's turns")
        card.setdefault("id", f"{os.path.basename(path)}#{i}")
    ids = [c["id"] for c in cards]
    if len(set(ids)) != len(ids):
        raise UserError(f"{path}: card ids must differ")
    return cards
