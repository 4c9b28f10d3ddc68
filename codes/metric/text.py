"""Text metrics on token lists (see tokens.py for how text becomes tokens).

All functions take `hyps` (a list of token lists) and, where needed, `refs` (one reference token list per
hypothesis: ESConv has a single reference per example). They return fractions in [0, 1]; the caller scales
them to percent the way the authors' metric.json does.
"""
import math
import warnings

from nltk.translate.bleu_score import SmoothingFunction, corpus_bleu

# Vocabulary size in the EAD expectation: BlenderBot-small's 54,944 tokens + PAL's 12 added tokens
# (docs/reproduction.md#metrics).
EAD_VOCAB_SIZE = 54956


def bleu(refs, hyps, n):
    """Corpus BLEU-n (uniform weights over 1..n-grams) with NLTK's smoothing method 3, as the authors compute it."""
    weights = [1.0 / n] * n + [0.0] * (4 - n)
    try:
        return float(corpus_bleu([[r] for r in refs], hyps, weights=weights,
                                 smoothing_function=SmoothingFunction().method3))
    except ZeroDivisionError:  # e.g. every hypothesis empty: the authors score that as 0 too
        warnings.warn(f"BLEU-{n} is undefined on this input; reported as 0")
        return 0.0


def _ngrams(tokens, n, drop_last):
    """The n-grams of one token list; `drop_last` reproduces the authors' `range(len(s) - n)` bound."""
    stop = len(tokens) - n if drop_last else len(tokens) - n + 1
    return [tuple(tokens[i:i + n]) for i in range(max(stop, 0))]


def _distinct_ratio(hyps, n, drop_last):
    grams = [g for h in hyps for g in _ngrams(h, n, drop_last)]
    if not grams:
        warnings.warn(f"Distinct-{n} is undefined (no {n}-grams); reported as 0")
        return 0.0
    return len(set(grams)) / len(grams)


def distinct_authors(hyps, n):
    """Distinct-n as the authors compute it: unique / total n-grams over all hypotheses, but each hypothesis's
    LAST n-gram is skipped (their loop runs `range(len(s) - n)`; a reply of exactly n tokens contributes nothing).
    Kept for parity with the paper's D-1/D-2."""
    return _distinct_ratio(hyps, n, drop_last=True)


def distinct_standard(hyps, n):
    """Distinct-n with every n-gram counted (the usual definition)."""
    return _distinct_ratio(hyps, n, drop_last=False)


def _overlap_count(a, b):
    """Size of the multiset intersection of two token lists."""
    counts = {}
    for t in a:
        counts[t] = counts.get(t, 0) + 1
    shared = 0
    for t in b:
        if counts.get(t, 0) > 0:
            counts[t] -= 1
            shared += 1
    return shared


def unigram_f1_per_example(refs, hyps):
    """Per-example unigram F1 between hypothesis and reference tokens (bag-of-words overlap)."""
    return [_f_measure(_overlap_count(ref, hyp), len(hyp), len(ref), beta=1.0) for ref, hyp in zip(refs, hyps)]


def _f_measure(matches, hyp_len, ref_len, beta):
    """F-beta of `matches` shared units (recall weighted by beta); 0 when nothing is shared."""
    if matches == 0:
        return 0.0
    precision, recall = matches / hyp_len, matches / ref_len
    return (1 + beta ** 2) * precision * recall / (recall + beta ** 2 * precision)


def lcs_length(a, b):
    """Length of the longest common subsequence of two token lists (one-row dynamic programme)."""
    if len(a) < len(b):
        a, b = b, a
    row = [0] * (len(b) + 1)
    for x in a:
        diagonal = 0  # row[j-1] of the previous row
        for j, y in enumerate(b, start=1):
            above = row[j]
            row[j] = diagonal + 1 if x == y else max(row[j], row[j - 1])
            diagonal = above
    return row[-1]


def rouge_l_per_example(refs, hyps, beta=1.2):
    """Per-example ROUGE-L F-measure with recall weighted by beta (1.2, as in the COCO caption code)."""
    return [_f_measure(lcs_length(ref, hyp), len(hyp), len(ref), beta) for ref, hyp in zip(refs, hyps)]


def mean(values):
    return float(sum(values) / len(values)) if values else 0.0


def ead(sentences, n, vocab_size=EAD_VOCAB_SIZE):
    """Expectation-adjusted distinct: N / (V * (1 - ((V-1)/V)^C)), N = distinct n-grams, C = all n-grams.

    `sentences` is a list of token lists; n-grams never cross a sentence boundary. The denominator is the expected
    number of distinct tokens when C tokens are drawn uniformly from a vocabulary of size V.
    """
    grams = [g for s in sentences for g in _ngrams(s, n, drop_last=False)]
    if not grams:
        warnings.warn(f"EAD-{n} is undefined (no {n}-grams); reported as 0")
        return 0.0, 0, 0
    distinct, total = len(set(grams)), len(grams)
    # 1 - ((V-1)/V)^C computed as -expm1(C * log1p(-1/V)) to keep precision for large V
    expected_fraction = -math.expm1(total * math.log1p(-1.0 / vocab_size))
    return distinct / (vocab_size * expected_fraction), distinct, total
