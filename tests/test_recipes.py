"""The user-facing recipes of issue 6: RUN/reproduce_table3.sh (dry run), codes/bench.py (--small) and RUN/demo.sh."""
import json
import os
import re
import shlex
import subprocess
import sys
from functools import lru_cache

import pytest

from conftest import REPO_ROOT, punkt_available


def run(cmd, env=None, timeout=900):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, env=full_env, timeout=timeout)


def dry_run_commands():
    out = run(["bash", "RUN/reproduce_table3.sh", "--dry_run"])
    assert out.returncode == 0, out.stderr
    return [shlex.split(line[2:]) for line in out.stdout.splitlines() if line.startswith("+ ")]


def python_script_of(argv):
    """The python script a dry-run command ends up running: directly, or through a RUN/*.sh wrapper."""
    argv = [a for a in argv if a != "env" and "=" not in a.split("/")[0]]
    if argv[0] == "python":
        return argv[1]
    assert argv[0] == "bash", argv
    code = "\n".join(line for line in (REPO_ROOT / argv[1]).read_text().splitlines() if not line.startswith("#"))
    return re.search(r"(?:python|\"\$\{LAUNCH\[@\]\}\") ((?:codes|persona_extractor)/\S+\.py)", code).group(1)


@lru_cache(maxsize=None)
def help_text(script):
    out = run([sys.executable, script, "--help"])
    assert out.returncode == 0, f"{script} --help failed: {out.stderr[-500:]}"
    return out.stdout


def test_reproduce_table3_dry_run_covers_the_recipe_with_valid_flags():
    commands = dry_run_commands()
    scripts = [python_script_of(c) for c in commands]
    for needed in ("persona_extractor/train_bart.py", "persona_extractor/annotate_esconv.py",
                   "codes/_reformat/process.py", "codes/prepare.py", "codes/train.py", "codes/infer.py",
                   "codes/get_cos_similarity.py", "codes/summarize_results.py"):
        assert needed in scripts, f"the recipe never runs {needed}"
    # Every epoch of each of the three models is decoded on the test split.
    saves = [c[c.index("--save_dir") + 1] for c in commands if "--save_dir" in c]
    assert len(saves) == 3 * 10 and len(set(saves)) == 30
    assert sum("--strategy_alpha" in c for c in commands) == 10  # PAL alpha=0
    # The table compares each result folder with its own paper row (one --compare_to per folder).
    summary = next(c for c in commands if "codes/summarize_results.py" in c)
    folders = summary[2:summary.index("--compare_to")]
    rows = summary[summary.index("--compare_to") + 1:summary.index("--output")]
    assert folders == saves and rows == [s.split("/")[2] for s in saves]
    # Every flag the recipe passes is one its script accepts (catches drift between the recipe and the scripts).
    for command, script in zip(commands, scripts):
        for flag in (a for a in command if a.startswith("--")):
            assert re.search(rf"{re.escape(flag)}\b", help_text(script)), f"{script} has no {flag} ({command})"


def test_reproduce_table3_rejects_unknown_arguments():
    out = run(["bash", "RUN/reproduce_table3.sh", "--dryrun"])
    assert out.returncode == 2 and "unknown argument" in out.stderr


def test_bench_small_prints_every_ratio_and_writes_json(tmp_path):
    out_json = tmp_path / "bench.json"
    out = run([sys.executable, "codes/bench.py", "--small", "--dialogues", "3", "--rounds", "1", "--train_steps", "1",
               "--train_batch_size", "2", "--gen_batch_size", "2", "--max_length", "3", "--output", str(out_json)])
    assert out.returncode == 0, out.stderr[-2000:]
    for row in ("featurization", "train step", "greedy", "peak memory"):
        assert re.search(rf"^{row} .*target", out.stdout, re.M), f"no {row} row:\n{out.stdout}"
    for row in ("sampled", "PAL decoder"):
        assert re.search(rf"^{row} .*ratio|^{row} .*speed-up", out.stdout, re.M), f"no {row} row:\n{out.stdout}"
    results = json.loads(out_json.read_text())
    assert results["featurization"]["identical_ids"] is True
    for key in ("featurization", "train_step", "greedy", "sampled", "peak_memory"):
        assert results[key]["ratio"] > 0
    assert results["pal_decoder"]["identical"] == 1.0 and results["pal_decoder"]["speedup"] > 0
    assert set(results["targets"]) == {"featurization", "train_step", "greedy", "peak_memory"}


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    if not punkt_available():
        pytest.skip("needs NLTK's punkt_tab (../shared/nltk_data is absent and NLTK_DATA holds none)")
    out_dir = tmp_path / "demo"
    out = run(["bash", "RUN/demo.sh"], env={"DEMO_OUT": str(out_dir)}, timeout=1200)
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
    for rel in ("PESConv.json", "pesconv/test.txt", "strat.strat/demo_run/epoch-1.bin",
                "strat.strat/demo_run/training_curves.png", "results/pal/gen.json", "results/pal/metric.json",
                "results/pal/metric_nlgeval.json", "results/pal/confusion_matrix_cls_strat_id.png",
                "results/pal/ead.json", "results/pal/cos_similarity.json", "results/pal_alpha0/gen.json",
                "results.md"):
        assert (out_dir / rel).is_file(), f"demo did not write {rel}"
    table = (out_dir / "results.md").read_text()
    assert "PAL (demo)" in table and "PAL (paper)" in table
    annotated = json.loads((out_dir / "PESConv.json").read_text())
    for conv in annotated:
        seeker_turns = sum(t["speaker"] == "seeker" for t in conv["dialog"])
        assert len(conv["persona_list"]) == max(0, seeker_turns - 2)
