"""The systems being compared: `--system SPEC` of any kind chat_systems knows (a PAL-family checkpoint, a local chat
LLM, an OpenAI-compatible endpoint), checked before anything loads, then loaded once; each reply continues a stored
conversation."""
import zlib

from chat_systems import load_system, parse_system_spec
from chat_systems.supporter import supporter_messages
from pal.chat import PersonaSource, load_extractor
from pal.cli import UserError

parse_system = parse_system_spec  # the argparse type of --system


def check_names(specs, needed):
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise UserError(f"--system names must differ, got {names}")
    if len(specs) < needed:
        raise UserError(f"this mode needs at least {needed} --system (got {len(specs)})")


class Systems:
    """Loaded systems by name; `reply` continues one stored conversation."""

    def __init__(self, specs, pretrained_model_path=None, persona_extractor=None, decoding=None, seed=0,
                 device="cpu"):
        self.seed = seed
        extractor = load_extractor(persona_extractor, device) if persona_extractor else None
        self.persona_source = PersonaSource(extractor=extractor)  # one extractor for every PAL system
        self.systems = {s.name: load_system(s, device, pretrained_model_path=pretrained_model_path,
                                            decoding=decoding, persona_source=self.persona_source)
                        for s in specs}

    @property
    def live_persona(self):
        return self.persona_source.extractor is not None

    def reply(self, name, turns, user_text, key):
        """(text, strategy, persona) of system `name` after the stored `turns` and the seeker's `user_text`.

        Sampling is seeded by `key` (task, annotator, side, turn), so a reply does not depend on what else the
        server did before, and a restarted server answers the same conversation the same way."""
        seed = self.seed + zlib.crc32(repr(key).encode())
        reply = self.systems[name].reply(supporter_messages(turns, user_text), seed=seed)
        return reply.text, reply.strategy, reply.persona
