"""Offline, a hub name fails at once with one line: the local hub cache is tried, then the hub only if it accepts a
connection within seconds (palkit.model_files.from_folder_or_hub), instead of minutes of download retries; and the extractor
checks its CSVs before it loads a model. Each command runs as a user types it (RUN/python), with an empty hub cache.
The time bound is only the subprocess timeout (generous: the machine may be loaded); README "Offline" quotes times."""
import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MISSING = "nobody-here/no-such-model"
TIMEOUT = 90  # seconds; the retry storm this replaces took minutes


def run(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")} | {"HF_HOME": str(tmp_path / "hf_home")}
    result = subprocess.run([str(REPO / "RUN" / "python"), *map(str, args)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert "Retrying" not in result.stderr and lines[-1].startswith("error: "), result.stderr
    return lines[-1]


@pytest.fixture
def pair_csvs(tmp_path):
    folder = tmp_path / "csv"
    folder.mkdir()
    for split in ("train", "valid"):
        (folder / f"{split}.csv").write_text("context,persona\nhi i have a dog .,i have a dog . </s>\n")
    return folder


def test_extractor_training_with_an_unreachable_hub_name(tmp_path, pair_csvs):
    error = run(tmp_path, REPO / "persona_extractor" / "train_bart.py", "--model_name_or_path", MISSING,
                "--train_dir", pair_csvs, "--output_dir", tmp_path / "out")
    assert MISSING in error and ("hub is unreachable" in error or "not found" in error), error


def test_extractor_training_checks_train_csv_before_loading_the_model(tmp_path, pair_csvs):
    (pair_csvs / "train.csv").unlink()
    error = run(tmp_path, REPO / "persona_extractor" / "train_bart.py", "--model_name_or_path", MISSING,
                "--train_dir", pair_csvs, "--output_dir", tmp_path / "out")
    assert "train.csv: no such file" in error and MISSING not in error, error


def test_cos_sim_with_an_unreachable_hub_name(tmp_path):
    gen = tmp_path / "gen.json"
    gen.write_text(json.dumps([{"response": "ok .", "generation": "i see .", "persona": "i have a dog ."}]))
    error = run(tmp_path, REPO / "codes" / "get_cos_similarity.py", "--input_file", gen, "--model", MISSING)
    assert MISSING in error and "hub is unreachable" in error and "--model DIR" in error, error


def test_model_loading_with_an_unreachable_hub_name(tmp_path):
    train = tmp_path / "train.txt"
    train.write_text(json.dumps({"dialog": [], "persona": ""}) + "\n")
    error = run(tmp_path, REPO / "codes" / "prepare.py", "--config_name", "strat", "--inputter_name", "strat",
                "--train_input_file", train, "--pretrained_model_path", MISSING, "--output_dir", tmp_path / "prep",
                "--allow_no_persona", "True")
    assert MISSING in error and "Blenderbot_small-90M" in error, error
