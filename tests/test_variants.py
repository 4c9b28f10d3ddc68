"""The variant registry (codes/pal/variants.py): each declaration matches the model it builds, result folders are
named by it, and no other module switches on a config name."""
import re
from pathlib import Path

import pytest

from palkit.cli import UserError
from pal.config import load_config
from pal.inputter import settings_for
from pal.model import build_model
from pal.variants import VARIANTS, Variant, by_name, register, trained_variants, variant

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("declared", trained_variants(), ids=lambda v: v.name)
def test_each_trained_variant_builds_the_model_it_declares(declared, tiny_blender_dir):
    toker, model = build_model(declared.config, tiny_blender_dir)
    module, _, name = declared.model_class.partition(":")
    assert (type(model).__module__, type(model).__name__) == (module, name)
    assert model.uses_persona == declared.reads_persona
    _, plain = build_model("vanilla", tiny_blender_dir)
    extra = set(model.state_dict()) - set(plain.state_dict())
    assert extra == set(declared.extra_checkpoint_keys)
    settings = settings_for(load_config(declared.config), declared.inputter)
    assert settings.persona_in_batches == declared.reads_persona
    assert settings.uses_strategy == model.predicts_strategy


def test_a_decoding_variant_shares_its_models_config_and_names_its_result_folders():
    pal, alpha0 = by_name("pal"), by_name("pal_alpha0")
    assert alpha0.decodes == "pal" and alpha0.config == pal.config and alpha0.default_alpha == 0
    assert variant("strat") is pal  # the config names the trained variant
    assert pal.result_system(None) == "pal"
    assert pal.result_system("0", 0.0) == "pal_alpha0"
    assert pal.result_system("0,0,0,0,0,0,0,0", [0.0] * 8) == "pal_alpha0"
    assert pal.result_system("0.5", 0.5) == "pal_alpha0.5"
    assert by_name("blender_joint").result_system("0", 0.0) == "blender_joint"  # no contrastive decoding there


def test_unknown_configs_and_conflicting_declarations_are_refused():
    with pytest.raises(UserError, match="unknown --config_name 'nope'; available: .*strat_no_persona.*pal/variants.py"):
        variant("nope")
    with pytest.raises(ValueError, match="already registered"):
        register(Variant("pal", "x", "other", "strat", "pal.model:VanillaBlenderbotSmall", False))
    with pytest.raises(ValueError, match="already belongs to a trained variant"):
        register(Variant("pal_again", "x", "strat", "strat", "pal.model:VanillaBlenderbotSmall", False))
    with pytest.raises(ValueError, match="inputter must be one of"):
        register(Variant("odd", "x", "odd", "persona", "pal.model:VanillaBlenderbotSmall", False))
    assert list(VARIANTS) == ["pal", "pal_alpha0", "blender_joint", "blender_joint_12tok", "vanilla"]


def test_every_config_file_belongs_to_a_variant():
    files = sorted(p.stem for p in (REPO / "codes" / "pal" / "configs").glob("*.json"))
    assert files == sorted(v.config for v in trained_variants())




def test_no_module_but_the_registry_switches_on_a_variant():
    """What a variant is lives in pal/variants.py: no other module compares config names, keeps its own table of
    model classes or persona models, or asks a model's class."""
    switch = re.compile(r"config(_name)?\s*[!=]=|strat_no_persona|MODEL_CLASSES|PERSONA_MODEL_NAMES|"
                        r"isinstance\([^)]*Blenderbot")
    files = [*REPO.glob("codes/**/*.py"), *REPO.glob("persona_extractor/*.py")]
    offenders = [f"{p.relative_to(REPO)}:{n}" for p in files
                 if p.name != "variants.py"
                 for n, line in enumerate(p.read_text().splitlines(), 1) if switch.search(line)]
    assert not offenders, offenders
