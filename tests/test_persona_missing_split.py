"""PersonaChat with only some splits: the error names the missing split and the file to get, where it arises
(the extractor's CSV reader, and RUN/demo.sh before it trains anything)."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers.paths import fake_venv
from palkit.cli import UserError
from persona_extractor.extractor_data import read_pairs

pytestmark = pytest.mark.robustness

REPO = Path(__file__).resolve().parents[1]


def test_a_missing_train_csv_names_the_personachat_file(tmp_path):
    with pytest.raises(UserError, match="train.csv: no such file; .*process_bart_df.py .*train_both_original.txt"):
        read_pairs(str(tmp_path / "train.csv"))


def test_demo_with_only_the_valid_split_stops_at_once_naming_the_train_file(tmp_path, punkt):
    shutil.copytree(REPO / "RUN", tmp_path / "RUN")
    for name in ("requirements.txt", "requirements-lock.txt", "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    fake_venv(tmp_path / ".venv", tmp_path)
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
