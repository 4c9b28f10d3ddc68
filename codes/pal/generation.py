"""Decoding for the PAL family on transformers 5, without GenerationMixin (docs/reproduction.md#contrastive-decoding).

`generate(model, batch, toker, decoding)` (or `**options` by name) reproduces what the authors' model.generate on
transformers 4.x did:
1. strategy step (PAL, Blender-Joint): one decoder step on [bos]; PAL's logits are (1 + 0.075) z_p - 0.075 z_c
   (z_p from the fused encoder states, z_c from the plain context states); the strategy is the argmax over the 8
   strategy tokens, or the gold one; the authors' "top3" field holds 5 ids (`strategy_top3_k`);
2. reply: prefix [bos, strategy], then at every step (1 + a_s) z_p - a_s z_c with a_s = the checkpoint's
   strategy_alpha[s] (override with `strategy_alpha`, 0 for "PAL alpha=0"); z_c has its own KV cache;
3. transformers' LogitsProcessor classes in 4.x's order (repetition penalty, n-gram ban, banned added tokens, min
   length; temperature, top-k, top-p), 4.x's forced eos and length rules, the same RNG use for a seed (several as
   pal.logits_process's cheaper equivalents, the same bits: docs/reproduction.md#sampling);
4. num_beams > 1: beam search over the same combined logits (pal.beam_search).
`contrastive_impl`: "two_pass" is the released computation, exact; "stacked" (default) runs both streams as one
decoder call on a [2B, L, d] batch with one cache and one lm_head (logits differ at float rounding only;
tests/test_stacked_decoding.py). Caches are transformers' `cache` argument/output (>= 5.24). The options, their
defaults and ranges: pal.decoding.DecodingOptions.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.generation.logits_process import (ForcedEOSTokenLogitsProcessor, LogitsProcessorList,
                                                    TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper)

from palkit.cli import UserError
from .beam_search import beam_search
from .decoding import decoding_options, parse_alpha
from .dialogues import normalise
from .logits_process import (BannedTokens, MinLength, NoRepeatNGram, RepetitionPenalty, TopKTopPWarper,
                             multinomial_one, warp)
from .model import NUM_STRATEGIES


def decode_text(toker, ids):
    """The authors' reply text: transformers 4.x decode (clean_up_tokenization_spaces was True by default there;
    transformers 5 defaults to False for this tokenizer), whitespace-normalised."""
    return normalise(toker.decode(ids, clean_up_tokenization_spaces=True))


@torch.no_grad()
def generate(model, batch, toker, decoding=None, generators=None, on_step=None, **options):
    """Decode a batch (contract batch dict; decoder_input_ids/labels are not needed) with `decoding` (a
    pal.decoding.DecodingOptions), or the DecodingOptions of `options` by name.

    Returns {"sequences": [reply ids cut at eos] per example}; strategy models add pred_strat_id [B],
    pred_strat_id_top1 [B][1], pred_strat_id_top3 [B][k], pred_strat_id_dist [B][8] (python lists).
    generators: one torch.Generator per example, so that each example samples as it would alone (None: the global
    RNG, as the authors). on_step(logits, tokens): called at each reply step with the combined logits before any
    processor [B, V] and the tokens chosen [B] (pad for finished examples). Both need num_beams=1.
    """
    if decoding is not None and options:
        raise TypeError("generate takes a DecodingOptions or options by name, not both")
    opts = decoding if decoding is not None else decoding_options(**options)
    opts.check()
    if model.training:
        raise ValueError("call model.eval() before generate (dropout would change the outputs)")
    batch = {k: v.to(model.device) if torch.is_tensor(v) else v for k, v in batch.items()}
    decoder = ContrastiveDecoder(model, encoder_streams(model, batch), opts.use_cache,
                                 stacked=opts.contrastive_impl == "stacked")
    strategy_fields, prefix, alpha = {}, bos_column(batch["input_ids"], toker.bos_token_id), None
    if model.predicts_strategy:
        strategy = choose_strategy(model, decoder, batch, opts)
        strategy_fields = strategy_lists(strategy, opts.strategy_top3_k)
        prefix = torch.cat([prefix, strategy_token_column(model, strategy["pred"])], dim=1)
        alpha = contrast_alpha(model, strategy["pred"], opts)
    if alpha is None or not bool(alpha.any()):
        decoder.keep_first_stream()  # a = 0 everywhere: (1 + 0) z_p - 0 z_c == z_p exactly
        alpha = None
    decoder.alpha = alpha
    ids = decode_reply(decoder, prefix, opts, toker, model.config.forced_eos_token_id, generators, on_step)
    sequences = [cut_at_eos(row[prefix.shape[1]:], toker.eos_token_id) for row in ids]
    return {"sequences": sequences, **strategy_fields}


# ---- encoder side -------------------------------------------------------------------------------------------------
@dataclass
class EncoderStream:
    states: torch.Tensor  # [N, L, d] what the decoder cross-attends to
    mask: torch.Tensor    # [N, L] the context's attention mask


def encoder_streams(model, batch):
    """[fused, context] for PAL, [context] otherwise; both use the context mask (docs/reproduction.md#model).

    batch["own_length"] [B] (optional, PAL): encode and fuse each example at the length it is padded to alone (the
    fusion attends over padding), the states beyond it zero and masked: a batch of requests (chat_systems' server)
    then gives each one what it gets alone."""
    ids, mask = batch["input_ids"], batch["attention_mask"]
    if model.uses_persona:
        persona_ids, persona_mask = batch.get("persona_input_ids"), batch.get("persona_attention_mask")
        own = batch.get("own_length")
        if own is None:
            fused, context = model.fused_and_context_states(ids, mask, persona_ids, persona_mask)
        else:
            fused, context = (torch.zeros(*ids.shape, model.config.d_model, device=ids.device) for _ in range(2))
            for width in own.unique().tolist():
                rows = (own == width).nonzero()[:, 0]
                fused[rows, :width], context[rows, :width] = model.fused_and_context_states(
                    ids[rows, :width], mask[rows, :width], persona_ids[rows, :width], persona_mask[rows, :width])
        return [EncoderStream(fused, mask), EncoderStream(context, mask)]
    return [EncoderStream(model.encode(ids, mask), mask)]


def bos_column(input_ids, bos_id):
    return torch.full((input_ids.shape[0], 1), bos_id, dtype=torch.long, device=input_ids.device)


# ---- strategy step -------------------------------------------------------------------------------------------------
def choose_strategy(model, decoder, batch, opts):
    """First decoder step on [bos]: strategy logits, prediction (or gold), top-k and distribution.

    The stacked decoder keeps this step's cache for the reply; two_pass runs it uncached, as the released code."""
    bos = bos_column(batch["input_ids"], model.config.bos_token_id)
    logits = decoder.combined_logits(bos, opts.strategy_contrast, keep_cache=decoder.reuse_strategy_cache)
    strategy_logits = logits[:, model.strategy_token_ids].float()
    if opts.use_gold_strategy:
        if "strat_id" not in batch:
            raise UserError("use_gold_strategy needs strat_id (the gold strategy) in the batch")
        pred = batch["strat_id"].to(strategy_logits.device).long()
    else:
        pred = strategy_logits.argmax(dim=-1)
    return {"pred": pred, "logits": strategy_logits}


def strategy_lists(strategy, top3_k):
    logits = strategy["logits"]
    return {
        "pred_strat_id": strategy["pred"].tolist(),
        "pred_strat_id_top1": logits.topk(1, dim=-1).indices.tolist(),
        "pred_strat_id_top3": logits.topk(min(top3_k, NUM_STRATEGIES), dim=-1).indices.tolist(),
        "pred_strat_id_dist": logits.softmax(dim=-1).tolist(),
    }


def strategy_token_column(model, pred):
    token_ids = torch.tensor(model.strategy_token_ids, device=pred.device)
    return token_ids[pred][:, None]


def contrast_alpha(model, pred, opts):
    """a_s per example (persona models only: the contrast needs the fused and the plain stream): the checkpoint's
    strategy_alpha[s], or the override."""
    if not model.uses_persona:
        return None
    table = model.strategy_alpha.detach()
    if opts.strategy_alpha is not None:
        table = alpha_table(opts.strategy_alpha, device=table.device, dtype=table.dtype)
    return table[pred]


def alpha_table(value, device=None, dtype=torch.float32):
    """An override of strategy_alpha (pal.decoding.parse_alpha): one number for all strategies, or 8 numbers in
    strategy-id order."""
    value = parse_alpha(value)
    values = [value] * NUM_STRATEGIES if isinstance(value, float) else value
    return torch.tensor(values, device=device, dtype=dtype)


# ---- decoder side ------------------------------------------------------------------------------------------------
class ContrastiveDecoder:
    """Runs the decoder over one or two encoder streams and returns the combined next-token logits.

    With one stream the logits are z; with two (PAL) (1 + a) z_p - a z_c, a per row (set `alpha` before decoding).
    stacked: the streams are concatenated along the batch ([S * N, L, d]) and run as one decoder call with one
    cache, and the contrast is taken on the decoder's output states before the (linear) lm_head,
    W((1 + a) h_p - a h_c) + b == (1 + a)(W h_p + b) - a(W h_c + b), so the 54,956-way lm_head runs once per row;
    otherwise each stream is its own call with its own cache and lm_head (the released computation).
    """

    def __init__(self, model, streams, use_cache, stacked=False):
        self.model, self.use_cache, self.alpha = model, use_cache, None
        self.reuse_strategy_cache = stacked  # the stacked implementation keeps the strategy step's cache
        self.stacked = stacked and len(streams) > 1
        self.n_streams, self.rows = len(streams), streams[0].states.shape[0]
        if self.stacked:
            streams = [EncoderStream(torch.cat([s.states for s in streams]), torch.cat([s.mask for s in streams]))]
        self.passes = list(streams)  # what one decoder call sees
        self.caches = [None] * len(self.passes)

    def next_logits(self, ids):
        return self.combined_logits(ids, self.alpha)

    def combined_logits(self, ids, contrast, keep_cache=True):
        """Next-token logits [N, V] for decoder ids [N, T]: z, or (1 + c) z_p - c z_c with contrast c (a number or
        [N]); keep_cache=False runs uncached and leaves the caches as they are."""
        cached = keep_cache and self.use_cache
        if self.stacked:
            hidden = self._pass(0, ids.repeat(self.n_streams, 1), cached, self.model.decoder_hidden)[:, -1, :]
            return self.model.lm_logits(contrasted(hidden.chunk(self.n_streams), contrast))
        z = [self._pass(i, ids, cached, self.model.decoder_logits)[:, -1, :] for i in range(len(self.passes))]
        return contrasted(z, contrast)

    def _pass(self, i, ids, cached, decoder_fn):
        stream = self.passes[i]
        if not cached:
            return decoder_fn(ids, stream.states, stream.mask)[0]
        new_ids = ids if self.caches[i] is None else ids[:, -1:]
        out, self.caches[i] = decoder_fn(new_ids, stream.states, stream.mask, cache=self.caches[i], use_cache=True)
        return out

    def keep_first_stream(self):
        """Drop the context stream (PAL with a = 0 everywhere), keeping the fused stream's cache."""
        if self.stacked:
            s = self.passes[0]
            self.passes = [EncoderStream(s.states[:self.rows], s.mask[:self.rows])]
            self._select(torch.arange(self.rows, device=s.states.device))  # the fused half of the cache
            self.stacked = False
        self.n_streams = 1
        self.passes, self.caches = self.passes[:1], self.caches[:1]

    def expand(self, n):
        """Repeat every example n times (beams), before the first reply step."""
        rows = torch.arange(self.rows, device=self.passes[0].states.device).repeat_interleave(n)
        full = self._all_rows(rows)
        self.passes = [EncoderStream(s.states[full], s.mask[full]) for s in self.passes]
        self._select(full)
        self.rows *= n
        if self.alpha is not None:
            self.alpha = self.alpha.repeat_interleave(n, 0)

    def reorder(self, rows):
        """Follow the beams: row r of the next step continues row rows[r] (in every stream)."""
        full = self._all_rows(rows)
        for cache in self.caches:
            if cache is not None:
                cache.reorder_cache(full)

    def _select(self, full_rows):
        """Keep these rows of each pass's cache (indices into the pass's batch)."""
        for cache in self.caches:
            if cache is not None:
                cache.batch_select_indices(full_rows)

    def _all_rows(self, rows):
        """Indices into one pass's batch for per-example rows: the same rows in each stacked stream."""
        if not self.stacked:
            return rows
        return torch.cat([rows + k * self.rows for k in range(self.n_streams)])


def contrasted(z, contrast):
    """z[0] alone, or (1 + c) z[0] - c z[1] (c a number or one value per row)."""
    if len(z) == 1:
        return z[0]
    c = contrast[:, None].to(z[0].dtype) if torch.is_tensor(contrast) else contrast
    return (1 + c) * z[0] - c * z[1]


def logits_processors(opts, toker, device, max_total=None, forced_eos_token_id=None):
    """transformers 4.x _get_logits_processor order (diversity, prefix and forced-bos processors: unused here); the
    repetition penalty, n-gram ban, banned tokens and min length as pal.logits_process's subclasses (the same
    scores, cheaper)."""
    procs = LogitsProcessorList()
    if opts.repetition_penalty is not None and opts.repetition_penalty != 1.0:
        procs.append(RepetitionPenalty(penalty=float(opts.repetition_penalty)))
    if opts.no_repeat_ngram_size and opts.no_repeat_ngram_size > 0:
        procs.append(NoRepeatNGram(int(opts.no_repeat_ngram_size)))
    # encoder_no_repeat_ngram_size: deliberately nothing (docs/reproduction.md#contrastive-decoding).
    banned = added_token_ids(toker)
    if banned:
        procs.append(BannedTokens([[i] for i in banned], eos_token_id=toker.eos_token_id))
    if opts.min_length is not None and opts.min_length > -1:
        procs.append(MinLength(int(opts.min_length), toker.eos_token_id, device=str(device)))
    if forced_eos_token_id is not None and max_total is not None:
        procs.append(ForcedEOSTokenLogitsProcessor(max_total, forced_eos_token_id, device=str(device)))
    return procs


def logits_warpers(opts):
    """transformers 4.x _get_logits_warper order: temperature, top-k, top-p (keep >= 2 tokens with beams); top-k
    then top-p as pal.logits_process.TopKTopPWarper (the same scores, without sorting the vocabulary)."""
    keep = 2 if opts.num_beams > 1 else 1
    warpers = LogitsProcessorList()
    if opts.temperature is not None and opts.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(float(opts.temperature)))
    top_k = opts.top_k is not None and opts.top_k != 0
    top_p = opts.top_p is not None and opts.top_p < 1.0
    if top_k and top_p:
        warpers.append(TopKTopPWarper(int(opts.top_k), float(opts.top_p), min_tokens_to_keep=keep))
    elif top_k:
        warpers.append(TopKLogitsWarper(top_k=int(opts.top_k), min_tokens_to_keep=keep))
    elif top_p:
        warpers.append(TopPLogitsWarper(top_p=float(opts.top_p), min_tokens_to_keep=keep))
    return warpers


def added_token_ids(toker):
    """The tokens the config added (ids vocab_size..len-1): banned from replies, as the authors do."""
    return list(range(toker.vocab_size, len(toker)))


def decode_reply(decoder, prefix, opts, toker, forced_eos_token_id=None, generators=None, on_step=None):
    """Decoder ids (prefix included) per example, as python lists. forced_eos_token_id: the model config's."""
    max_total = opts.max_length + prefix.shape[1]  # the authors: max_length + prefix length
    procs = logits_processors(opts, toker, prefix.device, max_total, forced_eos_token_id)
    warpers = logits_warpers(opts) if opts.sampling() else None
    if opts.num_beams > 1:
        if generators is not None or on_step is not None:
            raise ValueError("generators and on_step need num_beams=1")
        return beam_search(decoder, prefix, max_total, procs, warpers, opts, toker)
    return sample_or_greedy(decoder, prefix, max_total, procs, warpers, toker, generators, on_step).tolist()


def sample_or_greedy(decoder, ids, max_total, procs, warpers, toker, generators=None, on_step=None):
    """transformers 4.x sample()/greedy_search() loop; finished rows are fed pad until all rows end."""
    eos, pad = toker.eos_token_id, toker.pad_token_id
    unfinished = torch.ones(ids.shape[0], dtype=torch.long, device=ids.device)
    while ids.shape[1] < max_total:
        logits = decoder.next_logits(ids)
        # rows with their own generators draw what they draw alone, so finished ones are left out (they are fed pad)
        rows = slice(None) if generators is None else unfinished.nonzero()[:, 0]
        scores = procs(ids[rows], logits[rows])
        if warpers is not None:
            warped, support = warp(warpers, ids[rows], scores)
            # torch.multinomial(probs, 1), or per row with its own generator: the same draws (pal.logits_process)
            chosen = multinomial_one(F.softmax(warped, dim=-1),
                                     None if generators is None else [generators[r] for r in rows.tolist()], support)
        else:
            chosen = torch.argmax(scores, dim=-1)
        next_tokens = torch.full_like(unfinished, pad)
        next_tokens[rows] = chosen
        next_tokens = next_tokens * unfinished + pad * (1 - unfinished)
        if on_step is not None:
            on_step(logits, next_tokens)
        ids = torch.cat([ids, next_tokens[:, None]], dim=-1)
        unfinished = unfinished * next_tokens.ne(eos).long()
        if unfinished.max() == 0:
            break
    return ids


def cut_at_eos(ids, eos):
    """Reply ids up to (not including) the first eos."""
    return ids[: ids.index(eos)] if eos in ids else list(ids)
