"""palkit.cli: the plumbing every script relies on for one-line errors and never-half-written outputs."""
import os
import stat

import pytest
import torch

from palkit.cli import UserError, resolve_device
from palkit.atomic import atomic_write, write_json


def test_resolve_device_accepts_auto_and_cpu_and_rejects_bad_names():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UserError, match="not a device"):
        resolve_device("bogus")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            resolve_device("cuda")


def test_atomic_write_leaves_nothing_on_error_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "out.json"
    write_json(path, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_write(path) as f:
            f.write("half")
            raise RuntimeError("killed")
    assert path.read_text() == '{\n  "a": 1\n}\n'
    assert os.listdir(tmp_path) == ["out.json"]  # no temporary file left behind


def test_atomic_write_gives_the_usual_permissions(tmp_path):
    path = tmp_path / "x.txt"
    with atomic_write(path) as f:
        f.write("x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
