"""A chat session with a trained model: the conversation so far, the persona PAL sees, one reply per seeker turn.

Shared by the terminal chat (codes/interact.py) and the browser apps (codes/human_eval/). The session holds only
the turns; a caller that keeps the turns elsewhere (a database) rebuilds a session with `Chat.restore`.
"""
import re
from typing import Protocol

from palkit.cli import UserError
from palkit.loaders import read_text
from .config import STRATEGIES
from .decoding import CHAT_DECODING, CHAT_OPTIONS
from .dialogues import EMPTY_PERSONA, PERSONA_TOKEN, format_persona, normalise
from .generation import decode_text, generate
from .inputter import collate

DUMMY_STRATEGY = STRATEGIES[-1]  # the reply being generated needs a strategy slot; only its labels use it
# the authors' interaction settings (pal.decoding.CHAT_DECODING) by name: what a chat front end may override
DECODING_DEFAULTS = {name: getattr(CHAT_DECODING, name) for name in CHAT_OPTIONS}


# ---- persona --------------------------------------------------------------------------------------------------------
def persona_string(text):
    """PESConv form "<persona> s1 <persona> s2 <input>" from plain sentences (kept as is when already in form)."""
    text = text.strip()
    if not text or text == EMPTY_PERSONA:
        return EMPTY_PERSONA
    if PERSONA_TOKEN in text or text.endswith(EMPTY_PERSONA):
        return normalise(text)
    sentences = [normalise(s) for line in text.splitlines() for s in re.split(r"(?<=[.!?])\s+", line)]
    return format_persona([s for s in sentences if s])


class LivePersona(Protocol):
    """A persona inferred live from what the seeker has said (persona_extractor.extractor.PersonaExtractor)."""

    def persona_for_turn(self, seeker_utterances: list[str]) -> str: ...


class PersonaSource:
    """What PAL sees as persona at each turn: fixed, or inferred live (a LivePersona)."""

    def __init__(self, fixed=EMPTY_PERSONA, extractor: LivePersona | None = None):
        self.fixed, self.extractor = fixed, extractor

    @classmethod
    def chosen(cls, persona=None, persona_file=None, live_persona=None):
        """From a fixed persona (text), a file holding one (interact.py's --persona / --persona_file), or
        `live_persona` (the caller loads --persona_extractor); at most one is given."""
        if persona is not None:
            return cls(persona_string(persona))
        if persona_file is not None:
            text = read_text(persona_file, "give --persona_file a text file with the persona sentences")
            if not text.strip():
                raise UserError(f"{persona_file}: is empty; write the persona sentences into it, or drop "
                                f"--persona_file to chat without a persona")
            return cls(persona_string(text))
        return cls(extractor=live_persona)

    def for_turn(self, seeker_utterances):
        if self.extractor is None:
            return self.fixed
        return self.extractor.persona_for_turn(seeker_utterances)


# ---- one reply ------------------------------------------------------------------------------------------------------
class Chat:
    """The conversation so far and the model that continues it."""

    def __init__(self, toker, model, featurizer, decoding, persona_source, device):
        self.toker, self.model, self.featurizer = toker, model, featurizer
        self.decoding, self.persona_source, self.device = decoding, persona_source, device
        self.reset()

    def reset(self):
        self.turns, self.seeker_utterances, self.personas = [], [], []

    def restore(self, turns):
        """Continue a stored conversation: `turns` are {"speaker": "usr"|"sys", "text", "strategy"} dicts."""
        self.reset()
        self.turns = [dict(t) for t in turns]
        self.seeker_utterances = [t["text"] for t in turns if t["speaker"] == "usr"]
        return self

    def reply(self, seeker_text):
        """(reply text, strategy name or None, persona used) for the seeker's new turn."""
        self.turns.append({"speaker": "usr", "text": seeker_text})
        self.seeker_utterances.append(seeker_text)
        persona = self.persona_source.for_turn(self.seeker_utterances)
        self.personas.append(persona)
        batch = self.batch_for_reply(persona)
        out = generate(self.model, batch, self.toker, self.decoding)
        text = decode_text(self.toker, out["sequences"][0])
        strategy = STRATEGIES[out["pred_strat_id"][0]] if "pred_strat_id" in out else None
        self.turns.append({"speaker": "sys", "text": text, "strategy": strategy})
        return text, strategy, persona

    def batch_for_reply(self, persona):
        feature = reply_feature(self.featurizer, self.turns, persona)
        return collate([feature], self.toker.pad_token_id, self.featurizer.settings.persona_in_batches)

    def record(self):
        return {"dialog": self.turns, "persona": self.personas}


def reply_feature(featurizer, turns, persona):
    """The inference feature of the supporter's reply after `turns` (ending with the seeker's), with `persona`."""
    placeholder = {"speaker": "sys", "text": "n/a", "strategy": DUMMY_STRATEGY}
    return featurizer.dialogue_features({"dialog": turns + [placeholder], "persona": persona}, "inference",
                                        where="conversation")[-1]
