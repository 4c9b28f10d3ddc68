"""Decoding (codes/pal/generation.py): strategy step, contrastive logits, cache, batching, every decoding flag."""
import pytest
import torch

from palkit.cli import UserError
from pal.generation import generate
from helpers.pal_models import CONTEXTS, GREEDY, PERSONAS, batch_for, tiny_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def one_by_one(model, toker, config, **options):
    rows = []
    for i in range(len(CONTEXTS)):
        b = batch_for(toker, config, CONTEXTS[i:i + 1], PERSONAS[i:i + 1], ((0, 4, 2)[i],))
        rows.append(generate(model, b, toker, **options))
    return {k: [r[k][0] for r in rows] for k in rows[0]}


def reference_greedy(model, toker, batch, alpha=None, steps=10):
    """Recompute everything each step from model.forward (fused logits) and the plain context decoder; the last
    step is eos (the config's forced_eos_token_id); replies cut at eos."""
    n = batch["input_ids"].shape[0]
    strategy_tokens = torch.tensor(model.strategy_token_ids)[batch["strat_id"]]
    ids = torch.stack([torch.full((n,), toker.bos_token_id), strategy_tokens], dim=1)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "persona_input_ids", "persona_attention_mask")}
    context = model.encode(batch["input_ids"], batch["attention_mask"])
    with torch.no_grad():
        for _ in range(steps):
            z_p = model(**inputs, decoder_input_ids=ids).logits[:, -1]
            logits = z_p
            if alpha is not None:
                z_c = model.decoder_logits(ids, context, batch["attention_mask"])[0][:, -1]
                a = alpha[batch["strat_id"]][:, None]
                logits = (1 + a) * z_p - a * z_c
            logits[:, toker.vocab_size:] = -float("inf")  # added tokens are banned
            ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
    replies = ids[:, 2:steps + 1].tolist()  # the forced eos replaces the last step
    return [r[:r.index(toker.eos_token_id)] if toker.eos_token_id in r else r for r in replies]


# ---- strategy step and contrastive logits ---------------------------------------------------------------------------
def test_strategy_step_uses_contrast_and_reports_distribution(tiny_blender_dir):
    toker, model = tiny_model(tiny_blender_dir)
    batch = batch_for(toker, "strat")
    out = generate(model, batch, toker, **GREEDY)
    with torch.no_grad():
        bos = torch.full((3, 1), toker.bos_token_id)
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "persona_input_ids", "persona_attention_mask")}
        z_p = model(**inputs, decoder_input_ids=bos).logits[:, 0]
        z_c = model.decoder_logits(bos, model.encode(batch["input_ids"], batch["attention_mask"]),
                                   batch["attention_mask"])[0][:, 0]
    strat_logits = ((1 + 0.075) * z_p - 0.075 * z_c)[:, -8:]
    assert out["pred_strat_id"] == strat_logits.argmax(-1).tolist()
    assert out["pred_strat_id_top1"] == [[p] for p in out["pred_strat_id"]]
    assert [len(t) for t in out["pred_strat_id_top3"]] == [5, 5, 5]  # the authors' "top3" is a top-5
    assert out["pred_strat_id_top3"] == strat_logits.topk(5).indices.tolist()
    torch.testing.assert_close(torch.tensor(out["pred_strat_id_dist"]), strat_logits.softmax(-1))
    top3 = generate(model, batch, toker, strategy_top3_k=3, **GREEDY)["pred_strat_id_top3"]
    assert top3 == strat_logits.topk(3).indices.tolist()
    gold = generate(model, batch, toker, use_gold_strategy=True, **GREEDY)
    assert gold["pred_strat_id"] == [0, 4, 2] and gold["pred_strat_id_dist"] == out["pred_strat_id_dist"]
    with pytest.raises(UserError, match="strat_id"):
        generate(model, {k: v for k, v in batch.items() if k != "strat_id"}, toker, use_gold_strategy=True)


def test_blender_joint_strategy_is_plain_argmax(tiny_blender_dir):
    toker, model = tiny_model(tiny_blender_dir, "strat_no_persona")
    batch = batch_for(toker, "strat_no_persona")
    out = generate(model, batch, toker, **GREEDY)
    with torch.no_grad():
        logits = model(**{k: batch[k] for k in ("input_ids", "attention_mask")},
                       decoder_input_ids=torch.full((3, 1), toker.bos_token_id)).logits[:, 0, -8:]
    assert out["pred_strat_id"] == logits.argmax(-1).tolist()


def test_contrastive_reply_logits_follow_the_per_strategy_alpha(tiny_blender_dir):
    toker, model = tiny_model(tiny_blender_dir, std=0.3)
    alpha = torch.tensor([2.0, 0.2, 1.0, 0.4, 3.0, 0.6, 0.7, 0.8])
    with torch.no_grad():
        model.strategy_alpha.copy_(alpha)
    batch = batch_for(toker, "strat")
    out = generate(model, batch, toker, use_gold_strategy=True, **GREEDY)
    assert out["sequences"] == reference_greedy(model, toker, batch, alpha)
    assert out["sequences"] != reference_greedy(model, toker, batch, None)  # the contrast changes replies
    overridden = generate(model, batch, toker, use_gold_strategy=True, strategy_alpha=0.9, **GREEDY)
    assert overridden["sequences"] == reference_greedy(model, toker, batch, torch.full((8,), 0.9))


def test_alpha_zero_equals_plain_fused_model(tiny_blender_dir):
    toker, model = tiny_model(tiny_blender_dir)
    batch = batch_for(toker, "strat")
    out = generate(model, batch, toker, use_gold_strategy=True, strategy_alpha=0, **GREEDY)
    assert out["sequences"] == reference_greedy(model, toker, batch, None)
    with torch.no_grad():
        model.strategy_alpha.zero_()
    from_checkpoint_alpha = generate(model, batch, toker, use_gold_strategy=True, **GREEDY)
    assert from_checkpoint_alpha["sequences"] == out["sequences"]


# ---- cache and batching ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config,beams", [("strat", 1), ("strat", 3), ("strat_no_persona", 1), ("vanilla", 1)])
def test_cached_equals_uncached(tiny_blender_dir, config, beams):
    toker, model = tiny_model(tiny_blender_dir, config)
    batch = batch_for(toker, config)
    options = dict(GREEDY, repetition_penalty=1.2, num_beams=beams)
    cached = generate(model, batch, toker, **options)
    uncached = generate(model, batch, toker, use_cache=False, **options)
    assert cached == uncached


@pytest.mark.parametrize("config,beams", [("strat", 1), ("strat", 2), ("strat_no_persona", 1),
                                          ("strat_no_persona", 3), ("vanilla", 1), ("vanilla", 3)])
def test_batched_equals_one_by_one(tiny_blender_dir, config, beams):
    """Holds for PAL with fusion_mask_padding (not the authors' default), Blender-Joint and vanilla."""
    toker, model = tiny_model(tiny_blender_dir, config, fusion_mask_padding=True)
    options = dict(GREEDY, num_beams=beams)
    batched = generate(model, batch_for(toker, config), toker, **options)
    single = one_by_one(model, toker, config, **options)
    if "pred_strat_id_dist" in batched:  # probabilities: equal up to float rounding of different shapes
        torch.testing.assert_close(torch.tensor(batched.pop("pred_strat_id_dist")),
                                   torch.tensor(single.pop("pred_strat_id_dist")))
    assert batched == single
    assert len(set(map(tuple, batched["sequences"]))) > 1  # the replies differ, so the comparison means something


# ---- decoding flags -----------------------------------------------------------------------------------------------
def biased(model, token_ids, value):
    with torch.no_grad():
        model.final_logits_bias[0, token_ids] = value
    return model


@pytest.mark.parametrize("config,prefix", [("strat", 2), ("vanilla", 1)])
def test_min_length_counts_the_prefix_max_length_does_not(tiny_blender_dir, config, prefix):
    toker, model = tiny_model(tiny_blender_dir, config)
    batch = batch_for(toker, config)
    biased(model, toker.eos_token_id, 100.0)  # eos wins whenever it is allowed
    replies = generate(model, batch, toker, **dict(GREEDY, min_length=10, max_length=50))["sequences"]
    assert [len(r) for r in replies] == [10 - prefix] * 3
    assert [len(r) for r in generate(model, batch, toker, **dict(GREEDY, min_length=0))["sequences"]] == [0] * 3
    biased(model, toker.eos_token_id, -100.0)  # eos never wins, except where forced at the last step
    replies = generate(model, batch, toker, **dict(GREEDY, max_length=7))["sequences"]
    assert [len(r) for r in replies] == [6] * 3  # BlenderbotSmallConfig's forced_eos_token_id: 6 tokens + eos
    model.config.forced_eos_token_id = None
    replies = generate(model, batch, toker, **dict(GREEDY, max_length=7))["sequences"]
    assert [len(r) for r in replies] == [7] * 3


class StubToker:
    vocab_size, eos_token_id, pad_token_id, bos_token_id = 10, 2, 0, 1

    def __len__(self):
        return 12  # ids 10 and 11 play the added tokens


class ScriptedDecoder:
    """next_logits: row 0 prefers eos from its 2nd reply token on, row 1 always prefers token 5 then 6."""

    def __init__(self):
        self.seen = []

    def next_logits(self, ids):
        self.seen.append(ids.clone())
        logits = torch.zeros(ids.shape[0], 12)
        step = ids.shape[1]
        logits[0, 2 if step >= 3 else 7] = 5.0
        logits[1, 5 if step % 2 else 6] = 5.0
        logits[:, 10:] = 50.0  # added tokens: banned whatever their score
        return logits


def test_finished_rows_are_fed_pad_and_others_continue():
    from pal.generation import decoding_options, decode_reply
    decoder = ScriptedDecoder()
    prefix = torch.tensor([[1, 10], [1, 11]])
    rows = decode_reply(decoder, prefix, decoding_options(**GREEDY | {"max_length": 5}), StubToker())
    assert rows[0] == [1, 10, 7, 2, 0, 0, 0]  # eos, then pad while row 1 goes on
    assert rows[1] == [1, 11, 6, 5, 6, 5, 6]  # max_length=5 reply tokens after the 2-token prefix
    assert decoder.seen[-1][0].tolist() == [1, 10, 7, 2, 0, 0]
    forced = decode_reply(ScriptedDecoder(), prefix, decoding_options(**GREEDY | {"max_length": 5}), StubToker(),
                          forced_eos_token_id=2)
    assert forced[1] == [1, 11, 6, 5, 6, 5, 2]  # eos forced as the last token


def test_sampling_draws_for_every_row_each_step():
    """One torch.multinomial call over the whole batch per step (finished rows included), as transformers 4.x:
    the RNG stream after decoding depends only on the number of steps."""
    from pal.generation import decoding_options, decode_reply
    torch.manual_seed(0)
    decode_reply(ScriptedDecoder(), torch.tensor([[1, 10], [1, 11]]),
                 decoding_options(max_length=5, top_k=0, top_p=1.0, do_sample=True, min_length=0), StubToker())
    after = torch.rand(1)
    torch.manual_seed(0)
    for _ in range(5):
        torch.multinomial(torch.full((2, 12), 1 / 12), num_samples=1)
    assert torch.equal(after, torch.rand(1))


def test_added_tokens_are_never_generated(tiny_blender_dir):
    toker, model = tiny_model(tiny_blender_dir)
    added = list(range(toker.vocab_size, len(toker)))
    biased(model, added, 100.0)
    out = generate(model, batch_for(toker, "strat"), toker, **GREEDY)
    assert all(t < toker.vocab_size for r in out["sequences"] for t in r)
    assert out["pred_strat_id"]  # the strategy step itself still picks among the strategy tokens


def test_repetition_penalty_sees_the_prefix(tiny_blender_dir):
    toker, model = tiny_model(tiny_blender_dir)
    biased(model, toker.bos_token_id, 30.0)  # bos (in the prefix) would be the next token every step
    batch = batch_for(toker, "strat")
    assert [r[0] for r in generate(model, batch, toker, **GREEDY)["sequences"]] == [toker.bos_token_id] * 3
    penalized = generate(model, batch, toker, **dict(GREEDY, repetition_penalty=1e4))["sequences"]
    assert all(r[0] != toker.bos_token_id for r in penalized)


def test_no_repeat_ngram_acts_on_decoder_ids(tiny_blender_dir):
    toker, model = tiny_model(tiny_blender_dir, "vanilla")
    batch = batch_for(toker, "vanilla")
    free = generate(model, batch, toker, **GREEDY)["sequences"]
    assert any(len(set(r)) < len(r) for r in free)  # the tiny model repeats itself
    out = generate(model, batch, toker, **dict(GREEDY, no_repeat_ngram_size=1))["sequences"]
    assert all(len(set(r)) == len(r) and toker.bos_token_id not in r for r in out)
    out2 = generate(model, batch, toker, **dict(GREEDY, no_repeat_ngram_size=2))["sequences"]
    assert all(len(set(zip(r, r[1:]))) == len(r) - 1 for r in out2)


def test_encoder_no_repeat_ngram_size_bans_nothing(tiny_blender_dir):
    toker, model = tiny_model(tiny_blender_dir)
    batch = batch_for(toker, "strat")
    assert generate(model, batch, toker, encoder_no_repeat_ngram_size=1, **GREEDY) == generate(model, batch, toker,
                                                                                                **GREEDY)


def test_sampling_is_reproducible_and_flags_change_it(tiny_blender_dir):
    toker, model = tiny_model(tiny_blender_dir, std=0.2)  # flatter distributions: every flag matters
    batch = batch_for(toker, "strat")
    runs = {}
    for name, options in {"default": {}, "again": {}, "top_k": {"top_k": 2}, "top_p": {"top_p": 0.3},
                          "temperature": {"temperature": 2.0}, "beam_sample": {"num_beams": 2}}.items():
        torch.manual_seed(7)
        runs[name] = generate(model, batch, toker, max_length=12, **options)["sequences"]
    assert runs["default"] == runs["again"]
    for name in ("top_k", "top_p", "temperature", "beam_sample"):
        assert runs[name] != runs["default"], name


def hf_generate(model, toker, batch, options, seed=None):
    """transformers' own generate on the same weights (transformers 5's decoder arithmetic), its RNG seeded with
    `seed` once the model is built: the sequences without the decoder start token, cut at eos."""
    from transformers import BlenderbotSmallForConditionalGeneration
    hf = BlenderbotSmallForConditionalGeneration(model.config).eval()
    hf.load_state_dict(model.state_dict())
    if seed is not None:
        torch.manual_seed(seed)
    hf_options = {k: v for k, v in options.items() if k != "max_length"}
    hf_options.setdefault("do_sample", False)
    out = hf.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                      decoder_input_ids=torch.full((len(batch["input_ids"]), 1), toker.bos_token_id),
                      max_length=options["max_length"] + 1, pad_token_id=toker.pad_token_id,
                      eos_token_id=toker.eos_token_id, **hf_options)
    theirs = [r[1:] for r in out.tolist()]
    return [r[:r.index(toker.eos_token_id)] if toker.eos_token_id in r else r for r in theirs]


def test_beam_length_normalisation_matches_transformers_generate(tiny_blender_dir):
    """Beam scores divided by length ** length_penalty, against transformers' generate with length_penalty not 0.
    The vanilla model's decoder prefix is one token, so 4.x's full length (prefix + tokens before eos, which this
    suite keeps) equals transformers 5's (tokens after the prefix, eos included). The eos is biased (the smallest
    bias of a grid, as random tiny logits are spiky) until a negative penalty picks shorter replies than a positive
    one: a length_penalty that is ignored never does. early_stopping=True: without it transformers 5 ends a beam
    search by another heuristic than 4.x's (its best running beam, where 4.x took the best candidate)."""
    early_stopping = True
    toker, model = tiny_model(tiny_blender_dir, "vanilla")
    model.hf4_decoder_embed_scale = False
    batch = batch_for(toker, "vanilla")

    def options(penalty):
        return dict(GREEDY, num_beams=4, length_penalty=penalty, early_stopping=early_stopping, max_length=12)
    for bias in (2, 4, 6, 8, 10, 12, 14, 16):
        biased(model, toker.eos_token_id, bias)
        short, long = (generate(model, batch, toker, **options(p))["sequences"] for p in (-2.0, 3.0))
        if sum(map(len, short)) < sum(map(len, long)):
            break
    else:
        raise AssertionError("no eos bias made length_penalty -2 choose shorter replies than 3")
    for penalty in (-2.0, 0.0, 1.0, 3.0):
        ours = generate(model, batch, toker, **options(penalty))["sequences"]
        assert ours == hf_generate(model, toker, batch, options(penalty)), (bias, penalty)


@pytest.mark.parametrize("options", [
    dict(GREEDY), dict(GREEDY, num_beams=3, length_penalty=0.0), dict(GREEDY, repetition_penalty=1.3, min_length=6),

    dict(GREEDY, no_repeat_ngram_size=2),
    dict(do_sample=True, top_k=10, top_p=0.9, temperature=0.5, repetition_penalty=1.03, min_length=5, max_length=10)])
def test_vanilla_decoding_matches_transformers_generate(tiny_blender_dir, options):
    """With transformers 5's own decoder arithmetic (no 4.x embedding scale), our loop gives what transformers'
    generate gives for the same options and seed: same processors, same order, same RNG use."""
    toker, model = tiny_model(tiny_blender_dir, "vanilla")
    model.hf4_decoder_embed_scale = False
    batch = batch_for(toker, "vanilla")
    torch.manual_seed(3)
    ours = generate(model, batch, toker, **options)["sequences"]
    assert ours == hf_generate(model, toker, batch, options, seed=3)


def test_bad_options_are_user_errors(tiny_blender_dir):
    toker, model = tiny_model(tiny_blender_dir)
    batch = batch_for(toker, "strat")
    with pytest.raises(UserError, match="unknown decoding options"):
        generate(model, batch, toker, top_kk=3)
    with pytest.raises(UserError, match="num_return_sequences"):
        generate(model, batch, toker, num_return_sequences=2)
    with pytest.raises(UserError, match="1 or 8 values"):
        generate(model, batch, toker, strategy_alpha=[0.1, 0.2])
    model.train()
    with pytest.raises(ValueError, match="eval"):
        generate(model, batch, toker)
