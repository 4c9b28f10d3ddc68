"""transformers 4.x's logits processors and warpers, and torch.multinomial's one-sample draw, giving the same bits
with less work per row (docs/reproduction.md#sampling).

Each class is the transformers class it subclasses, with a cheaper __call__ of the same output bits:
`RepetitionPenalty` (no padded copy of the vocabulary), `NoRepeatNGram` (no vocabulary-wide mask), `BannedTokens`
(one addition of a precomputed bias), `MinLength` (no vocabulary-wide `isin`), `TopKTopPWarper` (top-k then top-p
without sorting the vocabulary; it also gives the few columns that can stay finite). `multinomial_one(probs,
generators, support)` gives the tokens of `torch.multinomial(probs, 1)` (or one call per row with its own
generator), drawing the same random numbers, with a logarithm for those columns only, not an exponential per
vocabulary entry. Where a shortcut is not certain to be exact (ties, non-finite values, ids outside the vocabulary,
a CUDA tensor), they run the reference.
"""
import math

import torch
from transformers.generation.logits_process import (LogitsProcessorList, MinLengthLogitsProcessor,
                                                    NoBadWordsLogitsProcessor, NoRepeatNGramLogitsProcessor,
                                                    RepetitionPenaltyLogitsProcessor, TopKLogitsWarper,
                                                    TopPLogitsWarper)


class RepetitionPenalty(RepetitionPenaltyLogitsProcessor):
    """The reference pads the scores with a column for ids beyond the vocabulary, penalises the gathered scores and
    scatters them into a copy; with every id inside the vocabulary the padding changes nothing."""

    def __call__(self, input_ids, scores):
        if scores.dim() != 2 or input_ids.dim() != 2 or input_ids.numel() == 0 \
                or self.prompt_ignore_length is not None or int(input_ids.max()) >= scores.shape[-1]:
            return super().__call__(input_ids, scores)
        score = scores.gather(1, input_ids)
        score = torch.where(score < 0, score * self.penalty, score / self.penalty)
        return scores.scatter(1, input_ids, score)


class NoRepeatNGram(NoRepeatNGramLogitsProcessor):
    """The tokens that would complete an n-gram already in the row get -inf: the reference marks them in a fresh
    [N, V + 1] mask and fills a copy of the scores through it; here they are set in the copy directly."""

    def __call__(self, input_ids, scores):
        length = input_ids.shape[-1]
        if length < self.ngram_size or scores.dim() != 2:
            return super().__call__(input_ids, scores)
        windows = input_ids.unfold(1, self.ngram_size, 1)  # [N, windows, n]
        suffix = input_ids[:, length + 1 - self.ngram_size:]  # what the next token would complete
        rows, starts = (windows[..., :-1] == suffix[:, None]).all(dim=-1).nonzero(as_tuple=True)
        tokens = windows[rows, starts, -1]
        inside = tokens < scores.shape[-1]  # ids beyond the scores cannot be generated: nothing to ban
        scores = scores.clone()
        scores[rows[inside], tokens[inside]] = -math.inf
        return scores


class BannedTokens(NoBadWordsLogitsProcessor):
    """Single-token bad words: the reference adds zeros, then the -inf bias, to a fresh tensor and that to the
    scores; here the bias is built once and added once (0 + b == b exactly)."""

    def __call__(self, input_ids, scores):
        key = (scores.shape[-1], scores.device, scores.dtype)
        if getattr(self, "_bias_key", None) != key:
            self._bias_key, self._bias = key, None
            ids = [ids[0] for ids in self.sequence_bias if len(ids) == 1]
            if len(ids) == len(self.sequence_bias) and all(0 <= i < key[0] for i in ids):
                self._bias = torch.zeros(key[0], dtype=scores.dtype, device=scores.device)
                self._bias[ids] = torch.tensor([self.sequence_bias[(i,)] for i in ids], dtype=scores.dtype)
        if self._bias is None:
            return super().__call__(input_ids, scores)
        return scores + self._bias


class MinLength(MinLengthLogitsProcessor):
    """eos set to -inf before min_length, as the reference's `where` over an `isin` of the whole vocabulary; from
    min_length on the scores themselves (the reference returns a copy; nothing downstream writes to them)."""

    def __call__(self, input_ids, scores):
        eos = self.eos_token_id.to(scores.device)
        if scores.dim() != 2 or not bool(((eos >= 0) & (eos < scores.shape[-1])).all()):
            return super().__call__(input_ids, scores)
        if input_ids.shape[-1] >= self.min_length:
            return scores
        scores = scores.clone()
        scores[:, eos] = -math.inf
        return scores


class TopKTopPWarper:
    """TopKLogitsWarper(top_k) then TopPLogitsWarper(top_p) on [N, V] scores, the same output bits.

    After top-k only the k best scores are finite, so the top-p warper's ascending sort of the whole row is -inf
    everywhere but its last k entries, which are those k scores in ascending order: that array is built from
    torch.topk's k + 1 best and goes through the same softmax and cumsum, so the same entries are removed. A row
    where the k-th best score ties the next one (top-k then keeps more than k), where two kept scores tie (the
    sort's order among them decides which one top-p removes), or with NaN or +inf, goes through the reference."""

    def __init__(self, top_k, top_p, min_tokens_to_keep=1):
        self.reference = LogitsProcessorList([TopKLogitsWarper(top_k=top_k, min_tokens_to_keep=min_tokens_to_keep),
                                              TopPLogitsWarper(top_p=top_p, min_tokens_to_keep=min_tokens_to_keep)])
        self.top_k, self.top_p = self.reference[0].top_k, self.reference[1].top_p  # as the reference clamps them
        self.min_tokens_to_keep = min_tokens_to_keep

    def __call__(self, input_ids, scores):
        return self.warp(input_ids, scores)[0]

    def warp(self, input_ids, scores):
        """(warped scores, support): support [N, k] holds the only columns of each row that may be finite, None
        where a row went through the reference."""
        rows, vocab = scores.shape
        k = self.top_k
        if k + 1 > vocab or scores.device.type != "cpu":
            return self.reference(input_ids, scores), None
        best, best_ids = scores.topk(k + 1, dim=-1)  # descending; NaN counts as the largest
        kept, kept_ids = best[:, :k].flip(-1), best_ids[:, :k].flip(-1)  # ascending, as the reference's sort
        finite = kept > -math.inf
        odd = (best.isnan() | (best == math.inf)).any(-1)
        odd |= (best[:, k - 1] == best[:, k]) & finite[:, 0]  # a tie at the k-th score
        odd |= ((kept[:, 1:] == kept[:, :-1]) & finite[:, :-1]).any(-1)  # a tie among the kept scores
        ascending = scores.new_full((rows, vocab), -math.inf)
        ascending[:, vocab - k:] = kept
        # the reference's cumsum runs along the whole row; before the last k entries it adds zeros, exactly
        cumulative = ascending.softmax(dim=-1)[:, vocab - k:].cumsum(dim=-1)
        remove = cumulative <= (1 - self.top_p)
        remove[:, -self.min_tokens_to_keep:] = False
        warped = scores.new_full((rows, vocab), -math.inf).scatter_(1, kept_ids, kept.masked_fill(remove, -math.inf))
        if not bool(odd.any()):
            return warped, kept_ids
        odd_rows = odd.nonzero()[:, 0]
        warped[odd_rows] = self.reference(input_ids[odd_rows], scores[odd_rows])
        return warped, None


def warp(warpers, input_ids, scores):
    """warpers(input_ids, scores) (a LogitsProcessorList) and the support of the result (TopKTopPWarper.warp; None
    unless the last warper is one)."""
    for warper in warpers[:-1]:
        scores = warper(input_ids, scores)
    if warpers and isinstance(warpers[-1], TopKTopPWarper):
        return warpers[-1].warp(input_ids, scores)
    return (warpers[-1](input_ids, scores) if warpers else scores), None


def multinomial_one(probs, generators=None, support=None):
    """torch.multinomial(probs, 1)[:, 0] for [N, V] probabilities (generators=None: the global generator), or, with
    one generator per row, torch.multinomial(probs[r:r+1], 1, generator=generators[r]) for each row r: the same
    tokens, and the generators left in the same states. support [N, c]: columns holding every entry that may be
    > 0 (the others exactly 0: TopKTopPWarper.warp's); None: every column.

    torch.multinomial draws one sample as argmax(p / q), q one exponential per entry, each -log1p(-u) of a double
    u in [0, 1) made from one 64-bit random number (torch's CPU kernel, in the tensor's order). This draws the same
    u (torch's uniform_ on doubles uses the same numbers the same way), but takes the logarithm only where p may be
    > 0: elsewhere p / q is 0, as in the reference. A u of exactly 0 (then q = 0 and p / q is NaN or inf: about
    once in 2**53 draws), invalid probabilities (the reference raises), no support given, or a tensor that is not
    float32 on the CPU: the reference, from the generator's state before the draw."""
    if support is None or probs.dtype != torch.float32 or probs.device.type != "cpu" or probs.dim() != 2:
        return reference_multinomial(probs, generators)
    columns = support.sort(dim=-1).values  # the reference's argmax takes the first of equal maxima
    candidates = probs.gather(1, columns)
    if not (bool((candidates >= 0).all()) and bool((candidates < math.inf).all())
            and bool((candidates > 0).any(-1).all())):
        return reference_multinomial(probs, generators)  # it raises as torch.multinomial does
    states = torch.get_rng_state() if generators is None else [g.get_state() for g in generators]
    uniform = torch.empty(probs.shape, dtype=torch.float64)
    if generators is None:
        uniform.uniform_()
    else:
        for row, generator in zip(uniform, generators):
            row.uniform_(generator=generator)
    exponential = torch.tensor([-math.log1p(-u) for u in uniform.gather(1, columns).flatten().tolist()],
                               dtype=torch.float64).view(columns.shape).to(probs.dtype)
    chosen = columns.gather(1, (candidates / exponential).argmax(dim=-1, keepdim=True))[:, 0]
    zero_rows = (uniform.amin(dim=-1) == 0).nonzero()[:, 0].tolist()
    if zero_rows and generators is None:
        torch.set_rng_state(states)
        return reference_multinomial(probs)
    for row in zero_rows:
        generators[row].set_state(states[row])
        chosen[row] = reference_multinomial(probs[row:row + 1], [generators[row]])[0]
    return chosen


def reference_multinomial(probs, generators=None):
    """What multinomial_one reproduces: torch.multinomial, one call, or one per row with its own generator."""
    if generators is None:
        return torch.multinomial(probs, num_samples=1)[:, 0]
    return torch.cat([torch.multinomial(p[None], 1, generator=g)[0] for p, g in zip(probs, generators)])
