"""Smoke tests of the two benchmark scripts on tiny inputs: they run, print their numbers and refuse bad input in one
line (their numbers themselves are measurements, README "Benchmarks"; nothing here times anything)."""
import os
import re
import socket
import subprocess
import sys

import pytest

from helpers.paths import REPO_ROOT
from helpers.serving import served_pal

ENV = dict(os.environ, OMP_NUM_THREADS="1")


def script(name, *args, timeout=600):
    return subprocess.run([sys.executable, str(REPO_ROOT / "codes" / name), *map(str, args)], env=ENV,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_blender_dir):
    from helpers.human_eval import make_study_inputs
    return make_study_inputs(tmp_path_factory.mktemp("bench_serve"), tiny_blender_dir)


@pytest.fixture(scope="module")
def server(inputs, tiny_blender_dir):
    yield from served_pal(inputs["strat"], tiny_blender_dir)


def test_bench_serve_measures_a_served_tiny_model(server, inputs):
    result = script("bench_serve.py", "--endpoint", server, "--test_file", inputs["test_file"], "--clients", "2",
                    "--requests", "3", "--temperature", "0")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^6 requests from 2 clients in [\d.]+ s: [\d.]+ requests/s", result.stdout, re.M), result.stdout


def test_bench_serve_help_and_an_unreachable_endpoint(inputs):
    assert "--endpoint" in script("bench_serve.py", "--help").stdout
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = script("bench_serve.py", "--endpoint", f"http://127.0.0.1:{port}/v1", "--test_file", inputs["test_file"],
                    "--clients", "1", "--requests", "1")
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith(
        f"error: cannot reach http://127.0.0.1:{port}/v1/chat/completions"), result.stderr


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
