"""The systems being compared: `--system name=NAME,config=CONFIG,checkpoint=epoch-N.bin[,alpha=A]` specs, checked
before anything loads, then loaded once and used through pal.chat sessions rebuilt from the stored turns."""
import os
import threading
import zlib
from dataclasses import dataclass

from pal.chat import DECODING_DEFAULTS, Chat, PersonaSource
from palkit.cli import UserError
from pal.config import available_configs, load_config
from pal.generation import decoding_options, parse_alpha
from pal.inputter import PERSONA_MODEL_NAMES, Featurizer, settings_for
from persona_extractor.extractor import PersonaExtractor

SPEC_KEYS = ("name", "config", "checkpoint", "alpha")


@dataclass
class SystemSpec:
    name: str
    config: str
    checkpoint: str
    alpha: object = None  # None: the checkpoint's per-strategy alpha

    @property
    def inputter(self):
        return "vanilla" if self.config == "vanilla" else "strat"

    @property
    def uses_persona(self):
        return self.inputter == "strat" and load_config(self.config)["model_name"] in PERSONA_MODEL_NAMES


def parse_system(text):
    """A --system value, e.g. "name=pal,config=strat,checkpoint=RUN/epoch-4.bin,alpha=0", checked (one-line errors)."""
    fields = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or key not in SPEC_KEYS or not value:
            raise UserError(f"--system {text!r}: expected name=NAME,config=CONFIG,checkpoint=FILE[,alpha=A] "
                            f"(keys: {', '.join(SPEC_KEYS)})")
        fields[key] = value
    missing = [k for k in ("name", "config", "checkpoint") if k not in fields]
    if missing:
        raise UserError(f"--system {text!r}: missing {', '.join(missing)}")
    if fields["config"] not in available_configs():
        raise UserError(f"--system {text!r}: unknown config {fields['config']!r}; known: "
                        f"{', '.join(available_configs())} (codes/pal/configs/*.json)")
    if not os.path.isfile(fields["checkpoint"]):
        raise UserError(f"{fields['checkpoint']}: checkpoint not found (--system {fields['name']}); train one with "
                        f"RUN/train_*.sh or build the demo models with bash RUN/demo.sh")
    if "alpha" in fields and fields["config"] != "strat":
        raise UserError(f"--system {fields['name']}: alpha applies to config strat (PAL) only")
    fields["alpha"] = parse_alpha(fields.get("alpha"))
    return SystemSpec(**fields)


def check_names(specs, needed):
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise UserError(f"--system names must differ, got {names}")
    if len(specs) < needed:
        raise UserError(f"this mode needs at least {needed} --system (got {len(specs)})")


class Systems:
    """Loaded models by name; `reply` continues one stored conversation (one model call at a time)."""

    def __init__(self, specs, pretrained_model_path=None, persona_extractor=None, decoding=None, seed=0,
                 device="cpu"):
        from pal.model import build_model
        self.specs = {s.name: s for s in specs}
        self.seed, self.device, self.lock = seed, device, threading.Lock()
        options = {**DECODING_DEFAULTS, **(decoding or {})}
        extractor = PersonaExtractor.from_pretrained(persona_extractor, device=device) if persona_extractor else None
        self.persona_source = PersonaSource(extractor=extractor)
        self.sessions = {}
        for spec in specs:
            toker, model = build_model(spec.config, pretrained_model_path, spec.checkpoint, device=device)
            model.eval()
            settings = settings_for(load_config(spec.config), spec.inputter, 512, 50, use_all_persona=True)
            decoding_opts = decoding_options(**options, strategy_alpha=spec.alpha)
            self.sessions[spec.name] = Chat(toker, model, Featurizer(toker, settings), decoding_opts,
                                            self.persona_source, device)

    @property
    def live_persona(self):
        return self.persona_source.extractor is not None

    def reply(self, name, turns, user_text, key):
        """(text, strategy, persona) of system `name` after the stored `turns` and the seeker's `user_text`.

        Sampling is seeded by `key` (task, annotator, side, turn), so a reply does not depend on what else the
        server did before, and a restarted server answers the same conversation the same way."""
        import torch
        with self.lock:
            torch.manual_seed(self.seed + zlib.crc32(repr(key).encode()))
            chat = self.sessions[name].restore(turns)
            text, strategy, persona = chat.reply(user_text)
        shown = self.specs[name].uses_persona or self.live_persona  # Blender-Joint/vanilla see no persona
        return text, strategy, persona if shown else None
