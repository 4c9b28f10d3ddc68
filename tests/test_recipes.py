"""The user-facing recipes: RUN/reproduce_table3.sh (dry run), codes/bench.py (--small) and RUN/demo.sh."""
import json
import os
import re
import shlex
import subprocess
import sys
from functools import lru_cache

import pytest

from helpers.paths import REPO_ROOT


def run(cmd, env=None, timeout=900):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, env=full_env, timeout=timeout)


def dry_run(env=None):
    out = run(["bash", "RUN/reproduce_table3.sh", "--dry_run"], env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout


def dry_run_commands(env=None):
    return [shlex.split(line[2:]) for line in dry_run(env).splitlines() if line.startswith("+ ")]


def python_script_of(argv):
    """The python script a dry-run command ends up running: directly, or through a RUN/*.sh wrapper."""
    argv = [a for a in argv if a != "env" and "=" not in a.split("/")[0]]
    if argv[0] in ("python", "RUN/python"):
        return argv[1]
    assert argv[0] == "bash", argv
    code = "\n".join(line for line in (REPO_ROOT / argv[1]).read_text().splitlines() if not line.startswith("#"))
    return re.search(r"(?:python|\"\$\{LAUNCH\[@\]\}\") \"?(?:\$\{R\})?((?:codes|persona_extractor)/[^\s\"]+\.py)",
                     code).group(1)


@lru_cache(maxsize=None)
def help_text(script):
    out = run([sys.executable, script, "--help"])
    assert out.returncode == 0, f"{script} --help failed: {out.stderr[-500:]}"
    return out.stdout


@pytest.mark.slow
def test_reproduce_table3_dry_run_covers_the_recipe_with_valid_flags():
    commands = dry_run_commands()
    scripts = [python_script_of(c) for c in commands]
    for needed in ("persona_extractor/train_bart.py", "persona_extractor/annotate_esconv.py",
                   "codes/_reformat/process.py", "codes/prepare.py", "codes/train.py", "codes/infer.py",
                   "codes/get_cos_similarity.py", "codes/summarize_results.py", "codes/compare_systems.py"):
        assert needed in scripts, f"the recipe never runs {needed}"
    # Every flag the recipe passes is one its script accepts (catches drift between the recipe and the scripts).
    for command, script in zip(commands, scripts):
        for flag in (a for a in command if a.startswith("--")):
            assert re.search(rf"{re.escape(flag)}\b", help_text(script)), f"{script} has no {flag} ({command})"


def _value(command, flag):
    return command[command.index(flag) + 1] if flag in command else None


def test_reproduce_table3_plan_with_three_training_and_three_decoding_seeds():
    env = {"SEEDS": "13 42 7", "DECODE_SEEDS": "0 1 2", "NUM_EPOCHS": "4"}
    commands = dry_run_commands(env)
    trains = [c for c in commands if any(a.startswith("RUN/train_") and a != "RUN/train_persona_extractor.sh"
                                         for a in c)]
    # each system trained once per training seed, each into its own run folder
    assert sorted((c[3], _value(c, "--seed")) for c in trains) == sorted(
        (script, seed) for script in ("RUN/train_strat.sh", "RUN/train_no_persona.sh") for seed in ("13", "42", "7"))
    assert len({_value(c, "--output_dir") for c in trains}) == 6
    infers = [c for c in commands if any(a.startswith("RUN/infer_") for a in c)]
    # every system x training seed x epoch x decoding seed, once, into its own folder
    def ckpt_seed_epoch(c):  # DATA/<inputter.config>/table3-seed-S/epoch-E.bin
        return os.path.dirname(c[4]).split("-")[-1], c[4].split("epoch-")[1][:-len(".bin")]

    decoded = {(_value(c, "--save_dir").split("/")[2], *ckpt_seed_epoch(c), _value(c, "--seed")) for c in infers}
    assert len(infers) == len(decoded) == 3 * 3 * 4 * 3
    assert {d[0] for d in decoded} == {"pal", "pal_alpha0", "blender_joint"}
    for c in infers:  # PAL alpha=0 decodes PAL's checkpoints with alpha 0; the others do not set alpha
        save = _value(c, "--save_dir")
        assert (_value(c, "--strategy_alpha") == "0") == ("/pal_alpha0/" in save)
        assert ("strat_no_persona" in c[4]) == ("/blender_joint/" in save)
        seed, epoch = ckpt_seed_epoch(c)
        assert save.endswith(f"/seed-{seed}/epoch-{epoch}/decode-{_value(c, '--seed')}")
    cos = [c for c in commands if "codes/get_cos_similarity.py" in c]
    assert sorted(_value(c, "--input_file") for c in cos) == sorted(_value(c, "--save_dir") + "/gen.json"
                                                                    for c in infers)
    summary = next(c for c in commands if "codes/summarize_results.py" in c)
    assert summary[2] == "DATA/table3" and summary[summary.index("--select") + 1:summary.index("--output")] == [
        "best_ppl", "epoch:3", "every"]
    plan = dry_run(env)
    assert "# plan: 6 training runs" in plan and "24 epochs in all" in plan and "108 decodes" in plan
    assert re.search(r"# estimate: about \d+ h \d+ min", plan)


def test_reproduce_table3_rejects_bad_seeds_and_answers_help():
    out = run(["bash", "RUN/reproduce_table3.sh", "--dry_run"], env={"SEEDS": "13 x"})
    assert out.returncode == 2 and out.stderr.startswith("error: RUN/reproduce_table3.sh:")
    out = run(["bash", "RUN/reproduce_table3.sh", "--help"])
    assert out.returncode == 0 and "DECODE_SEEDS" in out.stdout
    assert not any(line.startswith("+ ") for line in out.stdout.splitlines())  # help, not the plan


@pytest.mark.slow
def test_bench_small_prints_every_ratio_and_writes_json(tmp_path):
    out_json = tmp_path / "bench.json"
    out = run([sys.executable, "codes/bench.py", "--small", "--dialogues", "3", "--rounds", "1", "--train_steps", "1",
               "--train_batch_size", "2", "--gen_batch_size", "2", "--max_length", "3", "--output", str(out_json)])
    assert out.returncode == 0, out.stderr[-2000:]
    for row in ("featurization", "peak memory"):
        assert re.search(rf"^{row} .*target", out.stdout, re.M), f"no {row} row:\n{out.stdout}"
    for row in ("train step", "greedy", "sampled"):  # each followed by its floor line with the target
        assert re.search(rf"^{row} .*ratio.*\n +floor .*over floor .*GFLOP/s .*target within", out.stdout, re.M), \
            f"no {row} row:\n{out.stdout}"
    assert re.search(r"^PAL decoder .*speed-up", out.stdout, re.M), f"no PAL decoder row:\n{out.stdout}"
    results = json.loads(out_json.read_text())
    assert results["featurization"]["identical_ids"] is True
    for key in ("featurization", "train_step", "greedy", "sampled", "peak_memory"):
        assert results[key]["ratio"] > 0
    for key in ("train_step", "greedy", "sampled"):
        row = results[key]
        assert row["floor_ratio"] > 1 and row["pal_gflops"] > 0 and row["vanilla_gflops"] > 0
        assert row["over_floor_pct"] == pytest.approx((row["ratio"] / row["floor_ratio"] - 1) * 100)
    assert results["pal_decoder"]["identical"] == 1.0 and results["pal_decoder"]["speedup"] > 0
    assert set(results["targets"]) == {"featurization", "train_step", "greedy", "sampled", "peak_memory"}


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
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
    # the persona path is exercised: PESConv holds personas, and PAL's contrastive rule changes what is written
    entries = [p for conv in annotated for p in conv["persona_list"]]
    assert sum(p.strip() not in ("", "<input>") for p in entries) > len(entries) / 2, entries[:5]
    pal, alpha0 = (json.loads((out_dir / "results" / r / "gen.json").read_text()) for r in ("pal", "pal_alpha0"))
    assert any(r["persona"] for r in pal)
    assert [r["generation"] for r in pal] != [r["generation"] for r in alpha0]
    assert "tiny randomly initialised models" in table
    # paths relative to the caller's directory: infer, interact and resume run from RUN/ itself
    rel = os.path.relpath(out_dir, REPO_ROOT / "RUN")
    run_rel = f"{rel}/strat.strat/demo_run"
    here = {"cwd": REPO_ROOT / "RUN", "capture_output": True, "text": True, "timeout": 900,
            "env": {**os.environ, "INFER_FILE": f"{rel}/pesconv/test.txt"}}
    infer = subprocess.run(["bash", "infer_strat.sh", run_rel, "--pretrained_model_path", f"{rel}/models/blenderbot",
                            "--save_dir", f"{rel}/results/from_run_dir"], **here)
    assert infer.returncode == 0, infer.stderr[-2000:]
    assert (out_dir / "results" / "from_run_dir" / "gen.json").is_file()
    chat = subprocess.run(["bash", "interact_strat.sh", run_rel, "--pretrained_model_path", f"{rel}/models/blenderbot",
                           "--output_dir", f"{rel}/chats"], input="hi there\nquit\n", **here)
    assert chat.returncode == 0 and (out_dir / "chats").is_dir(), chat.stderr[-2000:]
    resume = subprocess.run(["bash", "train_strat.sh", "--resume", run_rel], **here)
    assert resume.returncode == 2 and f"--resume {run_rel}: no training_state/ (the run finished all its epochs" \
        in resume.stderr, resume.stderr[-2000:]
