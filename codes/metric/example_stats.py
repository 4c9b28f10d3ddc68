"""Per-example statistics of a result folder, from which every Table 3 metric is recomputed with numpy.

Resampling tests (significance.py) evaluate a corpus metric thousands of times on reweighted examples. Each metric
is a function of per-example counts, so the text is tokenized once and a resample is a weight vector `w` (how many
times each example is drawn; 0/1 for a permutation):

- BLEU-n (NLTK corpus_bleu, smoothing method 3, as text.bleu): clipped n-gram matches and max(1, hypothesis
  n-grams) per order 1..4, hypothesis and reference lengths; the brevity penalty and smoothing from the sums.
- Distinct-n (authors' off-by-one, text.distinct_authors) and EAD-n (text.ead, generations split into sentences):
  the set of n-gram types of each example (as index arrays) and its n-gram count; a type counts when any example
  holding it has weight > 0.
- ROUGE-L (mean of text.rouge_l_per_example), ACC (gold == predicted strategy), Cos-Sim (cos_similarity_list.json):
  weighted means. PPL: exp(sum w * loss * tokens / sum w * tokens), as records.corpus_perplexity; its tokens are
  the scoring model's (`loss_tokenizer`: which ones, from infer_args.json), so PPL compares only within one tokenizer.
Values come out in metric.json's scales (percent for BLEU, Distinct, EAD, ROUGE-L; fraction for ACC).
"""
import math
import os
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from palkit.loaders import load_json
from palkit.cli import UserError

from .records import all_or_none, check_records, first_text, load_gen_json
from .strategy import GOLD_KEY, PRED_KEY
from .text import EAD_VOCAB_SIZE, _ngrams, rouge_l_per_example
from .tokens import metric_tokens, sentence_word_tokens

# metric.json key -> (Table 3 column, multiplier from metric.json's scale to Table 3's)
TABLE3_METRICS = {
    "acc_cls_strat_id": ("ACC", 100.0), "perplexity": ("PPL", 1.0), "bleu-2": ("B-2", 1.0), "bleu-4": ("B-4", 1.0),
    "dist-1": ("D-1", 1.0), "dist-2": ("D-2", 1.0), "ead-1": ("E-1", 1.0), "ead-2": ("E-2", 1.0),
    "rouge-l": ("R-L", 1.0), "cos-sim-generation": ("Cos-Sim", 1.0),
}
BLEU_ORDERS = 4


@dataclass
class TypeSets:
    """The n-gram types of each example as CSR index arrays, and each example's n-gram count."""
    indptr: np.ndarray  # (n + 1,)
    ids: np.ndarray  # type ids, deduplicated within an example
    totals: np.ndarray  # (n,) n-grams per example (with repeats)

    @classmethod
    def build(cls, gram_lists, vocabulary):
        ids, indptr = [], [0]
        for grams in gram_lists:
            ids.extend(sorted({vocabulary.setdefault(g, len(vocabulary)) for g in grams}))
            indptr.append(len(ids))
        return cls(np.array(indptr), np.array(ids, dtype=np.int64), np.array([len(g) for g in gram_lists], float))

    @cached_property
    def layout(self):
        """(per example: types only it holds; for types held by several examples, their examples grouped by
        type; where each group starts)."""
        n = len(self.totals)
        item = np.repeat(np.arange(n), np.diff(self.indptr))
        order = np.argsort(self.ids, kind="stable")
        ids, item = self.ids[order], item[order]
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.zeros(0, int)
        sizes = np.diff(np.r_[starts, len(ids)])
        single = np.bincount(item[starts[sizes == 1]], minlength=n).astype(float)
        shared = sizes > 1
        offsets = np.r_[0, np.cumsum(sizes[shared])[:-1]].astype(int) if shared.any() else np.zeros(0, int)
        return single, item[np.repeat(shared, sizes)], offsets

    def concat(self, other):
        return TypeSets(np.concatenate([self.indptr, other.indptr[1:] + self.indptr[-1]]),
                        np.concatenate([self.ids, other.ids]), np.concatenate([self.totals, other.totals]))


@dataclass
class ExampleStats:
    """Everything the corpus metrics need, one row per test example."""
    n: int
    additive: dict  # name -> (n,) or (n, k) array
    sets: dict = field(default_factory=dict)  # metric key -> TypeSets
    ead_vocab_size: int = EAD_VOCAB_SIZE
    loss_tokenizer: str = None  # whose tokens the per-token losses (PPL) count; None: unknown

    def concat(self, other):
        """The examples of self followed by those of other (the pool of a permutation test)."""
        return ExampleStats(self.n + other.n, {k: np.concatenate([v, other.additive[k]]) for k, v in
                                               self.additive.items() if k in other.additive},
                            {k: v.concat(other.sets[k]) for k, v in self.sets.items() if k in other.sets},
                            self.ead_vocab_size, self.loss_tokenizer)

    def metrics(self):
        keys = [k for k in TABLE3_METRICS if _available(self, k)]
        return keys


def _available(stats, key):
    needs = {"acc_cls_strat_id": "acc", "perplexity": "loss_sum", "cos-sim-generation": "cos"}
    if key in needs:
        return needs[key] in stats.additive
    return key in stats.sets or key.startswith(("bleu", "rouge"))


class Tokenizer:
    """metric_tokens / sentence_word_tokens with a cache: references and frequent replies repeat across folders."""

    def __init__(self):
        self.words, self.sentences = {}, {}

    def metric(self, text):
        if text not in self.words:
            self.words[text] = metric_tokens(text)
        return self.words[text]

    def ead(self, text):
        if text not in self.sentences:
            self.sentences[text] = sentence_word_tokens(text)
        return self.sentences[text]


def _clipped_matches(ref, hyp, n):
    """NLTK modified_precision's numerator and denominator for one hypothesis and one reference."""
    hyp_counts, ref_counts = {}, {}
    for g in _ngrams(hyp, n, drop_last=False):
        hyp_counts[g] = hyp_counts.get(g, 0) + 1
    for g in _ngrams(ref, n, drop_last=False):
        ref_counts[g] = ref_counts.get(g, 0) + 1
    matches = sum(min(c, ref_counts.get(g, 0)) for g, c in hyp_counts.items())
    return matches, max(1, sum(hyp_counts.values()))


def text_stats(references, generations, tokenizer, vocabularies):
    """Additive and set statistics of the text metrics. `vocabularies` maps each set metric to a shared
    {n-gram: id} dict, so that ids agree across the folders being compared."""
    refs = [tokenizer.metric(t) for t in references]
    hyps = [tokenizer.metric(t) for t in generations]
    bleu = np.array([[_clipped_matches(r, h, n) for n in range(1, BLEU_ORDERS + 1)] for r, h in zip(refs, hyps)],
                    dtype=float).reshape(len(refs), BLEU_ORDERS, 2)
    additive = {"bleu_matches": bleu[:, :, 0], "bleu_totals": bleu[:, :, 1],
                "hyp_len": np.array([len(h) for h in hyps], float), "ref_len": np.array([len(r) for r in refs], float),
                "rouge": np.array(rouge_l_per_example(refs, hyps))}
    sets = {}
    for n in (1, 2):
        sets[f"dist-{n}"] = TypeSets.build([_ngrams(h, n, drop_last=True) for h in hyps],
                                           vocabularies.setdefault(f"dist-{n}", {}))
        sentences = [tokenizer.ead(t) for t in generations]
        sets[f"ead-{n}"] = TypeSets.build([[g for s in sents for g in _ngrams(s, n, drop_last=False)]
                                           for sents in sentences], vocabularies.setdefault(f"ead-{n}", {}))
    return additive, sets


def _strategy_and_loss(records, additive):
    if all_or_none(records, (GOLD_KEY, PRED_KEY)):
        additive["acc"] = np.array([int(r[GOLD_KEY]) == int(r[PRED_KEY]) for r in records], float)
    if all_or_none(records, ("loss", "token_num")):
        tokens = np.array([float(r["token_num"]) for r in records])
        additive["loss_sum"] = np.array([float(r["loss"]) for r in records]) * tokens
        additive["tokens"] = tokens


def _cos_similarity(folder, n, additive):
    path = os.path.join(folder, "cos_similarity_list.json")
    if not os.path.isfile(path):
        return
    rerun = "rerun codes/get_cos_similarity.py on this folder"
    scores = load_json(path, expect=list, hint=rerun)
    if len(scores) != n:
        raise UserError(f"{path}: expected {n} per-example scores (one per gen.json record); {rerun}")
    try:
        additive["cos"] = np.array([float(s["generation"]) for s in scores])
    except (KeyError, TypeError, ValueError):
        raise UserError(f"{path}: expected a number under \"generation\" in every score; {rerun}")


PAL_TOKENIZER = "BlenderBot-small (PAL family)"  # every codes/infer.py folder: PAL, PAL alpha=0, Blender-Joint


def read_loss_tokenizer(folder):
    """Whose tokens a result folder's per-example losses count, from its infer_args.json: a chat LLM's (its model,
    codes/infer_chat.py) or BlenderBot-small's (codes/infer.py: the PAL family); None when the folder does not say."""
    path = os.path.join(folder, "infer_args.json")
    if not os.path.isfile(path):
        return None
    recorded = load_json(path, expect=dict)
    system = recorded.get("system")
    if isinstance(system, dict):
        if system.get("kind") != "llm":
            return PAL_TOKENIZER if system.get("kind") == "pal" else None
        return " ".join(str(system[k]) for k in ("llm", "gguf_file") if system.get(k))
    return PAL_TOKENIZER if "config_name" in recorded else None


def folder_stats(folder, tokenizer, vocabularies):
    """(ExampleStats, references) of one result folder (gen.json, plus cos_similarity_list.json when present)."""
    records = load_gen_json(folder)
    check_records(records, os.path.join(folder, "gen.json"))
    references = [first_text(r["response"]) for r in records]
    additive, sets = text_stats(references, [first_text(r["generation"]) for r in records], tokenizer, vocabularies)
    _strategy_and_loss(records, additive)
    _cos_similarity(folder, len(records), additive)
    return ExampleStats(len(records), additive, sets, loss_tokenizer=read_loss_tokenizer(folder)), references


# ---- corpus metrics from weights ------------------------------------------------------------------------------------
def bleu_from_counts(matches, totals, hyp_len, ref_len, n):
    """Corpus BLEU-n x100 from summed counts, one row per resample: matches/totals (R, 4), lengths (R,)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        bp = np.where(hyp_len > ref_len, 1.0, np.where(hyp_len == 0, 0.0, np.exp(1 - ref_len / hyp_len)))
        zero = matches == 0
        k = np.cumsum(zero, axis=1)  # method 3: the k-th order without a match gets 1 / (2^k * denominator)
        precision = np.where(zero, 1.0 / (2.0 ** k * totals), matches / totals)
        score = bp * np.exp(np.log(precision[:, :n]).sum(axis=1) / n)
    return 100 * np.where(matches[:, 0] == 0, 0.0, score)


class Presence:
    """Which examples a batch of resamples draws, in the two forms present_types needs (computed once per batch)."""

    def __init__(self, weights):
        positive = weights > 0
        self.size = positive.shape[0]
        self.dense = positive.astype(float)  # (R, n)
        self.bits = np.packbits(np.ascontiguousarray(positive.T), axis=1)  # (n, R/8): one bit per resample


def present_types(sets, presence):
    """Number of distinct types among the examples each resample draws -> (R,)."""
    single, shared_item, offsets = sets.layout
    count = presence.dense @ single  # a type held by one example is present when that example is drawn
    if len(offsets):
        union = np.bitwise_or.reduceat(presence.bits[shared_item], offsets, axis=0)  # shared type: any holder drawn
        count = count + np.unpackbits(union, axis=1, count=presence.size).sum(axis=0, dtype=np.int64)
    return count


def corpus_values(stats, weights, keys):
    """{metric key: (R,) values in metric.json's scale} for weights (R, n) over the examples of `stats`."""
    weights = np.asarray(weights, dtype=float)
    a = stats.additive
    size = weights.sum(axis=1)
    presence = Presence(weights) if any(k.startswith(("dist-", "ead-")) for k in keys) else None
    out = {}
    for key in keys:
        if key.startswith("bleu-"):
            out[key] = bleu_from_counts(weights @ a["bleu_matches"], weights @ a["bleu_totals"],
                                        weights @ a["hyp_len"], weights @ a["ref_len"], int(key[-1]))
        elif key.startswith(("dist-", "ead-")):
            out[key] = _diversity(key, stats, weights, presence)
        elif key == "rouge-l":
            out[key] = 100 * (weights @ a["rouge"]) / size
        elif key == "acc_cls_strat_id":
            out[key] = (weights @ a["acc"]) / size
        elif key == "perplexity":
            out[key] = np.exp((weights @ a["loss_sum"]) / (weights @ a["tokens"]))
        elif key == "cos-sim-generation":
            out[key] = (weights @ a["cos"]) / size
        else:
            raise KeyError(key)
    return out


def _diversity(key, stats, weights, presence):
    sets = stats.sets[key]
    distinct = present_types(sets, presence)
    total = weights @ sets.totals
    with np.errstate(divide="ignore", invalid="ignore"):
        if key.startswith("dist-"):
            value = distinct / total
        else:
            v = stats.ead_vocab_size
            value = distinct / (v * -np.expm1(total * math.log1p(-1.0 / v)))
    return 100 * np.where(total > 0, value, 0.0)
