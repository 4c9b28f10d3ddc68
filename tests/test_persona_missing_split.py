"""PersonaChat with only some splits: the error names the missing split and the file to get, where it arises
(the extractor's CSV reader, and RUN/demo.sh before it trains anything)."""
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pal.cli import UserError
from persona_extractor.extractor_training import read_pairs

REPO = Path(__file__).resolve().parents[1]


def test_a_missing_train_csv_names_the_personachat_file(tmp_path):
    with pytest.raises(UserError, match="train.csv: no such file; .*process_bart_df.py .*train_both_original.txt"):
        read_pairs(str(tmp_path / "train.csv"))


def fake_venv(venv, requirements):
    """A .venv for RUN/setup_env.sh that is this test's interpreter (up to date: nothing to install). It refuses
    pip, so that a setup_env.sh that wants to install fails this test instead of changing the test's environment."""
    if sys.prefix == sys.base_prefix:
        pytest.skip("needs the tests to run in a virtual environment")
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text(
        '#!/bin/sh\ncase "$*" in *"-m pip"*) echo "fake venv: no pip" >&2; exit 1 ;; esac\n'
        f'exec {sys.executable} "$@"\n')
    (venv / "bin" / "python").chmod(0o755)
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    (venv / ".requirements.sha256").write_text(digest + "\n")


def test_demo_with_only_the_valid_split_stops_at_once_naming_the_train_file(tmp_path, punkt):
    shutil.copytree(REPO / "RUN", tmp_path / "RUN")
    shutil.copy(REPO / "requirements.txt", tmp_path / "requirements.txt")
    fake_venv(tmp_path / ".venv", tmp_path / "requirements.txt")
    (tmp_path / "DATA" / "personachat").mkdir(parents=True)
    shutil.copy(REPO / "RUN" / "demo_data" / "personachat_sample_both_original.txt",
                tmp_path / "DATA" / "personachat" / "valid_both_original.txt")
    env = {k: v for k, v in os.environ.items() if k not in ("PAL_VENV", "DEMO_OUT")}
    result = subprocess.run(["bash", "RUN/demo.sh"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: DATA/personachat/ has no train_both_original.txt"), result.stderr
    assert "ConvAI2's train_both_original.txt" in result.stderr
