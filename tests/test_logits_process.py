"""pal.logits_process against what it replaces, bit for bit: transformers' processors and warpers (the same output
bits over many random score tensors, ties, -0.0, -inf, NaN and repeated n-grams included) and torch.multinomial
(the same tokens and the same generator states afterwards, per-row generators and the global one); and generate()
with them against generate() with the reference classes: the same replies and the same RNG state."""
import math

import pytest
import torch
import torch.nn.functional as F
from transformers.generation.logits_process import (LogitsProcessorList, MinLengthLogitsProcessor,
                                                    NoBadWordsLogitsProcessor, NoRepeatNGramLogitsProcessor,
                                                    RepetitionPenaltyLogitsProcessor, TopKLogitsWarper,
                                                    TopPLogitsWarper)

import pal.generation
import pal.logits_process
from pal.generation import generate
from pal.logits_process import (BannedTokens, MinLength, NoRepeatNGram, RepetitionPenalty, TopKTopPWarper,
                                multinomial_one, reference_multinomial)
from helpers.pal_models import batch_for, tiny_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")
VOCAB = 54956  # BlenderBot-small's, with the added tokens: the size the shortcuts are for
TRIALS = 120


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.view(torch.int32), b.view(torch.int32))


def random_scores(trial, rows=None, vocab=VOCAB):
    """[rows, vocab] scores of one of several kinds: spread or flat, many ties (quantised), -inf entries, fewer
    finite entries than k, -0.0 and 0.0 together."""
    g = torch.Generator().manual_seed(trial)
    rows = rows or 1 + trial % 6
    scores = torch.randn(rows, vocab, generator=g) * (3.0, 0.05, 10.0)[trial % 3]
    kind = trial % 5
    if kind == 1:
        scores = (scores * 2).round() / 2
    elif kind == 2:
        scores[:, torch.randint(0, vocab, (vocab // 2,), generator=g)] = -math.inf
    elif kind == 3:
        scores[0, 5:] = -math.inf
    elif kind == 4:
        scores[:, :40] = torch.tensor([0.0, -0.0] * 20) + 20
        scores[:, 40:80] = torch.tensor([0.0, -0.0] * 20)
    return scores


def test_top_k_top_p_gives_the_reference_scores():
    fast_rows = 0
    for trial in range(TRIALS):
        scores = random_scores(trial)
        top_k, top_p, keep = (1, 2, 10, 30, 50)[trial % 5], (0.9, 0.5, 0.99, 0.1)[trial % 4], 1 + (trial % 7 == 0)
        ids = torch.zeros(scores.shape[0], 3, dtype=torch.long)
        reference = LogitsProcessorList([TopKLogitsWarper(top_k, min_tokens_to_keep=keep),
                                         TopPLogitsWarper(top_p, min_tokens_to_keep=keep)])(ids, scores.clone())
        warper = TopKTopPWarper(top_k, top_p, min_tokens_to_keep=keep)
        warped, support = warper.warp(ids, scores.clone())
        assert same_bits(warped, reference), trial
        assert same_bits(warper(ids, scores.clone()), reference), trial
        if support is not None:
            fast_rows += scores.shape[0]
            outside = torch.ones_like(warped, dtype=torch.bool).scatter_(1, support, False)
            assert bool((warped[outside] == -math.inf).all()), trial
    assert fast_rows > TRIALS  # the shortcut is taken where no tie forbids it


def test_ties_nan_and_tiny_vocabularies_go_through_the_reference(monkeypatch):
    warper = TopKTopPWarper(3, 0.9)
    ids = torch.zeros(2, 1, dtype=torch.long)
    tie_at_k = torch.tensor([[5.0, 4.0, 3.0, 3.0, 1.0, 0.0], [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])
    tie_inside = torch.tensor([[5.0, 4.0, 4.0, 2.0, 1.0, 0.0], [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])
    nan = torch.tensor([[5.0, math.nan, 3.0, 2.0, 1.0, 0.0], [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])
    for scores in (tie_at_k, tie_inside, nan):
        warped, support = warper.warp(ids, scores)
        reference = warper.reference(ids, scores)
        assert support is None and torch.equal(warped.isnan(), reference.isnan())
        assert torch.equal(warped.nan_to_num(), reference.nan_to_num())
    assert TopKTopPWarper(6, 0.9).warp(ids, tie_at_k)[1] is None  # k + 1 entries do not exist


def draws_alike(probs, support, seed):
    gens = [torch.Generator().manual_seed(seed + r) for r in range(probs.shape[0])]
    again = [torch.Generator().manual_seed(seed + r) for r in range(probs.shape[0])]
    assert torch.equal(multinomial_one(probs, gens, support), reference_multinomial(probs, again))
    assert all(torch.equal(g.get_state(), h.get_state()) for g, h in zip(gens, again))
    torch.manual_seed(seed)
    ours, our_state = multinomial_one(probs, None, support), torch.get_rng_state()
    torch.manual_seed(seed)
    assert torch.equal(ours, reference_multinomial(probs)) and torch.equal(our_state, torch.get_rng_state())


def test_multinomial_one_draws_what_torch_multinomial_draws():
    for trial in range(TRIALS):
        scores = random_scores(trial) / 0.7
        warper = TopKTopPWarper((1, 10, 30, 50)[trial % 4], (0.9, 0.5, 0.99)[trial % 3])
        warped, support = warper.warp(torch.zeros(scores.shape[0], 1, dtype=torch.long), scores)
        draws_alike(F.softmax(warped, dim=-1), support, 1000 * trial)
    probs = torch.tensor([[0.0, 0.5, 0.5, 0.0], [0.25, 0.25, 0.25, 0.25]])  # equal maxima of p / q are unlikely,
    draws_alike(probs, torch.tensor([[2, 1], [3, 0]]), 5)                   # equal p are not


def test_a_zero_uniform_draw_falls_back_to_the_reference_from_the_state_before(monkeypatch):
    """u = 0 (once in 2**53) makes the reference's p / q NaN or inf: that row is drawn by the reference, from its
    generator's state before the draw."""
    real_uniform = torch.Tensor.uniform_

    def uniform_with_a_zero(self, *args, **kwargs):
        out = real_uniform(self, *args, **kwargs)
        out.view(-1)[7] = 0.0
        return out
    probs = F.softmax(random_scores(0, rows=3, vocab=50) * 5, dim=-1)
    support = torch.arange(50).repeat(3, 1)
    gens = [torch.Generator().manual_seed(r) for r in range(3)]
    monkeypatch.setattr(torch.Tensor, "uniform_", uniform_with_a_zero)
    ours = multinomial_one(probs, gens, support)
    monkeypatch.undo()
    again = [torch.Generator().manual_seed(r) for r in range(3)]
    assert torch.equal(ours, reference_multinomial(probs, again))
    assert all(torch.equal(g.get_state(), h.get_state()) for g, h in zip(gens, again))


def test_invalid_probabilities_fail_as_torch_multinomial_does():
    bad = torch.tensor([[0.5, math.nan, 0.5]])
    with pytest.raises(RuntimeError, match="probability tensor contains"):
        multinomial_one(bad, None, torch.tensor([[0, 1, 2]]))
    with pytest.raises(RuntimeError, match="probability tensor contains"):
        reference_multinomial(bad)


@pytest.mark.parametrize("penalty", [1.03, 1.3, 0.8])
def test_repetition_penalty_gives_the_reference_scores(penalty):
    for trial in range(20):
        scores = random_scores(trial)
        g = torch.Generator().manual_seed(trial)
        ids = torch.randint(0, 50, (scores.shape[0], 1 + trial), generator=g)  # repeated ids included
        ids[:, 0] = torch.randint(VOCAB - 10, VOCAB, (1,), generator=g)
        assert same_bits(RepetitionPenalty(penalty)(ids, scores.clone()),
                         RepetitionPenaltyLogitsProcessor(penalty)(ids, scores.clone())), trial


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_no_repeat_ngram_gives_the_reference_scores(size):
    for trial in range(20):
        scores = random_scores(trial)
        g = torch.Generator().manual_seed(trial)
        ids = torch.randint(0, 4, (scores.shape[0], trial), generator=g)  # few distinct ids: many repeats
        ids[:, ::5] = torch.randint(VOCAB - 2, VOCAB + 2, (1,), generator=g)  # ids beyond the scores included
        assert same_bits(NoRepeatNGram(size)(ids, scores.clone()),
                         NoRepeatNGramLogitsProcessor(size)(ids, scores.clone())), trial


def test_banned_tokens_and_min_length_give_the_reference_scores():
    banned = [[i] for i in range(VOCAB - 12, VOCAB)] + [[2]]  # eos (2) is never banned
    for trial in range(20):
        scores = random_scores(trial)
        ids = torch.zeros(scores.shape[0], 1 + trial % 8, dtype=torch.long)
        assert same_bits(BannedTokens(banned, eos_token_id=2)(ids, scores.clone()),
                         NoBadWordsLogitsProcessor(banned, eos_token_id=2)(ids, scores.clone())), trial
        assert same_bits(MinLength(5, 2)(ids, scores.clone()), MinLengthLogitsProcessor(5, 2)(ids, scores.clone()))


class ReferenceTopKTopP:
    """transformers' TopKLogitsWarper then TopPLogitsWarper."""

    def __init__(self, top_k, top_p, min_tokens_to_keep):
        self.top_k = TopKLogitsWarper(top_k, min_tokens_to_keep=min_tokens_to_keep)
        self.top_p = TopPLogitsWarper(top_p, min_tokens_to_keep=min_tokens_to_keep)

    def __call__(self, input_ids, scores):
        return self.top_p(input_ids, self.top_k(input_ids, scores))


REFERENCE_CLASSES = {"RepetitionPenalty": RepetitionPenaltyLogitsProcessor,
                     "NoRepeatNGram": NoRepeatNGramLogitsProcessor, "BannedTokens": NoBadWordsLogitsProcessor,
                     "MinLength": MinLengthLogitsProcessor, "TopKTopPWarper": ReferenceTopKTopP}


def decode(model, batch, toker, options, per_row_seeds):
    """(replies, the generators' or the global RNG's state after)."""
    if per_row_seeds:
        gens = [torch.Generator().manual_seed(s) for s in per_row_seeds]
        return generate(model, batch, toker, generators=gens, **options)["sequences"], [g.get_state() for g in gens]
    torch.manual_seed(11)
    return generate(model, batch, toker, **options)["sequences"], [torch.get_rng_state()]


SAMPLED = [{},  # the released inference settings: temperature 0.5, top-k 10, top-p 0.9, repetition penalty 1.03
           dict(temperature=0.7, top_k=30, no_repeat_ngram_size=3),  # the released interaction settings
           dict(temperature=1.5, top_k=50, top_p=0.95, min_length=12)]


@pytest.mark.parametrize("options,per_row_seeds", [(o, s) for o in SAMPLED for s in (None, (3, 4, 5))] + [
    (dict(num_beams=2, max_length=12), None)])  # beam sampling takes the same warpers, and the global generator
def test_generate_gives_the_replies_of_the_reference_classes(tiny_blender_dir, monkeypatch, options, per_row_seeds):
    toker, model = tiny_model(tiny_blender_dir, std=0.2)  # flat distributions: many tokens in play
    batch = batch_for(toker, "strat")
    supported = []

    def recording(probs, generators, support):
        supported.append(support is not None)
        return multinomial_one(probs, generators, support)
    monkeypatch.setattr(pal.generation, "multinomial_one", recording)
    ours = decode(model, batch, toker, options, per_row_seeds)
    assert options.get("num_beams") or sum(supported) > len(supported) // 2  # the shortcut was taken
    for name, reference in REFERENCE_CLASSES.items():
        monkeypatch.setattr(pal.generation, name, reference)
    monkeypatch.setattr(pal.generation, "multinomial_one", lambda probs, generators, support:
                        pal.logits_process.reference_multinomial(probs, generators))
    theirs = decode(model, batch, toker, options, per_row_seeds)
    assert ours[0] == theirs[0] and all(torch.equal(a, b) for a, b in zip(ours[1], theirs[1]))
