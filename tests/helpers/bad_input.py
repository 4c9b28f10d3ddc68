"""Running an entry point on faulty input and asserting its rejection: exit status 2, one line `error: ...`, no
traceback, the file or option at fault named, and no file created or changed (snapshots before and after)."""
import contextlib
import hashlib
import io
import os
import shutil
import subprocess
import sys

from pal.checkpoint import save_checkpoint
from pal.model import build_model
from helpers.paths import REPO_ROOT, load_script
from helpers.pal_models import randomize, write_dialogues

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def run_script(script, *args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, str(REPO_ROOT / script), *map(str, args)], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def snapshot(*roots):
    """{path: content hash, or 'dir'} of everything under the roots."""
    state = {}
    for root in roots:
        for folder, dirs, files in os.walk(root):
            state[folder] = "dir"
            for name in files:
                path = os.path.join(folder, name)
                with open(path, "rb") as f:
                    state[path] = hashlib.sha1(f.read()).hexdigest()
    return state


def assert_rejected(result, before, roots, needles):
    err = result.stderr
    assert result.returncode == 2, (result.returncode, err[-2000:])
    assert "Traceback" not in err, err[-2000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), err[-2000:]
    assert all(line.startswith("error: ") for line in lines if "error" in line.lower()), err[-2000:]
    for needle in needles:
        assert needle in lines[-1], (needle, lines[-1])
    assert snapshot(*roots) == before, "a rejected run changed or created files"


def copy_without(src, dst, *names):
    shutil.copytree(src, dst)
    for name in names:
        os.remove(os.path.join(dst, name))
    return str(dst)


def truncate(path, keep=0.5):
    with open(path, "r+b") as f:
        f.truncate(int(os.path.getsize(path) * keep))
    return str(path)


def write(path, text):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return str(path)


def run_in_process(script, argv, cwd):
    """What `python SCRIPT ARGV` does after its imports: run_main(main) (its exit status and stderr)."""
    return run_main_in_process(load_script(script).main, argv, cwd)


def run_main_in_process(main, argv, cwd):
    """run_main(main, argv) in `cwd`: a CompletedProcess with its exit status and stderr."""
    from palkit.cli import run_main
    previous, captured = os.getcwd(), io.StringIO()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(captured), contextlib.redirect_stdout(io.StringIO()):
            run_main(main, [str(a) for a in argv])
        code = 0
    except SystemExit as e:
        code = e.code
    finally:
        os.chdir(previous)
    return subprocess.CompletedProcess(argv, code, "", captured.getvalue())


def check_case(tmp_path, base_root, script, build, in_process=True):
    """Build the faulty arguments, snapshot, run, and assert the rejection."""
    argv, needles = build(tmp_path)
    roots = [str(tmp_path), str(base_root)]
    before = snapshot(*roots)
    result = run_in_process(script, argv, tmp_path) if in_process else run_script(script, *argv, cwd=tmp_path)
    assert_rejected(result, before, roots, needles)


def copy_with_truncated(src, dst, name):
    shutil.copytree(src, dst)
    truncate(os.path.join(dst, name))
    return str(dst)


def make_dir(path):
    os.makedirs(path)
    return path


GEN_RECORDS = [
    {"sample_id": 0, "post": "", "response": "I am sorry to hear that.", "generation": "I am sad. I am sad.",
     "persona": "i lost my job.", "cls_strat_id": 2, "pred_strat_id": 2, "token_num": 4, "loss": 1.0, "ppl": 2.7},
    {"sample_id": 1, "post": "", "response": "Have you told a friend?", "generation": "i am happy",
     "persona": "i lost my job.", "cls_strat_id": 0, "pred_strat_id": 5, "token_num": 4, "loss": 2.0, "ppl": 7.4},
]


def flat(args, drop=()):
    return [x for k, v in args.items() if k not in drop for x in ((k,) if v is None else (k, v))]


def run_ok(script, *args, stdin=""):
    result = subprocess.run([sys.executable, str(REPO_ROOT / script), *map(str, args)], input=stdin, env=ENV,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def make_bad_input_base(root, tiny_blender_dir):
    """A run folder with a strat epoch-0.bin, a data file and the tiny pretrained folder."""
    _, model = build_model("strat", pretrained_model_path=tiny_blender_dir)
    save_checkpoint(randomize(model), str(root / "epoch-0.bin"))
    write_dialogues(root / "test.txt")
    return {"root": root, "model": tiny_blender_dir, "ckpt": str(root / "epoch-0.bin"),
            "data": str(root / "test.txt")}
