"""How long the paired tests of compare_systems.py take on a test split of Table 3's size (synthetic replies).

    RUN/python codes/bench_significance.py [--examples 1500] [--systems 3] [--replicates 1] [--resamples 10000]

Builds replies from a Zipf-distributed vocabulary (ESConv-like lengths), times the per-example statistics (text
tokenized once) and then the bootstrap + randomization tests of every Table 3 metric computed from text
(ACC, PPL and Cos-Sim included), and prints the wall and CPU seconds of each part. Needs NLTK's punkt_tab.
"""
import palkit.entry  # noqa: F401 -- first: outside the project's environment, one line saying how to run this
import time

import numpy as np

from palkit.argtypes import int_range, positive_int
from palkit.cli import ArgumentParser, run_main

from metric.example_stats import TABLE3_METRICS, ExampleStats, Tokenizer, text_stats
from metric.significance import System, compare
from metric.tokens import require_punkt


def synthetic_corpus(rng, n, vocabulary=5000):
    """n replies of 5-25 words from a Zipf(1.1) vocabulary, with a sentence break now and then."""
    words = [f"w{i}" for i in range(vocabulary)]
    texts = []
    for _ in range(n):
        ids = np.minimum(rng.zipf(1.1, size=rng.integers(5, 26)), vocabulary) - 1
        tokens = [words[i] for i in ids]
        if len(tokens) > 10:
            tokens.insert(len(tokens) // 2, ".")
        texts.append(" ".join(tokens) + " .")
    return texts


def build_system(name, rng, references, replicates, tokenizer, vocabularies):
    stats = []
    for _ in range(replicates):
        additive, sets = text_stats(references, synthetic_corpus(rng, len(references)), tokenizer, vocabularies)
        n = len(references)
        additive.update(acc=(rng.random(n) < 0.3).astype(float), loss_sum=rng.random(n) * 30, tokens=np.full(n, 10.0),
                        cos=rng.random(n))
        stats.append(ExampleStats(n, additive, sets))
    return System(name, stats, [(0, d) for d in range(replicates)])


def main(argv=None):
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--examples", type=positive_int, default=1500)
    p.add_argument("--systems", type=int_range(2), default=3, help="at least 2 (each after the first is compared)")
    p.add_argument("--replicates", type=positive_int, default=1, help="result folders per system (decoding seeds)")
    p.add_argument("--resamples", type=positive_int, default=10000)
    args = p.parse_args(argv)
    require_punkt()
    rng = np.random.default_rng(0)
    references = synthetic_corpus(rng, args.examples)
    start, cpu_start = time.perf_counter(), time.process_time()
    tokenizer, vocabularies = Tokenizer(), {}
    systems = [build_system(f"S{k}", rng, references, args.replicates, tokenizer, vocabularies)
               for k in range(args.systems)]
    prepared, cpu_prepared = time.perf_counter(), time.process_time()
    compare(systems, list(TABLE3_METRICS), args.resamples, seed=0)
    done, cpu_done = time.perf_counter(), time.process_time()
    print(f"{args.examples} examples, {args.systems} systems x {args.replicates} folder(s), {args.resamples} resamples,"
          " "
          f"{len(TABLE3_METRICS)} metrics, {args.systems - 1} comparisons")
    # CPU seconds beside wall seconds: on a shared machine the wall time also counts other people's jobs
    print(f"per-example statistics (tokenization included): {prepared - start:.1f} s wall, "
          f"{cpu_prepared - cpu_start:.1f} s CPU")
    print(f"bootstrap + randomization tests: {done - prepared:.1f} s wall, {cpu_done - cpu_prepared:.1f} s CPU")
    print(f"total: {done - start:.1f} s wall, {cpu_done - cpu_start:.1f} s CPU")


if __name__ == "__main__":
    run_main(main)
