"""The change drill of docs/architecture.md, "Add a model variant": a new variant declared in this file alone (its
model class, its config, one `register` call) goes through prepare, two training steps, infer and summarize on tiny
models, with no other file of the suite changed.

The variant: PAL without the context-over-persona attention (the fusion's B' = LN2(H_c + softmax(H_c H_p^T) H_p)
term dropped), a typical ablation of the paper's fusion. It keeps PAL's inputter, persona, strategy head and
contrastive decoding; its checkpoints lack the second LayerNorm's tensors.
"""
import json

import pytest
import torch

from helpers.paths import load_script
from helpers.training import SHORT, dialogue
from pal.model import PersonaFusionBlenderbotSmall, build_model
from pal.variants import FUSION_KEYS, VARIANTS, Variant, register, unregister, variant

prepare = load_script("codes/prepare.py")
train = load_script("codes/train.py")
infer = load_script("codes/infer.py")
summarize = load_script("codes/summarize_results.py")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class PalWithoutContextOverPersona(PersonaFusionBlenderbotSmall):
    """PAL's fusion without B': w1 H_c + w2 LN1(A + H_p), A = softmax(H_p H_c^T) H_c (no second LayerNorm)."""

    def __init__(self, config):
        super().__init__(config)
        del self.context_norm

    def fuse(self, context_states, persona_states, context_mask=None, persona_mask=None):
        scores = torch.bmm(persona_states, context_states.transpose(1, 2))
        persona_over_context = torch.bmm(scores.softmax(dim=-1), context_states)
        w = self.fusion_weights()
        return w[0] * context_states + w[1] * self.persona_norm(persona_over_context + persona_states)


NO_B_KEYS = tuple(k for k in FUSION_KEYS if not k.startswith("context_norm."))


@pytest.fixture
def new_variant(tmp_path):
    """The declaration: a config file (PAL's added tokens) and the variant, registered for the test only."""
    config_dir = tmp_path / "configs"
    config_dir.mkdir()
    strat = json.loads(variant("strat").config_file.read_text())
    (config_dir / "strat_no_b.json").write_text(json.dumps(strat))
    declared = register(Variant(
        name="pal_no_b", label="PAL without B'", config="strat_no_b", inputter="strat",
        model_class=f"{__name__}:PalWithoutContextOverPersona", reads_persona=True, extra_checkpoint_keys=NO_B_KEYS,
        config_dir=config_dir))
    yield declared
    unregister(declared.name)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = tmp_path_factory.mktemp("pesconv")
    for name, seeds, turns in (("train.txt", range(8), 4), ("valid.txt", range(100, 103), 3),
                               ("test.txt", range(200, 203), 3)):
        (root / name).write_text("".join(json.dumps(dialogue(turns, s)) + "\n" for s in seeds), encoding="utf-8")
    return root


def test_a_variant_declared_here_goes_through_prepare_train_infer_and_summarize(new_variant, split, tiny_blender_dir,
                                                                               tmp_path, capsys):
    common = ["--config_name", "strat_no_b", "--inputter_name", "strat", "--pretrained_model_path", tiny_blender_dir]
    prepared = tmp_path / "prepared"
    prepare.main([*common, "--train_input_file", str(split / "train.txt"), "--output_dir", str(prepared),
                  "--pbar", "False", *SHORT])
    run = tmp_path / "run"
    train.main([*common, "--eval_input_file", str(split / "valid.txt"), "--prepared_dir", str(prepared),
                "--output_dir", str(run), "--pbar", "False", "--num_epochs", "1", "--max_steps", "2", *SHORT])
    assert len((run / "train_log.csv").read_text().splitlines()) == 1 + 2  # header and the two steps
    state = torch.load(run / "epoch-0.bin", map_location="cpu", weights_only=True)
    assert "persona_norm.weight" in state and not any(k.startswith("context_norm.") for k in state)

    toker, model = build_model("strat_no_b", tiny_blender_dir, checkpoint=str(run / "epoch-0.bin"))  # strict load
    assert type(model) is PalWithoutContextOverPersona and model.uses_persona and model.predicts_strategy

    infer.main(["-c", str(run), "--max_length", "6", "--min_length", "2", "--infer_batch_size", "4"])  # its test.txt
    [result] = run.glob("res_epoch-0.bin_test_*")
    recorded = json.loads((result / "infer_args.json").read_text())
    assert recorded["config_name"] == "strat_no_b" and recorded["infer_input_file"][-1].endswith("test.txt")
    records = json.loads((result / "gen.json").read_text())
    assert records and all("pred_strat_id" in r for r in records)  # the strategy head is still there

    infer.main(["-c", str(run), "--max_length", "6", "--min_length", "2", "--infer_batch_size", "4",
                "--strategy_alpha", "0", "--save_dir", str(tmp_path / "alpha0")])
    capsys.readouterr()
    summarize.main([str(result), str(tmp_path / "alpha0"), "--output", str(tmp_path / "results.md"),
                    "--json", str(tmp_path / "results.json")])
    table = (tmp_path / "results.md").read_text()
    assert "| PAL without B' |" in table and "| pal_no_b_alpha0 |" in table
    rows = json.loads((tmp_path / "results.json").read_text())
    systems = [row["system"] for table in rows["tables"] for row in table["rows"]]
    assert sorted(systems) == ["pal_no_b", "pal_no_b_alpha0"]


def test_the_registry_is_back_to_the_suites_variants_after_the_drill():
    assert "pal_no_b" not in VARIANTS
    assert list(VARIANTS) == ["pal", "pal_alpha0", "blender_joint", "blender_joint_12tok", "vanilla"]
