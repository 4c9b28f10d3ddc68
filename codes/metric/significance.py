"""Paired significance tests of Table 3 metrics between systems scored on the same test examples.

A system is one or more replicate result folders (decoding seeds, training seeds) of one model; its value for a
metric is the mean over its replicates of the corpus metric. For systems A and B:
- paired bootstrap: the same resample of test examples (drawn with replacement) for every system and replicate;
  the interval of B - A is the percentile interval of the resampled differences;
- approximate randomization: each test example's replies are swapped between A and B with probability 1/2 (in
  every replicate pair j at once: A's j-th folder with B's j-th); p = (1 + #{|permuted difference| >= |observed|})
  / (1 + resamples), so two identical systems give p = 1.
- Distinct-n and EAD-n (INVERTED_KEYS): a bootstrap resample repeats examples, which lowers both systems' diversity,
  so their percentile interval can miss the observed difference. Their interval is the randomization test inverted
  under a shift model instead: every d for which the test of "B - A = d" (the permuted differences taken as the
  spread of the observed one around d) is not rejected, i.e. observed +- the K-th largest |permuted difference|.
  It always contains the observed difference and excludes 0 exactly when p <= 1 - confidence.
- Metrics that are not comparable between the two systems (PPL under different tokenizers: per-token losses of
  different tokens) get no test: `comparable` false and `why`.
Draws come from numpy's generator seeded by `seed` (bootstrap and permutation streams spawned from it), in chunks
of a fixed size, so the same seed gives the same numbers, and adding a system does not change the others' numbers.
"""
import math
from dataclasses import dataclass, field

import numpy as np

from palkit.cli import UserError

from .example_stats import corpus_values

CHUNK = 500  # resamples evaluated at once (bounds memory; part of what makes a seed reproducible)
INVERTED_KEYS = ("dist-1", "dist-2", "ead-1", "ead-2")  # intervals from the inverted randomization test (docstring)
PER_TOKEN_KEYS = ("perplexity",)  # comparable only between systems with the same tokenizer
TIE_TOLERANCE = 1e-9  # relative: permuted differences equal to the observed one up to rounding count as ties


@dataclass
class System:
    name: str
    replicates: list  # ExampleStats, one per result folder, all on the same examples
    labels: list = field(default_factory=list)  # per replicate: (training seed, decoding seed), None when unknown

    @property
    def n(self):
        return self.replicates[0].n

    @property
    def loss_tokenizers(self):
        """The tokenizers its replicates' per-token losses were computed with (None: unknown)."""
        return {r.loss_tokenizer for r in self.replicates}


def not_comparable(key, a, b):
    """Why `key` cannot be compared between systems a and b ('' when it can)."""
    if key in PER_TOKEN_KEYS:
        known = (a.loss_tokenizers | b.loss_tokenizers) - {None}
        if len(known) > 1:
            return "different tokenizers"
    return ""


def common_metrics(systems, keys):
    """The metric keys every replicate of every system can compute, in the order of `keys`."""
    return [k for k in keys if all(k in r.metrics() for s in systems for r in s.replicates)]


def bootstrap_weights(rng, size, n):
    """(size, n): how many times each example is drawn in each of `size` resamples of n examples."""
    rows = rng.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
    return np.bincount(rows.ravel(), minlength=size * n).reshape(size, n).astype(float)


def _chunks(total):
    for start in range(0, total, CHUNK):
        yield min(CHUNK, total - start)


def _replicate_values(system, weights, keys):
    """{key: (replicates, R)}."""
    values = [corpus_values(r, weights, keys) for r in system.replicates]
    return {k: np.stack([v[k] for v in values]) for k in keys}


def bootstrap(systems, keys, resamples, rng):
    """{system name: {key: (replicates, resamples)}} on shared resamples."""
    parts = {s.name: {k: [] for k in keys} for s in systems}
    for size in _chunks(resamples):
        weights = bootstrap_weights(rng, size, systems[0].n)
        for s in systems:
            for k, v in _replicate_values(s, weights, keys).items():
                parts[s.name][k].append(v)
    return {name: {k: np.concatenate(v, axis=1) for k, v in d.items()} for name, d in parts.items()}


def permutation_deltas(a, b, keys, resamples, rng):
    """{key: (resamples,)} differences B' - A' after swapping each example between A and B with probability 1/2."""
    if len(a.replicates) != len(b.replicates):
        raise UserError(f"{a.name} has {len(a.replicates)} result folders and {b.name} {len(b.replicates)}: the "
                         "randomization test pairs A's j-th folder with B's j-th, so give the same number")
    pools = [ra.concat(rb) for ra, rb in zip(a.replicates, b.replicates)]
    parts = {k: [] for k in keys}
    for size in _chunks(resamples):
        swap = rng.integers(0, 2, size=(size, a.n)).astype(float)
        as_a, as_b = np.hstack([1 - swap, swap]), np.hstack([swap, 1 - swap])
        values_a = [corpus_values(p, as_a, keys) for p in pools]
        values_b = [corpus_values(p, as_b, keys) for p in pools]
        for k in keys:
            parts[k].append(np.mean([v[k] for v in values_b], axis=0) - np.mean([v[k] for v in values_a], axis=0))
    return {k: np.concatenate(v) for k, v in parts.items()}


def observed(system, keys):
    """{key: (replicates,)} each replicate's corpus value on the full test set."""
    ones = np.ones((1, system.n))
    return {k: v[:, 0] for k, v in _replicate_values(system, ones, keys).items()}


def p_value(permuted, delta):
    threshold = abs(delta) - TIE_TOLERANCE * max(1.0, abs(delta))
    return float((1 + np.count_nonzero(np.abs(permuted) >= threshold)) / (1 + len(permuted)))


def inverted_interval(permuted, delta, confidence):
    """(low, high): the d with p_value(permuted, delta - d) > 1 - confidence, i.e. delta +- the K-th largest
    |permuted difference| for the smallest count K that keeps p above 1 - confidence (infinite when even K = 0 does:
    too few resamples)."""
    needed = math.floor((1 - confidence) * (1 + len(permuted)) - 1) + 1  # p > alpha <=> count >= needed
    if needed <= 0:
        return -math.inf, math.inf
    half_width = float(np.sort(np.abs(permuted))[::-1][needed - 1])
    return delta - half_width, delta + half_width


def spread(values, labels, boot):
    """How much of a system's replicate spread comes from decoding: {decoding_sd, training_sd, decoding_share,
    test_sample_sd, n_replicates}. values: (replicates,), labels: (training seed, decoding seed) each."""
    groups = {}
    for v, (train_seed, _) in zip(values, labels):
        groups.setdefault(train_seed, []).append(v)
    within = [(len(g) - 1, np.var(g, ddof=1)) for g in groups.values() if len(g) > 1]
    dof = sum(d for d, _ in within)
    decoding_var = sum(d * v for d, v in within) / dof if dof else float("nan")
    training_var = float("nan")
    if len(groups) > 1:
        means = [np.mean(g) for g in groups.values()]
        correction = (decoding_var if dof else 0.0) * np.mean([1 / len(g) for g in groups.values()])
        training_var = max(0.0, float(np.var(means, ddof=1) - correction))
    if dof and len(groups) > 1:
        total = decoding_var + training_var
        share = decoding_var / total if total > 0 else float("nan")
    else:  # one training run: all the spread seen is decoding; one folder per run: decoding unseen
        share = 1.0 if dof else float("nan")
    return {"n_replicates": len(values), "decoding_sd": _finite(np.sqrt(decoding_var)),
            "training_sd": _finite(np.sqrt(training_var)), "decoding_share": _finite(share),
            "test_sample_sd": _finite(np.mean(np.std(boot, axis=1, ddof=1)))}


def _finite(value):
    """A float, or None (JSON null) where the quantity is undefined."""
    return float(value) if np.isfinite(value) else None


def compare(systems, keys, resamples=10000, seed=0, confidence=0.95):
    """Each system after the first against the first. Returns (keys used, [comparison dicts]); a comparison is
    {"a": name, "b": name, "metrics": {key: {a, b, delta, ci_low, ci_high, interval, p_value, se, spread,
    comparable, why}}}; `interval` says how ci_low/ci_high were made ("bootstrap percentile" or "randomization
    inversion"); a metric that is not comparable has delta, ci_low, ci_high, p_value and se None."""
    keys = common_metrics(systems, keys)
    boot_rng, perm_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    boot = bootstrap(systems, keys, resamples, boot_rng)
    seen = {s.name: observed(s, keys) for s in systems}
    perm_states = perm_rng.bit_generator.state
    tail = 100 * (1 - confidence) / 2
    results = []
    base = systems[0]
    for other in systems[1:]:
        perm_rng.bit_generator.state = perm_states  # every comparison sees the same swaps
        permuted = permutation_deltas(base, other, keys, resamples, perm_rng)
        metrics = {}
        for k in keys:
            a, b = float(np.mean(seen[base.name][k])), float(np.mean(seen[other.name][k]))
            deltas = boot[other.name][k].mean(axis=0) - boot[base.name][k].mean(axis=0)
            metrics[k] = {"a": a, "b": b, "spread": {role: spread(seen[s.name][k], s.labels, boot[s.name][k])
                                                     for role, s in (("a", base), ("b", other))
                                                     if len(s.replicates) > 1}}
            why = not_comparable(k, base, other)
            if why:
                metrics[k].update(delta=None, ci_low=None, ci_high=None, interval=None, p_value=None, se=None,
                                  comparable=False, why=why)
                continue
            if k in INVERTED_KEYS:
                low, high = inverted_interval(permuted[k], b - a, confidence)
                interval = "randomization inversion"
            else:
                low, high = np.percentile(deltas, [tail, 100 - tail])
                interval = "bootstrap percentile"
            low, high = (float(v) if math.isfinite(v) else None for v in (low, high))  # None: too few resamples
            metrics[k].update(delta=b - a, ci_low=low, ci_high=high, interval=interval,
                              p_value=p_value(permuted[k], b - a), se=float(np.std(deltas, ddof=1)),
                              comparable=True, why="")
        results.append({"a": base.name, "b": other.name, "metrics": metrics})
    return keys, results
