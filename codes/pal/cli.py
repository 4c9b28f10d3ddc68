"""Command-line plumbing shared by every script: one-line errors, boolean flags, atomic writes."""
import argparse
import json
import os
import sys
import tempfile
from contextlib import contextmanager


def launcher(script=None):
    """How to run a script of this project from the current directory without activating anything: RUN/python
    (it sets up .venv and the CPU-thread default), as a path relative to the working directory, then `script`
    relative to it too."""
    path = os.path.relpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "RUN", "python"))
    path = path if os.sep in path else os.path.join(os.curdir, path)  # a path, not a command name
    return path if script is None else f"{path} {os.path.relpath(script)}"


class UserError(Exception):
    """A problem the user can fix (bad input, missing file). Scripts print it as one line and exit 2."""


def run_main(main, argv=None):
    """Run `main(argv)`; turn a UserError into `error: <message>` on stderr and exit status 2 (no traceback)."""
    try:
        result = main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as e:  # a trainer's says where the run can resume (pal.engine.Engine.fit)
        print("interrupted" + (f" {e}" if str(e) else ""), file=sys.stderr)
        sys.exit(130)
    sys.exit(0 if result is None else result)


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are UserErrors: under run_main a bad argument is one line `error: argument --x: ...`
    and exit 2 (plain argparse prints its usage block first), and in-process callers of main() get a UserError.

    The value checks themselves are argparse types in pal.checks (ranges, paths).
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)  # --only_gen must not silently mean --only_generate
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UserError(f"{message}; see {self.prog} --help")


def resolve_device(name):
    """--device: "auto" (CUDA when available), "cpu", "cuda", "cuda:N"; a bad or unavailable one is a UserError."""
    import torch
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r}: not a device (use auto, cpu, cuda or cuda:N)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine")
    return device


def boolean_string(s):
    """argparse type for the authors' `--flag True|False` style arguments."""
    if str(s).lower() not in {"true", "false"}:
        raise argparse.ArgumentTypeError(f"expected True or False, got {s!r}")
    return str(s).lower() == "true"


@contextmanager
def atomic_write(path, mode="w", encoding="utf-8"):
    """Write to a temporary file beside `path` and rename it into place only if the block succeeds."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix="-" + os.path.basename(path))
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": encoding})) as f:
            yield f
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path, obj, indent=2):
    """Atomically write `obj` as JSON (UTF-8, non-ASCII kept)."""
    with atomic_write(path) as f:
        json.dump(obj, f, ensure_ascii=False, indent=indent)
        f.write("\n")
