"""The model variants, each declared once (docs/architecture.md, "Add a model variant").

A variant is what a results table calls a system: PAL, PAL alpha=0, Blender-Joint, vanilla BlenderBot-small. Its
declaration says everything the suite needs to know about it: the config (codes/pal/configs/<config>.json: the
pretrained folder and the tokens added to the vocabulary), the inputter, the model class, whether it reads a
persona, the checkpoint keys beyond a plain BlenderBot-small, the contrastive alpha it decodes with, its row of the
paper's Table 3 and the name its result folders are grouped under. Every command line, the model builder, the
featurizer, the decoder, the chat systems and the result readers look a variant up here; nothing else switches on a
config name or a model class. Reading the registry imports neither torch nor transformers: the model class is a
reference ("module:Class") imported when a model is built.

A trained variant is found by its config (`variant(config_name)`); a decoding variant (PAL alpha=0) decodes the
checkpoints of another variant (`decodes`) with its own `default_alpha`.
"""
import importlib
from dataclasses import dataclass
from pathlib import Path

from palkit.cli import UserError

# package data: found beside this module in an editable and a regular install alike
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
INPUTTERS = ("strat", "vanilla")  # pal.inputter: with strategy tokens ("Persona:"/"System:" contexts), or plain
# PAL's parameters beyond BlenderBot-small's: the fusion's two LayerNorms and weights, the 8 contrast weights
FUSION_KEYS = ("persona_norm.weight", "persona_norm.bias", "context_norm.weight", "context_norm.bias",
               "persona_context_w", "strategy_alpha")


@dataclass(frozen=True)
class Variant:
    name: str  # the system's key: result-folder groups, RUN/reproduce_table3.sh's DATA/table3/<name>/, --compare_to
    label: str  # how tables and plots name it
    config: str  # codes/pal/configs/<config>.json (or <config_dir>/<config>.json)
    inputter: str  # one of INPUTTERS
    model_class: str  # "module:Class", a subclass of pal.model's BlenderBot-small base
    reads_persona: bool  # its batches carry the persona tensors and its model fuses them
    extra_checkpoint_keys: tuple = ()  # state_dict keys a pretrained BlenderBot-small lacks (initialised when built)
    default_alpha: float | None = None  # its decoding's contrastive alpha; None: the checkpoint's strategy_alpha
    table3_row: str | None = None  # the paper's Table 3 row it reproduces (metric.paper), or None
    decodes: str | None = None  # a decoding variant: the name of the variant whose checkpoints it decodes
    config_dir: Path = CONFIG_DIR

    @property
    def config_file(self):
        return Path(self.config_dir) / f"{self.config}.json"

    def load_model_class(self):
        """The model class (imports pal.model, hence torch and transformers)."""
        module, _, name = self.model_class.partition(":")
        return getattr(importlib.import_module(module), name)

    def result_system(self, alpha_text=None, alpha=None):
        """The system key of a result folder decoded from this variant's checkpoints with `--strategy_alpha
        alpha_text` (None: the checkpoint's; `alpha`: its value, pal.decoding.parse_alpha): the decoding variant
        declared for that alpha (0: PAL alpha=0, pal_alpha0), else this name with the alpha appended. A variant
        without a persona has no contrastive decoding: the alpha does not change what it is."""
        if alpha_text is None or not self.reads_persona:
            return self.name
        values = alpha if isinstance(alpha, list) else [alpha]
        for other in VARIANTS.values():
            if other.decodes == self.name and alpha is not None and all(v == other.default_alpha for v in values):
                return other.name
        return f"{self.name}_alpha{alpha_text}"


VARIANTS = {}  # name -> Variant, in the order tables show them


def register(declared):
    """Add a variant to the registry (a test or a plugin may declare its own); returns it."""
    if declared.name in VARIANTS:
        raise ValueError(f"variant {declared.name!r} is already registered")
    if declared.inputter not in INPUTTERS:
        raise ValueError(f"variant {declared.name!r}: inputter must be one of {INPUTTERS}, got {declared.inputter!r}")
    if declared.decodes is None and any(v.config == declared.config and v.decodes is None for v in VARIANTS.values()):
        raise ValueError(f"variant {declared.name!r}: config {declared.config!r} already belongs to a trained variant")
    if declared.decodes is not None and declared.decodes not in VARIANTS:
        raise ValueError(f"variant {declared.name!r} decodes the checkpoints of an unknown variant "
                         f"{declared.decodes!r}")
    VARIANTS[declared.name] = declared
    return declared


def unregister(name):
    VARIANTS.pop(name)


def trained_variants():
    return [v for v in VARIANTS.values() if v.decodes is None]


def available_configs():
    return sorted(v.config for v in trained_variants())


def for_config(config_name):
    """The trained variant whose config is `config_name`, or None."""
    return next((v for v in trained_variants() if v.config == config_name), None)


def variant(config_name):
    """The trained variant whose config is `config_name`; an unknown name is a UserError listing the known ones."""
    declared = for_config(config_name)
    if declared is not None:
        return declared
    raise UserError(f"unknown --config_name {config_name!r}; available: {', '.join(available_configs())} "
                    "(each is declared in codes/pal/variants.py)")


def by_name(name):
    """The variant named `name` (a result system key), or None."""
    return VARIANTS.get(name)


# The configs' added tokens (codes/pal/configs/*.json; BlenderBot-small has 54,944 ids):
# strat: "</s>", "<s>", "<persona>", "<input>" and the 8 strategy tokens: 12 tokens, 54,956 ids;
# strat_no_persona: "<persona>", "<input>" and the 8 strategy tokens: 10 tokens, 54,954 ids ("</s> <s>" between
#   utterances is then ordinary text that BPE splits into pieces), as the authors' Blender-Joint;
# strat_no_persona_12tok: PAL's 12 tokens, the vocabulary earlier versions of this suite gave Blender-Joint (its
#   checkpoints load with it; docs/reproduction.md#deviations);
# vanilla: no added tokens.
PAL = register(Variant(
    name="pal", label="PAL", config="strat", inputter="strat", model_class="pal.model:PersonaFusionBlenderbotSmall",
    reads_persona=True, extra_checkpoint_keys=FUSION_KEYS, table3_row="PAL"))
register(Variant(
    name="pal_alpha0", label="PAL α=0", config="strat", inputter="strat",
    model_class=PAL.model_class, reads_persona=True, extra_checkpoint_keys=FUSION_KEYS, default_alpha=0.0,
    table3_row="PAL α=0", decodes="pal"))
register(Variant(
    name="blender_joint", label="Blender-Joint", config="strat_no_persona", inputter="strat",
    model_class="pal.model:StrategyBlenderbotSmall", reads_persona=False, table3_row="Blender-Joint"))
register(Variant(
    name="blender_joint_12tok", label="Blender-Joint (12 tokens)", config="strat_no_persona_12tok", inputter="strat",
    model_class="pal.model:StrategyBlenderbotSmall", reads_persona=False))
register(Variant(
    name="vanilla", label="BlenderBot-small", config="vanilla", inputter="vanilla",
    model_class="pal.model:VanillaBlenderbotSmall", reads_persona=False))
