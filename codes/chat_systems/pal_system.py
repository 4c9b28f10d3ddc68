"""A PAL-family checkpoint (PAL, PAL alpha=0, Blender-Joint, vanilla) as a system: pal.chat sessions per call."""
import dataclasses
import os
import threading

from pal.chat import DECODING_DEFAULTS, Chat, PersonaSource
from persona_extractor.extractor import PersonaExtractor
from pal.config import load_config
from pal.generation import decoding_options
from pal.inputter import Featurizer, settings_for
from palkit.run_folder import MODEL_CONFIG_FILE, read_run_args

from chat_systems.reply import Reply, check_messages

DEFAULT_SEED = 0  # seed=None decodes as seed 0: every system's reply is a function of its inputs


def turns_of(messages):
    """pal.chat turns from OpenAI-style messages: system messages are not PAL's input; an assistant turn without a
    "strategy" gets pal.chat.DUMMY_STRATEGY (the strat inputter needs one per supporter turn)."""
    from pal.chat import DUMMY_STRATEGY
    turns = []
    for m in messages:
        if m["role"] == "user":
            turns.append({"speaker": "usr", "text": m["content"]})
        elif m["role"] == "assistant":
            turns.append({"speaker": "sys", "text": m["content"], "strategy": m.get("strategy") or DUMMY_STRATEGY})
    return turns


class PalSystem:
    """chat_systems.system.System of a PAL-family checkpoint."""

    def __init__(self, spec, device="cpu", persona_extractor=None, pretrained_model_path=None, decoding=None,
                 persona_source=None):
        import torch  # noqa: F401 (fail early when torch is missing)
        from pal.model import build_model
        self.spec, self.name, self.kind, self.device = spec, spec.name, spec.kind, device
        self.lock = threading.Lock()
        run_dir = os.path.dirname(os.path.abspath(spec.checkpoint))
        recorded = read_run_args(run_dir) or {}
        pretrained = pretrained_model_path or recorded.get("pretrained_model_path")
        config_dir = run_dir if os.path.isfile(os.path.join(run_dir, MODEL_CONFIG_FILE)) else None
        self.toker, self.model = build_model(spec.config, pretrained, spec.checkpoint, device=device,
                                             model_config_dir=config_dir)
        self.model.eval()
        settings = settings_for(load_config(spec.config), spec.inputter, 512, 50, use_all_persona=True)
        self.featurizer = Featurizer(self.toker, settings)
        self.decoding = decoding_options(**{**DECODING_DEFAULTS, **(decoding or {})}, strategy_alpha=spec.alpha)
        if persona_source is None:
            extractor = PersonaExtractor.from_pretrained(persona_extractor, device=device) if persona_extractor else None
            persona_source = PersonaSource(extractor=extractor)
        self.persona_source = persona_source
        self.capabilities = dataclasses.replace(spec.capabilities, persona=spec.uses_persona,
                                                strategies=self.model.predicts_strategy)

    def identity(self):
        return self.spec.identity()

    @property
    def live_persona(self):
        return self.persona_source.extractor is not None

    def decoding_for(self, temperature=None, top_p=None, max_tokens=None):
        """The released decoding with a request's overrides; temperature 0 means greedy."""
        changes = {}
        if temperature == 0:
            changes["do_sample"] = False
        elif temperature is not None:
            changes["temperature"] = temperature
        if top_p is not None:
            changes["top_p"] = top_p
        if max_tokens is not None:
            changes.update(max_length=max_tokens, min_length=min(self.decoding.min_length, max_tokens))
        options = dataclasses.replace(self.decoding, **changes)
        options.check()
        return options

    def reply(self, messages, *, seed=None, temperature=None, top_p=None, max_tokens=None):
        import torch
        check_messages(messages)
        turns = turns_of(messages)
        decoding = self.decoding_for(temperature, top_p, max_tokens)
        chat = Chat(self.toker, self.model, self.featurizer, decoding, self.persona_source, self.device)
        with self.lock:  # one model call at a time; the global RNG is seeded inside the lock
            torch.manual_seed(DEFAULT_SEED if seed is None else seed)
            text, strategy, persona = chat.restore(turns[:-1]).reply(turns[-1]["text"])
        shown = self.spec.uses_persona or self.live_persona  # Blender-Joint/vanilla see no persona
        return Reply(text=text, strategy=strategy, persona=persona if shown else None,
                     usage={"completion_tokens": len(self.toker.tokenize(text))})

    def reply_batch(self, conversations, *, seed=None, temperature=None, top_p=None, max_tokens=None):
        return [self.reply(m, seed=seed, temperature=temperature, top_p=top_p, max_tokens=max_tokens)
                for m in conversations]
