"""The PAL model family (codes/pal/model.py): fusion math, loss, checkpoints in the authors' format, errors.

Tiny random BlenderBot-small models (d_model 32, 2 layers) with the real tokenizer when ../shared has it.
Helpers here are also used by test_generation.py and test_infer.py.
"""
import os

import pytest
import torch
import torch.nn.functional as F

from palkit.cli import UserError
from pal.checkpoint import load_checkpoint, save_checkpoint
from pal.model import PersonaFusionBlenderbotSmall, StrategyBlenderbotSmall, VanillaBlenderbotSmall, build_model
from helpers.pal_models import CONTEXTS, PERSONAS, RESPONSES, make_batch, tiny_model, write_dialogues


pytestmark = pytest.mark.usefixtures("one_torch_thread")

# ---- shared helpers -------------------------------------------------------------------------------------------------

# ---- fusion -------------------------------------------------------------------------------------------------------
def direct_fusion(model, h_c, h_p):
    """The fusion of docs/reproduction.md#model written per example with plain matmuls (the authors' loop form)."""
    theta = model.persona_context_w
    w = [torch.exp(theta[i]) / torch.sum(torch.exp(theta)) for i in range(3)]
    out = []
    for c, p in zip(h_c, h_p):
        a = torch.matmul(torch.softmax(torch.matmul(p, c.t()), dim=-1), c)  # persona over context
        b = torch.matmul(torch.softmax(torch.matmul(c, p.t()), dim=-1), p)  # context over persona
        a_prime = F.layer_norm(a + p, (c.shape[-1],), model.persona_norm.weight, model.persona_norm.bias)
        b_prime = F.layer_norm(c + b, (c.shape[-1],), model.context_norm.weight, model.context_norm.bias)
        out.append(w[0] * c + w[1] * a_prime + w[2] * b_prime)
    return torch.stack(out)


def test_fusion_equals_direct_per_example_formula(tiny_blender_dir):
    toker, model = tiny_model(tiny_blender_dir)
    with torch.no_grad():  # non-trivial learnt parts so each term matters
        model.persona_context_w.copy_(torch.tensor([0.2, -0.4, 0.9]))
        model.persona_norm.weight.uniform_(0.5, 1.5), model.context_norm.bias.uniform_(-0.5, 0.5)
    batch = make_batch(toker, CONTEXTS, PERSONAS)
    with torch.no_grad():
        h_c = model.encode(batch["input_ids"], batch["attention_mask"])
        h_p = model.encode(batch["persona_input_ids"], batch["persona_attention_mask"])
        fused = model.fuse(h_c, h_p, batch["attention_mask"], batch["persona_attention_mask"])
        expected = direct_fusion(model, h_c, h_p)
        states = model.decoder_encoder_states(**{k: batch[k] for k in ("input_ids", "attention_mask",
                                                                        "persona_input_ids", "persona_attention_mask")})
    torch.testing.assert_close(fused, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(states, fused)
    assert not torch.allclose(fused, h_c, atol=1e-3)  # the persona really changes what the decoder sees


def test_shared_embedding_lookup_equals_two_encoder_passes_with_dropout(tiny_blender_dir):
    """The training speed-up (one embedding lookup for context and persona) changes no value and no dropout draw."""
    toker, model = tiny_model(tiny_blender_dir)
    model.train()
    batch = make_batch(toker, CONTEXTS, PERSONAS)
    keys = ("input_ids", "attention_mask", "persona_input_ids", "persona_attention_mask")
    torch.manual_seed(3)
    context, persona = model.encode_context_and_persona(*(batch[k] for k in keys))
    torch.manual_seed(3)
    separate_context = model.encode(batch["input_ids"], batch["attention_mask"])
    separate_persona = model.encode(batch["persona_input_ids"], batch["persona_attention_mask"])
    assert torch.equal(context, separate_context) and torch.equal(persona, separate_persona)
    torch.manual_seed(3)
    assert not torch.equal(model.encode(batch["input_ids"], batch["attention_mask"]),
                           model.encode(batch["input_ids"], batch["attention_mask"]))  # dropout is really on


FLUSH_RESPONSES = ["i am sorry to hear that", "hello", "what happened"]


def test_flushing_subnormals_in_the_fusion_changes_no_loss_and_no_weight(tiny_blender_dir):
    """flush_subnormal_fusion (the training speed-up) against the plain products: three optimizer steps with dropout,
    losses and every weight bit for bit; the fusion's softmaxes really hold subnormal probabilities."""
    from pal.optim import HF4AdamW, parameter_groups
    runs = []
    for flush in (False, True):
        toker, model = tiny_model(tiny_blender_dir, std=1.0)
        with torch.no_grad():  # encoder states as large as a full-size model's (d 512), so the softmaxes are peaked
            model.model.encoder.layers[-1].final_layer_norm.weight.fill_(4.0)
        batch = make_batch(toker, CONTEXTS, PERSONAS, FLUSH_RESPONSES, [0, 4, 2])
        model.flush_subnormal_fusion = flush
        model.train()
        optimizer = HF4AdamW(parameter_groups(model, 0.01, "spec"), lr=1e-3)
        torch.manual_seed(5)
        losses = []
        for _ in range(3):
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
        runs.append((losses, model.state_dict()))
    (plain_losses, plain), (flushed_losses, flushed) = runs
    assert plain_losses == flushed_losses
    assert all(torch.equal(plain[k], flushed[k]) for k in plain)
    with torch.no_grad():
        model.eval()
        h_c = model.encode(batch["input_ids"], batch["attention_mask"])
        h_p = model.encode(batch["persona_input_ids"], batch["persona_attention_mask"])
        p = torch.bmm(h_p, h_c.transpose(1, 2)).softmax(dim=-1)
    assert ((p > 0) & (p < torch.finfo(p.dtype).tiny)).any()


def test_unmasked_fusion_depends_on_padding_masked_does_not(tiny_blender_dir):
    """The authors' fusion attends over padding (so batching matters); fusion_mask_padding removes that."""
    toker, model = tiny_model(tiny_blender_dir)
    batch = make_batch(toker, CONTEXTS, PERSONAS)
    single = make_batch(toker, CONTEXTS[1:2], PERSONAS[1:2])  # example 1 with its own (shorter) padding
    n = int(single["attention_mask"].sum())
    keys = ("input_ids", "attention_mask", "persona_input_ids", "persona_attention_mask")
    with torch.no_grad():
        unmasked_batch = model.decoder_encoder_states(**{k: batch[k] for k in keys})[1, :n]
        unmasked_single = model.decoder_encoder_states(**{k: single[k] for k in keys})[0, :n]
        model.fusion_mask_padding = True
        masked_batch = model.decoder_encoder_states(**{k: batch[k] for k in keys})[1, :n]
        masked_single = model.decoder_encoder_states(**{k: single[k] for k in keys})[0, :n]
    assert not torch.allclose(unmasked_batch, unmasked_single, atol=1e-4)
    torch.testing.assert_close(masked_batch, masked_single, rtol=1e-5, atol=1e-5)


def test_extra_parameters_initial_values_and_alpha_frozen(tiny_blender_dir):
    _, model = build_model("strat", pretrained_model_path=tiny_blender_dir)
    state = model.state_dict()
    for key in ("persona_norm.weight", "persona_norm.bias", "context_norm.weight", "context_norm.bias",
                "persona_context_w", "strategy_alpha"):
        assert key in state
    assert torch.allclose(state["persona_context_w"], torch.full((3,), 1 / 3))
    assert torch.equal(state["strategy_alpha"], torch.full((8,), 0.5))
    assert not model.strategy_alpha.requires_grad
    assert model.persona_context_w.requires_grad
    assert model.strategy_token_ids == list(range(model.config.vocab_size - 8, model.config.vocab_size))


def test_new_embedding_rows_use_the_old_normal_init(tiny_blender_dir):
    """transformers 4.x drew added rows from normal(0, init_std); transformers 5's default (mean resizing) would
    centre them on the old rows' mean with their covariance."""
    toker, model = build_model("strat", pretrained_model_path=tiny_blender_dir)
    _, plain = build_model("vanilla", pretrained_model_path=tiny_blender_dir)
    old = plain.model.shared.weight.shape[0]
    new_rows = model.model.shared.weight[old:]
    assert new_rows.shape[0] == len(toker) - toker.vocab_size == 12
    assert torch.equal(model.model.shared.weight[:old], plain.model.shared.weight)
    assert 0.6 * model.config.init_std < new_rows.std().item() < 1.4 * model.config.init_std
    assert model.lm_head.weight.data_ptr() == model.model.shared.weight.data_ptr()  # still tied
    assert model.final_logits_bias.shape == (1, len(toker)) and not model.final_logits_bias[0, old:].any()


# ---- forward / loss -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", ["strat", "strat_no_persona", "vanilla"])
def test_forward_loss_fields(tiny_blender_dir, config):
    toker, model = tiny_model(tiny_blender_dir, config)
    personas = PERSONAS if config == "strat" else None
    batch = make_batch(toker, CONTEXTS, personas, RESPONSES, [0, 4, 2] if config != "vanilla" else None)
    batch["meta"] = {"sample_id": [0, 1, 2]}  # extra keys of the inputter are ignored
    with torch.no_grad():
        out = model(**batch)
    labels = batch["labels"]
    per_token = F.cross_entropy(out.logits.reshape(-1, out.logits.shape[-1]), labels.reshape(-1),
                                reduction="none").view(labels.shape)
    count = labels.ne(-100).sum(1).float()
    torch.testing.assert_close(out.label_count, count)
    torch.testing.assert_close(out.loss_sum_per_example, per_token.sum(1))
    torch.testing.assert_close(out.loss, per_token.sum() / count.sum())
    with pytest.raises(TypeError, match="unexpected batch keys"):
        model(**batch, decoder_attention_mask=batch["attention_mask"])


def test_vanilla_logits_equal_transformers_with_4x_decoder_embedding_scale(tiny_blender_dir):
    """Our decoder scales token embeddings by sqrt(d_model) as transformers 4.x did; transformers 5.23 does not."""
    from transformers import BlenderbotSmallForConditionalGeneration
    toker, model = tiny_model(tiny_blender_dir, "vanilla")
    hf = BlenderbotSmallForConditionalGeneration(model.config).eval()
    hf.load_state_dict(model.state_dict())
    batch = make_batch(toker, CONTEXTS)
    dec = torch.tensor([[1, 20, 21, 22], [1, 30, 2, 0], [1, 5, 6, 7]])
    with torch.no_grad():
        ours = model(**batch, decoder_input_ids=dec).logits
        embeds = hf.model.decoder.embed_tokens(dec) * hf.model.decoder.embed_scale
        theirs_4x = hf(**batch, decoder_inputs_embeds=embeds).logits
        theirs_5 = hf(**batch, decoder_input_ids=dec).logits
        model.hf4_decoder_embed_scale = False
        ours_5 = model(**batch, decoder_input_ids=dec).logits
    torch.testing.assert_close(ours, theirs_4x, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours_5, theirs_5, rtol=1e-5, atol=1e-5)


def test_loss_decreases_and_alpha_stays(tiny_blender_dir, tmp_path):
    """A few AdamW steps on a small batch of real featurized examples lower the loss; strategy_alpha is not trained."""
    from pal.config import load_config
    from pal.inputter import Featurizer, settings_for, validation_batches
    toker, model = tiny_model(tiny_blender_dir, std=0.05)
    settings = settings_for(load_config("strat"), "strat", 64, 16)
    features = Featurizer(toker, settings).file_features(write_dialogues(tmp_path / "d.txt"), "training")
    batch = next(validation_batches(features, 64, toker.pad_token_id, True))
    model.train()
    torch.manual_seed(0)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    losses = []
    for _ in range(6):
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5, losses
    assert torch.equal(model.strategy_alpha, torch.full((8,), 0.5))
    assert not torch.allclose(model.persona_context_w, torch.full((3,), 1 / 3))  # fusion weights do train


# ---- checkpoints ----------------------------------------------------------------------------------------------------
def test_save_load_gives_identical_logits(tiny_blender_dir, tmp_path):
    toker, model = tiny_model(tiny_blender_dir)
    with torch.no_grad():
        model.strategy_alpha.copy_(torch.linspace(0, 0.7, 8))
        model.persona_context_w.copy_(torch.tensor([0.5, 0.1, -0.2]))
    path = str(tmp_path / "epoch-0.bin")
    save_checkpoint(model, path)
    _, loaded = build_model("strat", pretrained_model_path=tiny_blender_dir, checkpoint=path)
    loaded.eval()
    batch = make_batch(toker, CONTEXTS, PERSONAS, RESPONSES, [0, 1, 2])
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, loaded(**batch).logits)
    assert torch.equal(loaded.strategy_alpha, torch.linspace(0, 0.7, 8))
    assert not loaded.strategy_alpha.requires_grad


def authors_state_dict(model):
    """A state_dict keyed as the authors' transformers 4.x model wrote it, built from names (not from
    model.state_dict()): every tied embedding copy, final_logits_bias [1, V], learned positions, the PAL extras."""
    c = model.config
    src = {n: t for n, t in list(model.named_parameters()) + list(model.named_buffers())}
    shared = src["model.shared.weight"].detach().clone()
    state = {"final_logits_bias": torch.zeros(1, shared.shape[0]), "model.shared.weight": shared,
             "model.encoder.embed_tokens.weight": shared, "model.decoder.embed_tokens.weight": shared,
             "lm_head.weight": shared}
    attn = [f"{p}_proj.{w}" for p in "kvq" for w in ("weight", "bias")] + ["out_proj.weight", "out_proj.bias"]
    norms = lambda name: [f"{name}.weight", f"{name}.bias"]
    for side, n_layers in (("encoder", c.encoder_layers), ("decoder", c.decoder_layers)):
        names = [f"model.{side}.embed_positions.weight"] + [f"model.{side}.{n}" for n in norms("layernorm_embedding")]
        for i in range(n_layers):
            layer = [f"self_attn.{a}" for a in attn] + norms("self_attn_layer_norm") + norms("final_layer_norm")
            layer += ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
            if side == "decoder":
                layer += [f"encoder_attn.{a}" for a in attn] + norms("encoder_attn_layer_norm")
            names += [f"model.{side}.layers.{i}.{n}" for n in layer]
        for name in names:
            state[name] = src[name].detach().clone()
    if isinstance(model, PersonaFusionBlenderbotSmall):  # Blender-Joint's model has no extra parameters
        for name in ("persona_norm.weight", "persona_norm.bias", "context_norm.weight", "context_norm.bias",
                     "persona_context_w"):
            state[name] = src[name].detach().clone()
        state["strategy_alpha"] = torch.tensor([0.0, 0.75, 0.0, 0.0, 0.75, 0.75, 0.75, 0.375])
    return state


@pytest.mark.parametrize("variant", ["as_saved", "dataparallel_prefix", "single_embedding_copy"])
def test_authors_style_state_dict_loads(tiny_blender_dir, tmp_path, variant):
    toker, model = tiny_model(tiny_blender_dir)
    state = authors_state_dict(model)
    assert set(state) == set(model.state_dict())  # the 4.x names are today's names
    if variant == "dataparallel_prefix":
        state = {"module." + k: v for k, v in state.items()}
    if variant == "single_embedding_copy":
        for k in ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight",
                  "final_logits_bias"):
            state.pop(k)
    path = str(tmp_path / "epoch-4.bin")
    torch.save(state, path)
    _, loaded = build_model("strat", pretrained_model_path=tiny_blender_dir, checkpoint=path)
    loaded.eval()
    assert torch.equal(loaded.strategy_alpha, torch.tensor([0.0, 0.75, 0.0, 0.0, 0.75, 0.75, 0.75, 0.375]))
    batch = make_batch(toker, CONTEXTS, PERSONAS, RESPONSES, [0, 1, 2])
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, loaded(**batch).logits)


def test_authors_blender_joint_state_dict_loads_and_decodes(tiny_blender_dir, tmp_path):
    """An epoch-N.bin of the authors' Blender-Joint: their strat_no_persona.json adds 10 tokens, so every vocabulary
    tensor has len(BlenderBot-small) + 10 rows (54,954 with the real tokenizer)."""
    from pal.generation import generate
    toker, model = tiny_model(tiny_blender_dir, "strat_no_persona")
    state = authors_state_dict(model)
    assert set(state) == set(model.state_dict())
    rows = toker.vocab_size + 10
    assert state["model.shared.weight"].shape[0] == state["final_logits_bias"].shape[1] == rows
    if toker.vocab_size == 54944:  # the real BlenderBot-small tokenizer
        assert rows == 54954
    path = str(tmp_path / "epoch-4.bin")
    torch.save(state, path)
    _, loaded = build_model("strat_no_persona", pretrained_model_path=tiny_blender_dir, checkpoint=path)
    loaded.eval()
    assert isinstance(loaded, StrategyBlenderbotSmall) and loaded.strategy_token_ids == list(range(rows - 8, rows))
    batch = make_batch(toker, CONTEXTS, None, None, [0, 4, 2])
    options = dict(top_k=0, top_p=1.0, repetition_penalty=1.0, min_length=0, max_length=8)
    decoded, expected = generate(loaded, batch, toker, **options), generate(model, batch, toker, **options)
    assert decoded == expected and all(len(s) > 0 for s in decoded["sequences"])
    assert len(decoded["pred_strat_id"]) == 3 and all(0 <= p < 8 for p in decoded["pred_strat_id"])
    # the 12-token option cannot take it: every vocabulary tensor is 2 rows short
    with pytest.raises(UserError, match=f"model.shared.weight \\({rows}, "):
        build_model("strat_no_persona_12tok", pretrained_model_path=tiny_blender_dir, checkpoint=path)


def test_checkpoint_of_another_config_lists_keys(tiny_blender_dir, tmp_path):
    toker, model = build_model("strat", pretrained_model_path=tiny_blender_dir)
    path = str(tmp_path / "epoch-0.bin")
    save_checkpoint(model, path)
    with pytest.raises(UserError) as vanilla_error:
        build_model("vanilla", pretrained_model_path=tiny_blender_dir, checkpoint=path)
    message = str(vanilla_error.value)
    assert "\n" not in message and "persona_norm.weight" in message and "strategy_alpha" in message
    d = model.config.d_model
    assert f"model.shared.weight ({len(toker)}, {d}) vs ({toker.vocab_size}, {d})" in message
    with pytest.raises(UserError, match=r"unexpected 6: context_norm.bias"):
        build_model("strat_no_persona", pretrained_model_path=tiny_blender_dir, checkpoint=path)
    _, joint = build_model("strat_no_persona", pretrained_model_path=tiny_blender_dir)
    save_checkpoint(joint, path)
    with pytest.raises(UserError, match=r"missing 6: context_norm.bias.*strategy_alpha"):
        build_model("strat", pretrained_model_path=tiny_blender_dir, checkpoint=path)


def test_unreadable_or_missing_checkpoint(tiny_blender_dir, tmp_path):
    with pytest.raises(UserError, match="nope.bin: no such file"):
        build_model("strat", pretrained_model_path=tiny_blender_dir, checkpoint=str(tmp_path / "nope.bin"))
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="bad.bin: not a readable torch file"):
        build_model("strat", pretrained_model_path=tiny_blender_dir, checkpoint=str(bad))


def test_missing_pretrained_weights_say_where_to_put_them(tiny_blender_dir, tmp_path):
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    for name in os.listdir(tiny_blender_dir):
        if not name.endswith((".safetensors", ".bin")):
            (no_weights / name).write_bytes(open(os.path.join(tiny_blender_dir, name), "rb").read())
    with pytest.raises(UserError, match="Blenderbot_small-90M"):
        build_model("strat", pretrained_model_path=str(no_weights))
    with pytest.raises(UserError, match="Blenderbot_small-90M"):
        build_model("strat", pretrained_model_path=str(tmp_path / "missing_dir"))
    # with a checkpoint only config.json and the tokenizer are needed
    _, model = build_model("strat", pretrained_model_path=tiny_blender_dir)
    save_checkpoint(model, str(tmp_path / "epoch-0.bin"))
    _, loaded = build_model("strat", pretrained_model_path=str(no_weights), checkpoint=str(tmp_path / "epoch-0.bin"))
    assert isinstance(loaded, PersonaFusionBlenderbotSmall)


def test_config_picks_the_model_class(tiny_blender_dir):
    assert isinstance(build_model("strat_no_persona", pretrained_model_path=tiny_blender_dir)[1],
                      StrategyBlenderbotSmall)
    toker, vanilla = build_model("vanilla", pretrained_model_path=tiny_blender_dir)
    assert isinstance(vanilla, VanillaBlenderbotSmall) and len(toker) == toker.vocab_size
    with pytest.raises(UserError, match="unknown --config_name"):
        build_model("nope", pretrained_model_path=tiny_blender_dir)


def test_load_checkpoint_directly(tiny_blender_dir, tmp_path):
    _, model = tiny_model(tiny_blender_dir)
    path = str(tmp_path / "epoch-1.bin")
    save_checkpoint(model, path)
    _, other = build_model("strat", pretrained_model_path=tiny_blender_dir)
    load_checkpoint(other, path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), other.state_dict().values()))
