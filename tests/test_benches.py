"""Smoke test of codes/bench_significance.py on a tiny corpus: it runs, prints its numbers and refuses bad input in
one line (its numbers themselves are measurements, README "Seeds, checkpoint rules, intervals and significance";
nothing here times anything). codes/bench_serve.py's smoke tests run against tests/test_serve.py's server."""
import os
import re
import subprocess
import sys

from helpers.paths import REPO_ROOT

ENV = dict(os.environ, OMP_NUM_THREADS="1")


def script(name, *args, timeout=600):
    return subprocess.run([sys.executable, str(REPO_ROOT / "codes" / name), *map(str, args)], env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def test_bench_significance_runs_on_a_tiny_corpus(punkt):
    result = script("bench_significance.py", "--examples", "40", "--systems", "3", "--replicates", "2",
                    "--resamples", "60")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "40 examples, 3 systems x 2 folder(s), 60 resamples, 10 metrics, 2 comparisons"
    for part in ("per-example statistics (tokenization included)", "bootstrap + randomization tests", "total"):
        assert any(re.match(rf"{re.escape(part)}: [\d.]+ s wall, [\d.]+ s CPU$", line) for line in lines), part
    refused = script("bench_significance.py", "--systems", "1")
    assert refused.returncode == 2 and refused.stderr.strip() == (
        "error: argument --systems: must be an integer >= 2, got 1; see bench_significance.py --help")
