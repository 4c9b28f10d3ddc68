"""Systems one can compare: a PAL-family checkpoint, a local chat LLM, or an OpenAI-compatible chat endpoint.

    from chat_systems import parse_system_spec, load_system
    system = load_system(parse_system_spec("name=smol,llm=smollm2"), device="cpu")
    system.reply([{"role": "user", "content": "I lost my job"}], seed=0).text

Every system answers `reply(messages, *, seed, temperature, top_p, max_tokens) -> Reply` and `reply_batch` (the
same replies for several conversations). `messages` are OpenAI-style {"role", "content"} dicts; for a supporter,
user = help-seeker and assistant = supporter (an assistant message may carry its ESConv "strategy"). The spec
syntax is in chat_systems.spec and the README ("Comparing PAL with an LLM").
"""
from chat_systems.reply import Reply
from chat_systems.spec import SystemSpec, parse_system_spec


def load_system(spec, device="cpu", **options):
    """The loaded system of a parsed spec. Options: persona_extractor, pretrained_model_path and decoding (a dict of
    pal.chat.DECODING_DEFAULTS names) for PAL checkpoints; ignored by the other kinds."""
    if isinstance(spec, str):
        spec = parse_system_spec(spec)
    if spec.kind == "pal":
        from chat_systems.pal_system import PalSystem
        return PalSystem(spec, device=device, **options)
    if spec.kind == "llm":
        from chat_systems.llm import LocalLLM
        return LocalLLM(spec, device=device)
    from chat_systems.endpoint import EndpointSystem
    return EndpointSystem(spec)


__all__ = ["Reply", "SystemSpec", "parse_system_spec", "load_system"]
