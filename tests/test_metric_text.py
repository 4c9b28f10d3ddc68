"""Text metrics against values derived by hand, and parity with pycocoevalcap on the same tokens."""
import math
import random

import nltk
import pytest

from metric.evaluation import ead_metrics, text_metrics
from metric.records import corpus_perplexity
from metric.text import (bleu, distinct_authors, distinct_standard, ead, lcs_length, rouge_l_per_example,
                         unigram_f1_per_example)
from metric.tokens import metric_tokens, require_punkt
from palkit.cli import UserError

CAT_HYP = "The cat sat on the mat"
CAT_REF = "the cat is on the mat"


def test_tokens_are_lowercased_nltk_word_tokens(punkt):
    assert metric_tokens("I'm FINE, don't worry.") == ["i", "'m", "fine", ",", "do", "n't", "worry", "."]


def test_missing_punkt_stops_with_instructions(monkeypatch, tmp_path):
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    with pytest.raises(UserError) as err:
        require_punkt()
    assert "python -m nltk.downloader punkt_tab" in str(err.value) and "NLTK_DATA" in str(err.value)


def test_bleu_single_pair_by_hand(punkt):
    # hyp: the cat sat on the mat / ref: the cat is on the mat (6 tokens each, brevity penalty 1)
    # 1-grams: the x2, cat, on, mat match, sat does not -> 5/6
    # 2-grams: the-cat, on-the, the-mat of 5 -> 3/5;  3-grams: on-the-mat of 4 -> 1/4
    # 4-grams: 0 of 3 -> smoothing method 3 replaces it by 1 / (2^1 * 3) = 1/6
    hyp, ref = metric_tokens(CAT_HYP), metric_tokens(CAT_REF)
    assert bleu([ref], [hyp], 1) == pytest.approx(5 / 6)
    assert bleu([ref], [hyp], 2) == pytest.approx(math.sqrt(5 / 6 * 3 / 5))
    assert bleu([ref], [hyp], 3) == pytest.approx(0.5)  # (5/6 * 3/5 * 1/4)^(1/3) = (1/8)^(1/3)
    assert bleu([ref], [hyp], 4) == pytest.approx((5 / 6 * 3 / 5 * 1 / 4 * 1 / 6) ** 0.25)


def test_bleu_is_corpus_level_with_brevity_penalty(punkt):
    # add hyp "i see" / ref "i see you": counts are summed over the corpus before dividing
    # 1-grams (5+2)/(6+2) = 7/8, 2-grams (3+1)/(5+1) = 2/3; hyp length 8 < ref length 9 -> BP = exp(1 - 9/8)
    refs = [metric_tokens(CAT_REF), metric_tokens("i see you")]
    hyps = [metric_tokens(CAT_HYP), metric_tokens("i see")]
    assert bleu(refs, hyps, 2) == pytest.approx(math.exp(-1 / 8) * math.sqrt(7 / 8 * 2 / 3))
    # NLTK quirk kept (it is the authors' BLEU): a hypothesis shorter than n still adds 1 to the n-gram
    # denominator (max(1, 0)), so 3-grams are (1 + 0) / (4 + 1) = 1/5, not 1/4 as pycocoevalcap would count
    assert bleu(refs, hyps, 3) == pytest.approx(math.exp(-1 / 8) * (7 / 8 * 2 / 3 * 1 / 5) ** (1 / 3))


def test_distinct_authors_off_by_one_and_standard():
    # authors: each reply's last n-gram is skipped.  [a b a c] -> a, b, a ; [d] -> nothing  => 2 unique / 3
    # standard: a, b, a, c, d => 4 unique / 5
    hyps = [["a", "b", "a", "c"], ["d"]]
    assert distinct_authors(hyps, 1) == pytest.approx(2 / 3)
    assert distinct_standard(hyps, 1) == pytest.approx(4 / 5)
    # [a b a b]: authors' bigrams ab, ba (2/2); standard ab, ba, ab (2/3)
    assert distinct_authors([["a", "b", "a", "b"]], 2) == pytest.approx(1.0)
    assert distinct_standard([["a", "b", "a", "b"]], 2) == pytest.approx(2 / 3)


def test_unigram_f1_by_hand():
    # hyp a b c d, ref a b e: 2 shared -> P = 2/4, R = 2/3, F1 = 2PR/(P+R) = 4/7; nothing shared -> 0
    assert unigram_f1_per_example([["a", "b", "e"], ["x"]], [["a", "b", "c", "d"], ["y"]]) == \
        pytest.approx([4 / 7, 0.0])
    # bag of words: duplicates count only as often as they occur on both sides -> hyp a a, ref a: P 1/2, R 1
    assert unigram_f1_per_example([["a"]], [["a", "a"]]) == pytest.approx([2 / 3])


def test_rouge_l_by_hand():
    # hyp a b c d, ref a c e: LCS "a c" = 2 -> P = 1/2, R = 2/3
    # F = (1 + 1.2^2) P R / (R + 1.2^2 P) = 2.44 * (1/3) / (2/3 + 0.72)
    expected = 2.44 * (1 / 3) / (2 / 3 + 0.72)
    assert rouge_l_per_example([["a", "c", "e"]], [["a", "b", "c", "d"]]) == pytest.approx([expected])
    assert lcs_length(list("abcbdab"), list("bdcaba")) == 4  # the textbook example
    assert rouge_l_per_example([["a"]], [[]]) == [0.0]


def test_ead_formula_small_case():
    # sentences [a b a], [c]: 1-grams C = 4, N = 3; 2-grams ab, ba (none across the sentence boundary): C = N = 2
    sentences = [["a", "b", "a"], ["c"]]
    value, distinct, total = ead(sentences, 1, vocab_size=10)
    assert (distinct, total) == (3, 4)
    assert value == pytest.approx(3 / (10 * (1 - 0.9 ** 4)))
    assert ead(sentences, 2, vocab_size=10)[0] == pytest.approx(2 / (10 * (1 - 0.9 ** 2)))


def test_ead_splits_sentences_and_keeps_case(punkt):
    # "I am sad. I am sad." -> two sentences [I am sad .] x2 ; "i am happy" -> [i am happy]
    # 1-grams: C = 4 + 4 + 3 = 11, distinct {I, am, sad, ., i, happy} = 6 (not lower-cased: I != i)
    # 2-grams: C = 3 + 3 + 2 = 8, distinct {I am, am sad, sad ., i am, am happy} = 5 (no ". I" across sentences)
    result = ead_metrics(["I am sad. I am sad.", "i am happy"], vocab_size=100)
    assert (result["ead-1_distinct_ngrams"], result["ead-1_total_ngrams"]) == (6, 11)
    assert (result["ead-2_distinct_ngrams"], result["ead-2_total_ngrams"]) == (5, 8)
    assert result["ead-1"] == pytest.approx(100 * 6 / (100 * (1 - 0.99 ** 11)))
    assert result["ead-2"] == pytest.approx(100 * 5 / (100 * (1 - 0.99 ** 8)))


def test_text_metrics_scales_and_keys(punkt):
    refs = [metric_tokens(CAT_REF), metric_tokens("a c e")]
    hyps = [metric_tokens(CAT_HYP), metric_tokens("a b c d")]
    metrics, lists = text_metrics(refs, hyps)
    assert metrics["length"] == 5.0  # (6 + 4) / 2 tokens
    assert metrics["bleu-1"] == pytest.approx(100 * bleu(refs, hyps, 1))
    # F1: cat pair shares the x2, cat, on, mat (5 of 6 each way) -> 5/6; second pair shares a, c -> P 1/2, R 2/3
    assert lists["f1"] == pytest.approx([5 / 6, 2 * 0.5 * (2 / 3) / (0.5 + 2 / 3)])
    assert metrics["f1"] == pytest.approx(100 * sum(lists["f1"]) / 2)
    assert metrics["rouge-l"] == pytest.approx(100 * (5 / 6 + 2.44 * (1 / 3) / (2 / 3 + 0.72)) / 2)
    assert metrics["dist-1"] == pytest.approx(100 * distinct_authors(hyps, 1))
    assert metrics["dist-2-standard"] == pytest.approx(100 * distinct_standard(hyps, 2))
    assert set(metrics) == {"length", "f1", "rouge-l", *(f"bleu-{n}" for n in range(1, 5)),
                            *(f"dist-{n}" for n in range(1, 4)), *(f"dist-{n}-standard" for n in range(1, 4))}


def test_corpus_perplexity_from_records():
    # token-weighted mean loss (1*1 + 2*3) / (1 + 3) = 7/4
    records = [{"loss": 1.0, "token_num": 1}, {"loss": 2.0, "token_num": 3}]
    assert corpus_perplexity(records) == pytest.approx(math.exp(7 / 4))


def _random_corpus(seed, size=30):
    rng = random.Random(seed)
    words = "i am so sorry to hear that you feel sad have tried talking a friend it is ok".split()
    pairs = []
    for _ in range(size):
        ref = rng.choices(words, k=rng.randint(3, 12))  # hypotheses: >= 4 tokens
        hyp = ref[:rng.randint(2, len(ref))] + rng.choices(words, k=rng.randint(2, 4))
        pairs.append((ref, hyp))
    return [r for r, _ in pairs], [h for _, h in pairs]


def test_bleu_and_rouge_match_pycocoevalcap_on_same_tokens():
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.rouge.rouge import Rouge
    refs, hyps = _random_corpus(0)
    gts = {i: [" ".join(r)] for i, r in enumerate(refs)}
    res = {i: [" ".join(h)] for i, h in enumerate(hyps)}
    coco_bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    # every n-gram order has matches and every hypothesis has >= 4 tokens, so neither NLTK's smoothing nor its
    # minimum denominator of 1 (see test_bleu_is_corpus_level_with_brevity_penalty) applies: plain corpus BLEU
    for n in range(1, 5):
        assert bleu(refs, hyps, n) == pytest.approx(coco_bleu[n - 1], rel=1e-6)
    coco_rouge, coco_list = Rouge().compute_score(gts, res)
    assert rouge_l_per_example(refs, hyps) == pytest.approx(list(coco_list), abs=1e-12)
