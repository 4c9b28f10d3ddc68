"""Shared test fixtures.

Tests that need the reference material in ../shared call `shared_path(...)`, which skips the test with a
reason naming the missing path, so the suite passes on a fresh clone without ../shared.
Everything else builds its own tiny data and random-weight models.
The packages (pal, metric, persona_extractor) come from the project's editable install (RUN/setup_env.sh); the
entry scripts of codes/ are loaded by path with `load_script`.
"""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
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


@pytest.fixture(scope="session")
def blender_tokenizer_dir(tmp_path_factory):
    """The real BlenderBot-small tokenizer files when ../shared has them, else a tiny self-made one."""
    real = SHARED / "models" / "Blenderbot_small-90M"
    if real.is_dir():
        return str(real)
    from pal.tiny import make_tiny_blenderbot_tokenizer
    return make_tiny_blenderbot_tokenizer(str(tmp_path_factory.mktemp("tiny_tokenizer")))


@pytest.fixture(scope="session")
def real_blender_tokenizer_dir():
    """The real BlenderBot-small tokenizer files; skips when ../shared is absent."""
    return str(shared_path("models/Blenderbot_small-90M"))


@pytest.fixture(scope="session")
def tiny_blender_dir(tmp_path_factory, blender_tokenizer_dir):
    """A randomly initialised tiny BlenderBot-small saved like the real pretrained folder."""
    from pal.tiny import make_tiny_blenderbot_dir
    out = str(tmp_path_factory.mktemp("tiny_blenderbot"))
    return make_tiny_blenderbot_dir(out, tokenizer_dir=blender_tokenizer_dir)


@pytest.fixture
def punkt():
    """Fail, naming the fix, when NLTK's punkt_tab cannot be found: the metrics ship its English tables, so a
    missing one is a broken checkout (or an NLTK_DATA folder with a partial punkt_tab), never a reason to skip."""
    from metric.tokens import require_punkt
    from palkit.cli import UserError
    try:
        require_punkt()
    except UserError as e:
        pytest.fail(str(e))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run faster on one thread, and far faster when other test processes share the CPU.

    Module-scoped so that a module's own module-scoped fixtures run on the same thread count as its tests (float
    sums differ between thread counts, and some tests compare runs bit for bit)."""
    import torch
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
