"""The PAL model family on transformers 5 (docs/reproduction.md#model).

Three models; pal.variants declares which variant (config) builds which:
- `PersonaFusionBlenderbotSmall` (PAL): BlenderBot-small whose decoder cross-attends to the context encoder states
  fused with the persona encoder states; decoded with the contrastive rule in pal.generation.
- `StrategyBlenderbotSmall` (Blender-Joint): plain BlenderBot-small with the added tokens; the reply starts with a
  strategy token.
- `VanillaBlenderbotSmall`: plain BlenderBot-small, no added tokens.
A model says what it reads and predicts (`uses_persona`, `predicts_strategy`); the decoder and the builder ask it.
All three subclass `BlenderbotSmallForConditionalGeneration`, so `state_dict()` has the authors' key names and
`torch.save(model.state_dict())` is an authors'-style `epoch-N.bin`. `model(**batch)` ignores the batch keys that
are not model inputs (NON_MODEL_BATCH_KEYS); any other unknown key is a TypeError, so typos do not pass silently.
Two transformers-5 changes are undone by default, as 4.x behaved (docs/reproduction.md#transformers-5): decoder
embeddings scaled by sqrt(d_model) (`hf4_decoder_embed_scale`), and new embedding rows drawn from N(0, init_std)
(`new_embeddings_init="normal"`, `mean_resizing=False`; "mean" is the alternative).
"""
import os
import re
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import BlenderbotSmallConfig, BlenderbotSmallForConditionalGeneration
from transformers import initialization as hf_init
from transformers.utils import ModelOutput

from palkit.cli import UserError
from palkit.hub import from_folder_or_hub
from palkit.loaders import load_json
from palkit.model_files import check_model_dir, is_local
from .checkpoint import load_checkpoint
from .config import HUB_NAME, STRATEGY_TOKENS, WEIGHTS_HINT, build_tokenizer, load_config, resolve_pretrained_path
from .variants import FUSION_KEYS, variant

# Batch keys produced by the inputter that are not model inputs: forward() ignores them.
NON_MODEL_BATCH_KEYS = ("strat_id", "meta", "sample_id", "post", "response", "persona", "batch_size", "other_res",
                        "input_length", "validation")
STRATEGY_ALPHA_INIT = 0.5  # the released code initialises all 8 to 0.5 and never trains them
NUM_STRATEGIES = len(STRATEGY_TOKENS)


@dataclass
class PALOutput(ModelOutput):
    """loss: mean token cross-entropy over labels != -100; loss_sum_per_example / label_count: per example
    (gen.json's `loss` is their ratio, PPL is exp(sum / count) over the corpus)."""
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    loss_sum_per_example: torch.Tensor | None = None
    label_count: torch.Tensor | None = None


def shift_labels_right(labels, pad_id, bos_id):
    """decoder_input_ids = [bos] + labels[:-1], -100 replaced by pad (what the authors do when none are given)."""
    shifted = labels.new_full(labels.shape, pad_id)
    shifted[:, 1:] = labels[:, :-1]
    shifted[:, 0] = bos_id
    return shifted.masked_fill(shifted == -100, pad_id)


class _BlenderbotSmallBase(BlenderbotSmallForConditionalGeneration):
    """Shared forward/loss and the encoder/decoder entry points that pal.generation drives step by step."""

    uses_persona = False
    predicts_strategy = False
    # Restore transformers 4.x decoder embedding scaling (module docstring).
    hf4_decoder_embed_scale = True

    def __init__(self, config):
        super().__init__(config)
        self.strategy_token_ids = None  # set by build_model from the tokenizer (the last 8 ids)

    # ---- building blocks -------------------------------------------------------------------------------------
    def encode(self, input_ids, attention_mask):
        """Encoder hidden states [B, L, d]."""
        return self.model.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def decoder_token_embeddings(self, decoder_input_ids):
        decoder = self.model.decoder
        embeds = decoder.embed_tokens(decoder_input_ids)
        if self.hf4_decoder_embed_scale:
            embeds = embeds * decoder.embed_scale
        return embeds

    def decoder_logits(self, decoder_input_ids, encoder_states, encoder_mask, cache=None, use_cache=False):
        """(lm logits [B, T, V] incl. final_logits_bias, cache). With a cache, pass only the new decoder ids."""
        hidden, cache = self.decoder_hidden(decoder_input_ids, encoder_states, encoder_mask, cache, use_cache)
        return self.lm_logits(hidden), cache

    def decoder_hidden(self, decoder_input_ids, encoder_states, encoder_mask, cache=None, use_cache=False):
        """(decoder output states [B, T, d], cache). `cache` is transformers' EncoderDecoderCache (the `cache`
        argument/output of transformers >= 5.24, which replaces the deprecated `past_key_values`)."""
        out = self.model.decoder(
            inputs_embeds=self.decoder_token_embeddings(decoder_input_ids),
            encoder_hidden_states=encoder_states,
            encoder_attention_mask=encoder_mask,
            cache=cache,
            use_cache=use_cache,
        )
        return out.last_hidden_state, out.cache

    def lm_logits(self, hidden):
        return self.lm_head(hidden) + self.final_logits_bias.to(hidden.dtype)

    def decoder_encoder_states(self, input_ids, attention_mask, persona_input_ids=None, persona_attention_mask=None):
        """What the decoder cross-attends to during training/validation (fused for PAL, plain otherwise)."""
        return self.encode(input_ids, attention_mask)

    # ---- training / validation -----------------------------------------------------------------------------
    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None, labels=None,
                persona_input_ids=None, persona_attention_mask=None, **extra):
        unknown = sorted(k for k in extra if k not in NON_MODEL_BATCH_KEYS)
        if unknown:
            raise TypeError(f"{type(self).__name__}.forward got unexpected batch keys {unknown}")
        if decoder_input_ids is None:
            if labels is None:
                raise ValueError("forward needs decoder_input_ids or labels")
            decoder_input_ids = shift_labels_right(labels, self.config.pad_token_id, self.config.bos_token_id)
        states = self.decoder_encoder_states(input_ids, attention_mask, persona_input_ids, persona_attention_mask)
        logits, _ = self.decoder_logits(decoder_input_ids, states, attention_mask)
        if labels is None:
            return PALOutput(logits=logits)
        return PALOutput(logits=logits, **token_losses(logits, labels))


def token_losses(logits, labels):
    """loss (mean over labelled tokens), per-example summed loss and label count, computed in float32."""
    per_token = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), labels.reshape(-1),
                                ignore_index=-100, reduction="none").view(labels.shape)
    loss_sum = per_token.sum(dim=1)
    count = labels.ne(-100).sum(dim=1).to(loss_sum.dtype)
    return {"loss": loss_sum.sum() / count.sum(), "loss_sum_per_example": loss_sum, "label_count": count}


class VanillaBlenderbotSmall(_BlenderbotSmallBase):
    """Plain BlenderBot-small (config `vanilla`)."""


class StrategyBlenderbotSmall(_BlenderbotSmallBase):
    """Blender-Joint: plain model; the first decoded token is a strategy token."""

    predicts_strategy = True


class PersonaFusionBlenderbotSmall(_BlenderbotSmallBase):
    """PAL: persona/context fusion (docs/reproduction.md#model) plus the per-strategy contrast weights.

    fusion_mask_padding (off by default, as the authors): mask padded keys in both fusion attentions so outputs
    no longer depend on how examples are batched.
    flush_subnormal_fusion (on by default): the fusion's unscaled scores make its softmaxes peaked, with many
    probabilities (and score gradients) below float's smallest normal number (~1.2e-38); CPUs multiply such subnormal
    numbers up to 100x slower, which made the fusion's products a fifth of a CPU training step. They are set to zero
    before the products (probabilities in the forward pass, score gradients in the backward pass). A subnormal term
    is below half a unit in the last place of any normal sum it joins, so the results are the same bits unless a
    whole sum is itself subnormal; tests/test_model.py checks losses and weights bit for bit against False.
    """

    uses_persona = True
    predicts_strategy = True
    # Missing from a plain BlenderBot-small checkpoint by design: initialised by _init_weights, no load report.
    _keys_to_ignore_on_load_missing = ["final_logits_bias", *map(re.escape, FUSION_KEYS)]

    def __init__(self, config):
        super().__init__(config)
        d = config.d_model
        self.persona_norm = nn.LayerNorm(d)   # LayerNorm_1, applied to A + H_p
        self.context_norm = nn.LayerNorm(d)   # LayerNorm_2, applied to H_c + B
        self.persona_context_w = nn.Parameter(torch.full((3,), 1 / 3))
        # In state_dict (authors' checkpoints carry it) but never trained.
        self.strategy_alpha = nn.Parameter(torch.full((NUM_STRATEGIES,), STRATEGY_ALPHA_INIT), requires_grad=False)
        self.fusion_mask_padding = False
        self.flush_subnormal_fusion = True
        self.post_init()
        self.strategy_alpha.requires_grad_(False)

    def _init_weights(self, module):
        # from_pretrained builds on the meta device and initialises only what the checkpoint lacks; the hf_init
        # functions skip tensors that were loaded.
        super()._init_weights(module)
        # The parent __init__ already runs this before the extra parameters exist.
        if module is self and hasattr(module, "strategy_alpha"):
            hf_init.constant_(module.persona_context_w, 1 / 3)
            hf_init.constant_(module.strategy_alpha, STRATEGY_ALPHA_INIT)

    def fusion_weights(self):
        """(w1, w2, w3) = softmax(theta), written as the authors do (exp / sum of exp)."""
        e = torch.exp(self.persona_context_w)
        return e / e.sum()

    def fuse(self, context_states, persona_states, context_mask=None, persona_mask=None):
        """w1 H_c + w2 LN1(A + H_p) + w3 LN2(H_c + B); A = softmax(H_p H_c^T) H_c, B = softmax(H_c H_p^T) H_p.

        No scaling; padding is attended to unless fusion_mask_padding is set (then the masks are required).
        Both inputs are [B, L, d] with the same L (the inputter pads context and persona to one length).
        """
        scores_pc = torch.bmm(persona_states, context_states.transpose(1, 2))  # [B, L_p, L_c]
        flush = FlushSubnormal.apply if self.flush_subnormal_fusion else (lambda x, in_forward: x)
        scores_pc = flush(scores_pc, False)                                    # its gradient, for the bmm backward
        scores_cp = scores_pc.transpose(1, 2)                                   # H_c H_p^T = (H_p H_c^T)^T
        if self.fusion_mask_padding:
            scores_pc = _mask_keys(scores_pc, context_mask)
            scores_cp = _mask_keys(scores_cp, persona_mask)
        persona_over_context = torch.bmm(flush(scores_pc.softmax(dim=-1), True), context_states)  # A
        context_over_persona = torch.bmm(flush(scores_cp.softmax(dim=-1), True), persona_states)  # B
        a_prime = self.persona_norm(persona_over_context + persona_states)
        b_prime = self.context_norm(context_states + context_over_persona)
        w = self.fusion_weights()
        return w[0] * context_states + w[1] * a_prime + w[2] * b_prime

    def decoder_encoder_states(self, input_ids, attention_mask, persona_input_ids=None, persona_attention_mask=None):
        return self.fused_and_context_states(input_ids, attention_mask, persona_input_ids, persona_attention_mask)[0]

    def fused_and_context_states(self, input_ids, attention_mask, persona_input_ids, persona_attention_mask):
        """(fused states, plain context states): generation needs both for the contrastive logits."""
        if persona_input_ids is None:
            raise UserError(f"{type(self).__name__} needs persona_input_ids in the batch (were the data prepared "
                            "with this model's --config_name?)")
        if persona_input_ids.shape[1] != input_ids.shape[1]:
            raise ValueError("context and persona must be padded to the same length "
                             f"({input_ids.shape[1]} != {persona_input_ids.shape[1]})")
        context, persona = self.encode_context_and_persona(input_ids, attention_mask, persona_input_ids,
                                                           persona_attention_mask)
        return self.fuse(context, persona, attention_mask, persona_attention_mask), context

    def encode_context_and_persona(self, input_ids, attention_mask, persona_input_ids, persona_attention_mask):
        """Two encoder passes, as the authors run them, sharing one token-embedding lookup.

        The shared lookup gives the same values and the same dropout draws as two separate `encode` calls, but
        backpropagates one dense [vocab, d] embedding gradient instead of two (a tenth of a CPU training step).
        """
        encoder = self.model.encoder
        embeds = encoder.embed_tokens(torch.cat([input_ids, persona_input_ids])) * encoder.embed_scale
        context_embeds, persona_embeds = embeds.split(input_ids.shape[0])
        context = encoder(inputs_embeds=context_embeds, attention_mask=attention_mask).last_hidden_state
        persona = encoder(inputs_embeds=persona_embeds, attention_mask=persona_attention_mask).last_hidden_state
        return context, persona


def flush_subnormal(x):
    return x.masked_fill(x.abs() < torch.finfo(x.dtype).tiny, 0)


class FlushSubnormal(torch.autograd.Function):
    """Subnormal numbers set to zero in the values (in_forward; the gradient passes unchanged) or in the gradient
    (the values pass unchanged): see PersonaFusionBlenderbotSmall.flush_subnormal_fusion."""

    @staticmethod
    def forward(ctx, x, in_forward):
        ctx.in_forward = in_forward
        return flush_subnormal(x) if in_forward else x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return (grad if ctx.in_forward else flush_subnormal(grad)), None


def _mask_keys(scores, key_mask):
    if key_mask is None:
        raise ValueError("fusion_mask_padding needs attention masks")
    return scores.masked_fill(~key_mask.bool()[:, None, :], torch.finfo(scores.dtype).min)


# ---- building ---------------------------------------------------------------------------------------------------
def build_model(config_name, pretrained_model_path=None, checkpoint=None, fusion_mask_padding=False,
                new_embeddings_init="normal", device=None, model_config_dir=None, flush_subnormal_fusion=True):
    """(tokenizer, model) of the variant declared for config `config_name` (pal.variants), as the authors'
    build_model does.

    Loads pretrained BlenderBot-small from the config's directory (or `pretrained_model_path`), adds the config's
    tokens, resizes the embeddings to len(tokenizer) and, when `checkpoint` (an `epoch-N.bin`) is given, loads it
    strictly. With a checkpoint the pretrained *weights* are not needed (only config.json and the tokenizer files):
    every parameter comes from the checkpoint. `model_config_dir` (a run folder: palkit.run_folder) holds the trained
    model's config.json, which then gives the model's shape instead of the pretrained folder's.
    """
    declared = variant(config_name)
    config = load_config(config_name)
    path = resolve_pretrained_path(config, pretrained_model_path)
    toker = build_tokenizer(config, path)
    shape_from = model_config_dir if checkpoint is not None and model_config_dir else path
    model = _instantiate(declared.load_model_class(), shape_from, config, declared.extra_checkpoint_keys,
                         weights_needed=checkpoint is None)
    if model.uses_persona != declared.reads_persona:
        raise ValueError(f"variant {declared.name!r} declares reads_persona={declared.reads_persona}, but its model "
                         f"{type(model).__name__} has uses_persona={model.uses_persona}")
    if len(toker) > toker.vocab_size:  # the authors resize only when tokens were added
        if new_embeddings_init not in ("normal", "mean"):
            raise ValueError(f"new_embeddings_init must be 'normal' or 'mean', got {new_embeddings_init!r}")
        model.resize_token_embeddings(len(toker), mean_resizing=new_embeddings_init == "mean")
    if model.predicts_strategy:
        model.strategy_token_ids = strategy_token_ids(toker)
    if model.uses_persona:
        model.fusion_mask_padding = bool(fusion_mask_padding)
        model.flush_subnormal_fusion = bool(flush_subnormal_fusion)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, config_name)
    if model.uses_persona:
        model.strategy_alpha.requires_grad_(False)  # never trained (the released code)
    if device is not None:
        model.to(device)
    return toker, model


def strategy_token_ids(toker):
    """Ids of the 8 strategy tokens; the authors index them as the last 8 vocabulary ids, so check that holds."""
    ids = toker.convert_tokens_to_ids(STRATEGY_TOKENS)
    if ids != list(range(len(toker) - NUM_STRATEGIES, len(toker))):
        raise UserError(f"the tokenizer's strategy tokens have ids {ids}, not the last {NUM_STRATEGIES} ids of its "
                        f"{len(toker)}-token vocabulary; the config's expanded_vocab must end with them")
    return ids


def _instantiate(model_cls, path, config, extra_keys, weights_needed):
    custom = config.get("custom_config_path")
    if custom:  # the authors' option: a randomly initialised model of another shape
        return model_cls(BlenderbotSmallConfig.from_pretrained(custom))
    if not weights_needed:
        return model_cls(_load_hf_config(path))
    check_model_dir(path, WEIGHTS_HINT)  # a truncated weights file is one line, not a loader traceback
    try:
        model, info = from_folder_or_hub(lambda **kw: model_cls.from_pretrained(path, output_loading_info=True, **kw),
                                         path, WEIGHTS_HINT, known=(HUB_NAME,))
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load pretrained weights from {path!r} ({str(e).splitlines()[0]}): " + WEIGHTS_HINT)
    missing = [k for k in info.get("missing_keys", []) if k not in extra_keys and k != "final_logits_bias"]
    if missing:
        raise UserError(f"pretrained weights in {path!r} lack {len(missing)} tensors (e.g. {missing[:3]}): "
                        + WEIGHTS_HINT)
    return model


def _load_hf_config(path):
    if is_local(path):
        load_json(os.path.join(path, "config.json"), expect=dict, hint=WEIGHTS_HINT)
    try:
        return from_folder_or_hub(lambda **kw: BlenderbotSmallConfig.from_pretrained(path, **kw), path, WEIGHTS_HINT,
                                  known=(HUB_NAME,))
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read config.json from {path!r} ({str(e).splitlines()[0]}): " + WEIGHTS_HINT)
