"""Systems one can compare: a PAL-family checkpoint, a local chat LLM, or an OpenAI-compatible chat endpoint.

    from chat_systems import parse_system_spec, load_system
    system = load_system(parse_system_spec("name=smol,llm=smollm2"), device="cpu")
    system.reply([{"role": "user", "content": "I lost my job"}], seed=0).text

Every system follows one protocol (chat_systems.system.System): `reply(messages, *, seed, temperature, top_p,
max_tokens) -> Reply`, `reply_batch` (the same replies for several conversations), `identity()` and
`capabilities`; `require(system, capability, why)` is how a command asks for one. `messages` are OpenAI-style
{"role", "content"} dicts; for a supporter, user = help-seeker and assistant = supporter (an assistant message may
carry its ESConv "strategy"). Which kinds of system exist is the registry in chat_systems.backends; the spec syntax
is in chat_systems.spec and the README ("Comparing PAL with an LLM").
"""
from chat_systems.backends import BACKENDS, Backend, register_backend, spec_forms, unregister_backend
from chat_systems.reply import Reply
from chat_systems.spec import SystemSpec, parse_system_spec
from chat_systems.system import Capabilities, System, require


def load_system(spec, device="cpu", **options):
    """The loaded system of a parsed spec (or its text), by its backend's loader. Options: persona_extractor,
    pretrained_model_path, decoding (a dict of pal.chat.DECODING_DEFAULTS names) and persona_source for PAL
    checkpoints; backends ignore the options they do not know."""
    if isinstance(spec, str):
        spec = parse_system_spec(spec)
    return spec.backend.load(spec, device=device, **options)


def spec_help():
    """The --system help text of every command that takes a spec."""
    return f"{spec_forms()} (README \"Comparing PAL with an LLM\")"


__all__ = ["BACKENDS", "Backend", "Capabilities", "Reply", "System", "SystemSpec", "load_system",
           "parse_system_spec", "register_backend", "require", "spec_forms", "spec_help", "unregister_backend"]
