"""Paths a command needs: input files and folders that must exist, output paths nothing blocks.

Each check raises palkit.cli.UserError naming the path, where it was looked for and what to do (`hint`);
palkit.argtypes turns them into argparse types, so a bad path on a command line is one line before any work.
"""
import os

from .cli import UserError


def then_hint(hint):
    """The '; what to do' tail of a message."""
    return f"; {hint}" if hint else ""


def looked_in(path):
    """' (looked in /abs/path)' for a relative path."""
    return "" if os.path.isabs(path) else f" (looked in {os.path.abspath(path)})"

def require_file(path, hint=""):
    """`path` is an existing file; a UserError naming it otherwise (`hint`: what to do)."""
    if os.path.isdir(path):
        raise UserError(f"{path}: is a folder, expected a file{then_hint(hint)}")
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such file{looked_in(path)}{then_hint(hint)}")
    return path


def require_dir(path, hint=""):
    """`path` is an existing folder; a UserError naming it otherwise."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"{path}: is a file, expected a folder{then_hint(hint)}")
    if not os.path.isdir(path):
        raise UserError(f"{path}: no such folder{looked_in(path)}{then_hint(hint)}")
    return path


def require_path(path, hint=""):
    """`path` exists (file or folder)."""
    if not os.path.exists(path):
        raise UserError(f"{path}: no such file or folder{looked_in(path)}{then_hint(hint)}")
    return path


def _file_above(path):
    """The nearest existing ancestor of `path` when it is a file (so nothing can be created below it)."""
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    return parent if parent and os.path.isfile(parent) else None


def require_output_dir(path):
    """A folder that can be written into: absent (it will be made) or a folder, with no file in its way."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"{path}: exists and is a file, not a folder; remove it or choose another output folder")
    blocker = _file_above(path)
    if blocker:
        raise UserError(f"{path}: cannot be made because {blocker} is a file; choose another output folder")
    return path


def require_output_file(path):
    """A file path that can be written: absent or a file, with no file where a parent folder goes."""
    if os.path.isdir(path):
        raise UserError(f"{path}: exists and is a folder, not a file; remove it or give a file name")
    blocker = _file_above(path)
    if blocker:
        raise UserError(f"{path}: cannot be written because {blocker} is a file; choose another output path")
    return path

