"""Every RUN/*.sh answers -h/--help without side effects (RUN/common.sh): its header comment, and for the scripts that
run one Python command, that command with every argument's value. Run on a copy of RUN/ alone, as on a fresh clone
(no .venv, no DATA, no checkpoint): nothing may be created, changed or deleted."""
import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(p.name for p in (REPO / "RUN").glob("*.sh"))
ONE_COMMAND = {  # script -> (the Python script it runs, one argument it passes)
    "annotate_persona.sh": ("persona_extractor/annotate_esconv.py", "--num_beams 10"),
    "infer_strat.sh": ("codes/infer.py", "--config_name strat"),
    "infer_no_persona.sh": ("codes/infer.py", "--config_name strat_no_persona"),
    "infer_vanilla.sh": ("codes/infer.py", "--config_name vanilla"),
    "interact_strat.sh": ("codes/interact.py", "--temperature 0.7"),
    "interact_no_persona.sh": ("codes/interact.py", "--config_name strat_no_persona"),
    "interact_vanilla.sh": ("codes/interact.py", "--config_name vanilla"),
    "prepare_strat.sh": ("codes/prepare.py", "--max_decoder_input_length 50"),
    "prepare_no_persona.sh": ("codes/prepare.py", "--config_name strat_no_persona"),
    "prepare_vanilla.sh": ("codes/prepare.py", "--config_name vanilla"),
    "prepare_persona_data.sh": ("persona_extractor/process_bart_df.py", "--data_dir DATA/personachat"),
    "train_strat.sh": ("codes/train.py", "--learning_rate 1.5e-5"),
    "train_no_persona.sh": ("codes/train.py", "--config_name strat_no_persona"),
    "train_vanilla.sh": ("codes/train.py", "--config_name vanilla"),
    "train_persona_extractor.sh": ("persona_extractor/train_bart.py", "--model_name_or_path facebook/bart-large-cnn"),
}


def snapshot(root):
    """(path, size, mtime) of everything under root, ignored files and folders included."""
    out = set()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            out.add((os.path.relpath(path, root), st.st_size, st.st_mtime_ns))
    return out


@pytest.fixture
def fresh_clone(tmp_path):
    shutil.copytree(REPO / "RUN", tmp_path / "RUN")
    (tmp_path / "demo_out").mkdir()  # an earlier demo's outputs: --help must not empty them
    (tmp_path / "demo_out" / ".pal_demo").touch()
    (tmp_path / "demo_out" / "kept.txt").write_text("x")
    return tmp_path


def run_help(root, script, flag="--help", env=None):
    env = {k: v for k, v in os.environ.items() if k not in ("PAL_VENV", "PRETRAINED_MODEL_PATH")} | (env or {})
    return subprocess.run(["bash", str(root / "RUN" / script), flag], capture_output=True, text=True, env=env,
                          cwd=root, timeout=60)


def first_header_line(script):
    lines = (REPO / "RUN" / script).read_text().splitlines()
    return next(line for line in lines[1:] if line.startswith("#")).lstrip("# ").strip()


def test_every_run_script_prints_its_help_and_changes_nothing(fresh_clone):
    before = snapshot(fresh_clone)
    for script in SCRIPTS:
        result = run_help(fresh_clone, script)
        assert result.returncode == 0, (script, result.stderr)
        assert first_header_line(script) in result.stdout, script
        if script in ONE_COMMAND:
            program, argument = ONE_COMMAND[script]
            assert f"python {program}" in result.stdout, (script, result.stdout)
            assert argument in result.stdout.replace(" \\\n      ", " "), (script, result.stdout)
            assert f"python {program} --help" in result.stdout, script
            assert "--help \\" not in result.stdout  # the flag itself is not part of the command shown
    assert snapshot(fresh_clone) == before
    assert not (fresh_clone / ".venv").exists()


def test_help_shows_the_values_from_the_environment(fresh_clone):
    result = run_help(fresh_clone, "infer_strat.sh", "-h", {"INFER_FILE": "my/test.txt",
                                                            "PRETRAINED_MODEL_PATH": "/models/tiny"})
    assert result.returncode == 0, result.stderr
    shown = result.stdout.replace(" \\\n      ", " ")
    assert "--infer_input_file my/test.txt" in shown and "--pretrained_model_path /models/tiny" in shown
    assert "--load_checkpoint 'DATA/strat.strat/<newest run>/epoch-<last>.bin'" in shown  # no checkpoint yet
    nproc = run_help(fresh_clone, "train_strat.sh", env={"NPROC": "2"})
    assert "RUN/python -m torch.distributed.run --standalone --nproc_per_node 2 codes/train.py" in nproc.stdout.replace(" \\\n      ", " ")
    assert "  RUN/python codes/train.py" in run_help(fresh_clone, "train_strat.sh", env={"NPROC": "1"}).stdout


@pytest.mark.parametrize("script", ["train_strat.sh", "train_no_persona.sh", "train_vanilla.sh",
                                    "train_persona_extractor.sh", "annotate_persona.sh"])
@pytest.mark.parametrize("nproc", ["two", "0", "-1", "1.5", ""])
def test_a_bad_nproc_is_one_line_and_exit_2(fresh_clone, script, nproc):
    result = run_help(fresh_clone, script, env={"NPROC": nproc})
    if nproc == "":  # set but empty: one process, as unset
        assert result.returncode == 0 and "  RUN/python " in result.stdout
        return
    assert result.returncode == 2 and result.stderr == f"error: NPROC={nproc}: expected a positive integer " \
        "(the number of processes, e.g. NPROC=2; unset: one)\n"


def test_demo_refuses_arguments(fresh_clone):
    result = subprocess.run(["bash", str(fresh_clone / "RUN" / "demo.sh"), "--fast"], capture_output=True,
                            text=True, cwd=fresh_clone, timeout=60)
    assert result.returncode == 2 and result.stderr.startswith("error: RUN/demo.sh takes no arguments")
    assert (fresh_clone / "demo_out" / "kept.txt").exists() and not (fresh_clone / ".venv").exists()


def thread_default(env_threads):
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if env_threads is not None:
        env["OMP_NUM_THREADS"] = env_threads
    return subprocess.run(["bash", "-c", f'source {REPO / "RUN" / "common.sh"} --help-hook; default_cpu_threads; '
                           'echo "threads=$OMP_NUM_THREADS"'], capture_output=True, text=True, env=env, timeout=60)


def test_cpu_thread_default_applies_only_when_unset_and_says_so():
    unset = thread_default(None)
    assert unset.stdout.strip() == "threads=1" and "OMP_NUM_THREADS=1" in unset.stderr
    chosen = thread_default("2")
    assert chosen.stdout.strip() == "threads=2" and chosen.stderr == ""


def test_paths_stay_relative_to_the_callers_directory(fresh_clone):
    """From RUN/ itself: the script, the launcher and the default data are found through ../, a user's path is
    passed as given (relative to where the user is)."""
    result = subprocess.run(["bash", "infer_strat.sh", "../demo_out/strat.strat/demo_run", "--help"],
                            cwd=fresh_clone / "RUN", capture_output=True, text=True, timeout=60,
                            env={k: v for k, v in os.environ.items() if k not in ("PAL_VENV", "INFER_FILE")})
    shown = result.stdout.replace(" \\\n      ", " ")
    assert result.returncode == 0, result.stderr
    assert "  ../RUN/python ../codes/infer.py" in shown and "../RUN/python ../codes/infer.py --help" in shown
    assert "--load_checkpoint ../demo_out/strat.strat/demo_run" in shown
    assert "--infer_input_file" not in shown  # no default: infer.py takes the test.txt beside the run's data


# Library modules with a `main` run with `RUN/python -m ...` (a plain python says "No module named ..." itself).
RUN_AS_MODULES = {"persona_extractor/tiny_bart.py"}
ENTRY_SCRIPTS = sorted(str(p.relative_to(REPO)) for p in [*REPO.glob("codes/*.py"), *REPO.glob("persona_extractor/*.py"),
                                                          REPO / "codes" / "_reformat" / "process.py"]
                       if "if __name__ == \"__main__\"" in p.read_text() and p.name != "__init__.py"
                       and str(p.relative_to(REPO)) not in RUN_AS_MODULES)


@pytest.mark.parametrize("script", ENTRY_SCRIPTS)
def test_a_plain_python_outside_the_environment_says_how_to_run_the_script(script):
    base = Path(sys.base_prefix) / "bin" / "python3"
    probe = subprocess.run([str(base), "-c", "import torch"], capture_output=True, text=True,
                           env={"PATH": "/usr/bin:/bin"}, cwd="/")
    if probe.returncode == 0:
        pytest.skip(f"{base} can import torch: no interpreter outside the project's environment here")
    for cwd, shown in ((REPO, script), (REPO / "RUN", f"../{script}")):
        result = subprocess.run([str(base), shown, "--help"], cwd=cwd, capture_output=True, text=True, timeout=60,
                                env={"PATH": "/usr/bin:/bin"})
        assert result.returncode == 1 and result.stdout == "", result.stderr
        said = "error: this is not the project's environment (no torch or pal here): run it as  "
        assert result.stderr.startswith(said) and result.stderr.endswith(f" {shown} --help\n"), result.stderr
        launcher = result.stderr[len(said):].split()[0]  # a path from cwd, runnable as typed
        assert "/" in launcher and (cwd / launcher).resolve() == REPO / "RUN" / "python", result.stderr
    if script != "codes/train.py":
        return
    at_root = subprocess.run([str(base), script, "--help"], cwd=REPO, capture_output=True, text=True, timeout=60,
                             env={"PATH": "/usr/bin:/bin"})
    assert at_root.stderr.endswith("run it as  RUN/python codes/train.py --help\n")


def test_the_environment_check_lives_in_one_place():
    """palkit.entry holds it; an entry script imports it first (outside codes/, in a try block: palkit is out of
    reach there), and no library module carries a check of its own."""
    py = [p for p in [*REPO.glob("codes/**/*.py"), *REPO.glob("persona_extractor/*.py")]]
    checking = sorted(str(p.relative_to(REPO)) for p in py if "find_spec(\"torch\")" in p.read_text())
    assert checking == ["codes/palkit/entry.py"]
    for script in ENTRY_SCRIPTS:
        imported = sorted((node.lineno, alias.name if isinstance(node, ast.Import) else node.module)
                          for node in ast.walk(ast.parse((REPO / script).read_text()))
                          if isinstance(node, ast.Import) or (isinstance(node, ast.ImportFrom) and node.level == 0)
                          for alias in node.names)
        first = next(name for _, name in imported if name.split(".")[0] not in sys.stdlib_module_names)
        assert first == "palkit.entry", (script, first)
