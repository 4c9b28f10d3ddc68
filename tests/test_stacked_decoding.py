"""contrastive_impl "stacked" (one decoder call on both streams, the strategy step's cache reused) against
"two_pass" (the released computation): same strategies and replies, for greedy, sampling and beams."""
import pytest
import torch

from pal.generation import generate
from helpers.pal_models import GREEDY, batch_for, randomize, tiny_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def both(model, batch, toker, seed=None, **options):
    outs = []
    for impl in ("two_pass", "stacked"):
        if seed is not None:
            torch.manual_seed(seed)
        outs.append(generate(model, batch, toker, contrastive_impl=impl, **options))
    return outs


def assert_same(two_pass, stacked):
    torch.testing.assert_close(torch.tensor(stacked.pop("pred_strat_id_dist")),
                               torch.tensor(two_pass.pop("pred_strat_id_dist")))
    assert stacked == two_pass


@pytest.mark.parametrize("options,seed", [
    (GREEDY, None),
    (dict(GREEDY, repetition_penalty=1.2, no_repeat_ngram_size=2, min_length=4), None),
    (dict(GREEDY, num_beams=3), None),                                     # reorder follows both halves
    (dict(GREEDY, num_beams=2, use_cache=False), None),
    (dict(max_length=12, top_k=10, top_p=0.9, temperature=0.7), 5),        # sampling, the same seed
    (dict(max_length=12, top_k=10, top_p=0.9, temperature=0.7, num_beams=2), 5),  # beam sampling
])
def test_stacked_equals_two_pass_pal(tiny_blender_dir, options, seed):
    toker, model = tiny_model(tiny_blender_dir, std=0.3)
    with torch.no_grad():
        model.strategy_alpha.copy_(torch.tensor([2.0, 0.2, 1.0, 0.4, 3.0, 0.6, 0.7, 0.8]))
    two_pass, stacked = both(model, batch_for(toker, "strat"), toker, seed, **options)
    assert len(set(map(tuple, stacked["sequences"]))) > 1
    assert_same(two_pass, stacked)


@pytest.mark.parametrize("config,alpha", [("strat", 0.0), ("strat_no_persona", None)])
def test_stacked_with_one_stream_equals_two_pass(tiny_blender_dir, config, alpha):
    """alpha = 0 drops the context half of the stacked cache; Blender-Joint only reuses the strategy step's cache."""
    toker, model = tiny_model(tiny_blender_dir, config)
    for beams in (1, 3):
        two_pass, stacked = both(model, batch_for(toker, config), toker, strategy_alpha=alpha,
                                 **dict(GREEDY, num_beams=beams))
        assert_same(two_pass, stacked)


# ---- the acceptance rule: a tiny model trained on real ESConv -------------------------------------------------------
N_DIALOGUES_TRAIN, N_DIALOGUES_EVAL, EVAL_EXAMPLES = 40, 40, 200


@pytest.fixture(scope="module")
def esconv_trained(tiny_blender_dir):
    """A tiny PAL trained for 20 steps on ESConv's first 40 dialogues, and 200 examples of the next 40.

    It starts from wide random weights (std 0.3): trained from the stock init for a few steps, a tiny model gives
    every context the same reply, which would make the comparison vacuous."""
    from helpers.paths import load_script, shared_path
    sample_dialogues = load_script("codes/bench.py").sample_dialogues
    from pal.config import load_config
    from pal.inputter import Featurizer, collate, settings_for
    from pal.model import build_model
    from pal.optim import HF4AdamW, parameter_groups
    dialogues, _ = sample_dialogues(N_DIALOGUES_TRAIN + N_DIALOGUES_EVAL, shared_path("data/esconv/ESConv.json"))
    torch.manual_seed(0)
    toker, model = build_model("strat", pretrained_model_path=tiny_blender_dir)
    model = randomize(model, std=0.3)
    featurizer = Featurizer(toker, settings_for(load_config("strat"), "strat", max_input_length=160))
    train = [f for d in dialogues[:N_DIALOGUES_TRAIN] for f in featurizer.dialogue_features(d, "training")]
    evaluation = [f for d in dialogues[N_DIALOGUES_TRAIN:] for f in featurizer.dialogue_features(d, "inference")]
    optimizer = HF4AdamW(parameter_groups(model, 0.01, "spec"), lr=2e-4)
    model.train()
    for step in range(20):
        batch = collate(train[step * 8 % len(train):][:8], toker.pad_token_id, persona_in_batches=True)
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    batches = [collate(evaluation[i:i + 20], toker.pad_token_id, persona_in_batches=True)
               for i in range(0, EVAL_EXAMPLES, 20)]
    return toker, model.eval(), batches


@pytest.mark.slow
def test_stacked_matches_two_pass_on_esconv_trained_model(esconv_trained):
    toker, model, batches = esconv_trained
    options = dict(GREEDY, max_length=20, min_length=10, repetition_penalty=1.03)
    keys = ("sequences", "pred_strat_id", "pred_strat_id_dist")
    runs = {"two_pass": {k: [] for k in keys}, "stacked": {k: [] for k in keys}}
    for batch in batches:
        for name, out in zip(runs, both(model, batch, toker, **options)):
            for key in keys:
                runs[name][key].extend(out[key])
    a, b = runs["two_pass"], runs["stacked"]
    assert len(a["sequences"]) == EVAL_EXAMPLES
    assert len(set(map(tuple, a["sequences"]))) > 10  # replies depend on the context: not a constant model
    dist_a, dist_b = torch.tensor(a["pred_strat_id_dist"]), torch.tensor(b["pred_strat_id_dist"])
    assert (dist_a - dist_a[0]).abs().max() > 1e-3  # so do the strategy distributions
    torch.testing.assert_close(dist_b, dist_a)
    same = sum(x == y and s == t for x, y, s, t in zip(a["sequences"], b["sequences"], a["pred_strat_id"],
                                                        b["pred_strat_id"]))
    assert same >= 0.99 * EVAL_EXAMPLES, f"{same}/{EVAL_EXAMPLES} identical"
