"""A regular (not editable) `pip install .` works from outside the checkout: the packages find their configs and
bundled data as package data. The project is installed offline into a fresh virtual environment that sees this
interpreter's dependencies; the entry scripts are copied out of the checkout, so every import is the installed one,
and the demo's first stages run on the bundled samples."""
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
ENTRY_SCRIPTS = ["codes/_reformat/process.py", "codes/prepare.py", "codes/train.py", "codes/infer.py",
                 "codes/interact.py", "persona_extractor/process_bart_df.py", "persona_extractor/train_bart.py",
                 "persona_extractor/annotate_esconv.py"]


def tracked_copy(destination):
    """The files git tracks, copied (an install from them cannot depend on anything left in the checkout)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    for relative in filter(None, files.stdout.split("\0")):
        source = REPO_ROOT / relative
        if source.is_file():
            (destination / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / relative)
    return destination


def fresh_venv(path):
    """A venv of this Python whose site-packages point at this interpreter's (torch, transformers, setuptools...)
    without running their .pth files, so the project's editable-install hook stays out."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    own_site = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                              capture_output=True, text=True, check=True).stdout.strip()
    Path(own_site, "_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


@pytest.mark.slow
def test_a_regular_install_runs_the_first_stages_outside_the_checkout(tmp_path):
    python = fresh_venv(tmp_path / "venv")
    source = tracked_copy(tmp_path / "source")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    str(source)], check=True, cwd=tmp_path, timeout=600)
    shutil.rmtree(source)
    scripts, work = tmp_path / "scripts", tmp_path / "work"
    work.mkdir()
    scripts.mkdir()
    for relative in ENTRY_SCRIPTS:
        shutil.copy2(REPO_ROOT / relative, scripts / Path(relative).name)
    env = {**os.environ, "PYTHONPATH": "", "OMP_NUM_THREADS": "1"}

    def run(*argv):
        result = subprocess.run([str(python), *map(str, argv)], cwd=work, env=env, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, f"{argv}: {result.stderr[-2000:]}"
        return result.stdout

    where = run("-c", "import pal, palkit, metric, persona_extractor, human_eval as h; "
                      "print('\\n'.join(m.__file__ for m in (pal, palkit, metric, persona_extractor, h)))")
    assert all(str(REPO_ROOT) not in line and "site-packages" in line for line in where.splitlines()), where
    for relative in ENTRY_SCRIPTS:
        assert "usage:" in run(scripts / Path(relative).name, "--help")
    assert "strat" in run("-c", "from pal.config import available_configs; print(available_configs())")
    assert run("-c", "from metric.tokens import BUNDLED_NLTK_DATA as d; import os; "
                     "print(os.path.isdir(os.path.join(d, 'tokenizers', 'punkt_tab', 'english')))").strip() == "True"

    # stage 1: PersonaChat -> the extractor's CSVs
    personachat = work / "personachat"
    personachat.mkdir()
    for split in ("train", "valid", "test"):
        shutil.copy2(REPO_ROOT / "RUN/demo_data/personachat_sample_both_original.txt",
                     personachat / f"{split}_both_original.txt")
    run(scripts / "process_bart_df.py", "--data_dir", personachat, "--output_dir", work / "csv",
        "--eos_suffix", " </s>")
    assert (work / "csv" / "train.csv").stat().st_size > 0
    # reformat and featurize the ESConv sample with a tiny model
    run(scripts / "process.py", "--add_persona", "False", "--input_file",
        REPO_ROOT / "RUN/demo_data/ESConv_sample.json", "--output_dir", work / "esconv")
    run("-m", "pal.tiny", "blenderbot", work / "tiny")
    run(scripts / "prepare.py", "--config_name", "vanilla", "--inputter_name", "vanilla", "--train_input_file",
        work / "esconv" / "train.txt", "--pretrained_model_path", work / "tiny", "--output_dir", work / "prepared",
        "--pbar", "False")
    assert (work / "prepared" / "features" / "data.pkl").is_file()
