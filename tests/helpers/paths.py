"""The checkout, the reference material beside it (../shared), and the entry scripts loaded by path."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED = REPO_ROOT.parent / "shared"


def load_script(relative_path):
    """An entry script such as "codes/train.py" as a module, to call its functions in-process.

    The scripts are not part of the installed packages (users run them by path), so they are loaded from their
    file, once per test session, under their file name (as `python codes/train.py` would see them)."""
    path = REPO_ROOT / relative_path
    name = path.stem
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__file__", None) == str(path):
        return loaded
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up by name
    spec.loader.exec_module(module)
    return module


def fake_venv(venv, root):
    """A .venv for RUN/setup_env.sh that is this test's interpreter (up to date: nothing to install). It refuses
    pip, so that a setup_env.sh that wants to install fails this test instead of changing the test's environment."""
    if sys.prefix == sys.base_prefix:
        pytest.skip("needs the tests to run in a virtual environment")
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text(
        '#!/bin/sh\ncase "$*" in *"-m pip"*) echo "fake venv: no pip" >&2; exit 1 ;; esac\n'
        f'exec {sys.executable} "$@"\n')
    (venv / "bin" / "python").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "PAL_LOCK"}
    stamp = subprocess.run(["bash", str(root / "RUN" / "setup_env.sh")], env=dict(env, PAL_PRINT_STAMP="1"),
                           capture_output=True, text=True, check=True).stdout
    (venv / ".requirements.sha256").write_text(stamp)


def shared_path(rel):
    """Path of `rel` inside ../shared, or skip the calling test naming the missing path."""
    path = SHARED / rel
    if not path.exists():
        pytest.skip(f"needs {path} (reference material from ../shared is absent)")
    return path
