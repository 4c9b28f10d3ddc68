"""pal.flops (the benchmark's arithmetic floor) against a direct count: torch's FlopCounterMode counts every matrix
product (mm, addmm, bmm, baddbmm) by its sizes while one real training step and one real decoding run execute.

The models run eager attention here so that attention is two bmm calls FlopCounterMode sees (its registry has no
entry for the CPU flash-attention kernel that "sdpa" picks); the arithmetic is the same either way. The counts
must agree exactly: pal.flops' matmul term counts the same products."""
import pytest
from torch.utils.flop_counter import FlopCounterMode

from pal import flops
from pal.generation import generate
from helpers.pal_models import CONTEXTS, PERSONAS, make_batch, tiny_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RESPONSES = ["i am sorry to hear that", "hello", "what happened"]
CONFIGS = [("strat", True), ("strat_no_persona_12tok", False)]


def eager(model):
    model.set_attn_implementation("eager")
    return model


def batch_for(toker, persona):
    return make_batch(toker, CONTEXTS, PERSONAS if persona else None, RESPONSES, [0, 4, 2])


def direct_macs(fn):
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() // 2  # FlopCounterMode counts a multiply-add as 2 FLOPs


@pytest.mark.parametrize("config,persona", CONFIGS)
def test_train_step_count_equals_direct_count(tiny_blender_dir, config, persona):
    toker, model = tiny_model(tiny_blender_dir, config)
    model = eager(model).train()
    batch = batch_for(toker, persona)

    def step():
        model(**batch).loss.backward()

    counted = flops.train_step_macs(flops.Shape.of(model), persona, *flops.batch_shape(batch))
    assert counted.matmul == direct_macs(step)
    assert counted.elementwise < 0.01 * counted.matmul


@pytest.mark.parametrize("config,persona", CONFIGS)
def test_decoding_count_equals_direct_count(tiny_blender_dir, config, persona):
    """Greedy and stacked (the bench's setting), eos banned so every row decodes max_length reply tokens."""
    toker, model = tiny_model(tiny_blender_dir, config)
    model = eager(model)
    batch = batch_for(toker, persona)
    max_length = 6

    def run():
        out = generate(model, batch, toker, max_length=max_length, min_length=max_length + 2, top_k=0, top_p=1.0,
                       repetition_penalty=1.0, contrastive_impl="stacked")
        assert all(len(s) == max_length - 1 for s in out["sequences"])  # the last step is the forced eos

    rows, length, _ = flops.batch_shape(batch)
    counted = flops.decoding_macs(flops.Shape.of(model), persona, rows, length, steps=max_length + 1)
    assert counted.matmul == direct_macs(run)


def test_floor_ratios_of_the_full_size_config():
    """The issue's hand count: ~92M vs ~60M MACs per decoded token (stacked PAL vs vanilla), a floor near 1.5x."""
    s = flops.Shape(d=512, ffn=2048, encoder_layers=8, decoder_layers=8, vocab=54_968)
    per_token = lambda persona: (flops.decoding_macs(s, persona, 1, 300, 51).matmul
                                 - flops.decoding_macs(s, persona, 1, 300, 50).matmul)
    assert 1.4 < per_token(True) / per_token(False) < 1.6
    train = lambda persona: flops.train_step_macs(s, persona, 4, 300, 40).total
    assert 1.6 < train(True) / train(False) < 1.9
