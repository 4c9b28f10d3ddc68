"""A chat session with a trained model: the conversation so far, the persona PAL sees, one reply per seeker turn.

Shared by the terminal chat (codes/interact.py) and the browser apps (codes/human_eval/). The session holds only
the turns; a caller that keeps the turns elsewhere (a database) rebuilds a session with `Chat.restore`.
"""
import re
from typing import Protocol

from palkit.checks import read_text
from palkit.cli import UserError
from pal.config import STRATEGIES
from pal.generation import decode_text, generate
from pal.dialogues import EMPTY_PERSONA, PERSONA_TOKEN, format_persona, normalise
from pal.inputter import collate

DUMMY_STRATEGY = STRATEGIES[-1]  # the reply being generated needs a strategy slot; only its labels use it
# the authors' interaction settings (RUN/interact_strat.sh): the defaults of interact.py and the human-eval apps
DECODING_DEFAULTS = {"max_length": 50, "min_length": 10, "temperature": 0.7, "top_k": 30, "top_p": 0.9,
                     "num_beams": 1, "repetition_penalty": 1.03, "no_repeat_ngram_size": 3, "length_penalty": 1.0}


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
    def from_args(cls, args, live_persona=None):
        """From interact.py's --persona / --persona_file, or `live_persona` (the caller loads --persona_extractor);
        at most one is set."""
        if getattr(args, "persona", None) is not None:
            return cls(persona_string(args.persona))
        if getattr(args, "persona_file", None) is not None:
            text = read_text(args.persona_file, "give --persona_file a text file with the persona sentences")
            if not text.strip():
                raise UserError(f"{args.persona_file}: is empty; write the persona sentences into it, or drop "
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
        out = generate(self.model, batch, self.toker, **vars(self.decoding))
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
