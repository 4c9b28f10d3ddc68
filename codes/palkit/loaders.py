"""Loaders of user-supplied files: a read or parse failure is one palkit.cli.UserError naming the file, what is
wrong and what to do (palkit.cli.run_main prints it as one line and exits 2). None of them falls back to anything
else."""
import csv
import io
import json
import os
import pickle
import struct

from .cli import UserError
from .paths import require_file, then_hint

def read_text(path, hint="", encoding="utf-8-sig"):
    """The text of a UTF-8 file (a leading BOM is dropped)."""
    require_file(path, hint)
    try:
        with open(path, encoding=encoding) as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start}); re-save the file as UTF-8")
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e})")


def _type_name(kind):
    names = {list: "a JSON list", dict: "a JSON object", str: "a string", int: "an integer", float: "a number"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def expect_type(value, kind, where, hint=""):
    """`value` if it is of `kind` (a type or tuple; bool never passes as a number); a UserError otherwise."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    is_bool_as_number = isinstance(value, bool) and bool not in kinds
    if not isinstance(value, kinds) or is_bool_as_number:
        got = "null" if value is None else type(value).__name__
        raise UserError(f"{where}: expected {_type_name(kind)}, got {got}{then_hint(hint)}")
    return value


def load_json(path, expect=None, hint="", nonempty=False):
    """The parsed JSON of `path`; `expect` (list, dict, ...) checks the top-level type, `nonempty` its length."""
    text = read_text(path, hint)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}"
                        f"{then_hint(hint)}")
    if expect is not None:
        expect_type(data, expect, path, hint)
    if nonempty and not data:
        raise UserError(f"{path}: is empty{then_hint(hint)}")
    return data


def load_jsonl(path, hint="", nonempty=False):
    """One JSON value per non-blank line (split on '\\n' only: JSON strings may hold other line separators)."""
    values = []
    for line_number, line in enumerate(read_text(path, hint).split("\n"), start=1):
        if line.strip():
            try:
                values.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{line_number}: invalid JSON (column {e.colno}): {e.msg}")
    if nonempty and not values:
        raise UserError(f"{path}: has no JSON lines{then_hint(hint)}")
    return values


def read_csv(path, hint="", nonempty=False):
    """(column names, rows as dicts) of a CSV file with a header line."""
    try:
        reader = csv.DictReader(io.StringIO(read_text(path, hint), newline=""))
        rows = list(reader)
    except csv.Error as e:
        raise UserError(f"{path}: not a readable CSV file ({e}){then_hint(hint)}")
    if nonempty and not rows:
        raise UserError(f"{path}: has no data rows{then_hint(hint)}")
    return reader.fieldnames or [], rows


def load_pickle(path, hint=""):
    """The unpickled object of a file this project wrote (e.g. prepare.py's data.pkl)."""
    require_file(path, hint)
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    # A truncated or foreign pickle fails in many ways, depending on where the bytes stop.
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, KeyError, TypeError,
            ValueError, MemoryError) as e:
        raise UserError(f"{path}: truncated or not a pickle this project wrote ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else 'no detail'}){then_hint(hint)}")


def load_torch_state(path, hint="", weights_only=True):
    """torch.load(path) on the CPU; a text file or a truncated archive is a UserError. weights_only=False only for
    files this project wrote itself (the resumable training state holds RNG states and settings)."""
    import torch  # lazy: heavy, and only the readers of torch files need it
    require_file(path, hint)
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    # torch.load raises whatever its unpickler meets in a corrupt file (KeyError, IndexError, RuntimeError, ...).
    except Exception as e:  # noqa: BLE001
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{path}: not a readable torch file (truncated, or not written by torch.save: {detail})"
                        f"{then_hint(hint)}")


def check_safetensors(path, hint=""):
    """The header of a .safetensors file parses and the file holds every byte it declares (a cheap check that
    catches truncated downloads without reading the tensors)."""
    require_file(path, hint)
    size = os.path.getsize(path)
    problem = None
    with open(path, "rb") as f:
        head = f.read(8)
        header_len = struct.unpack("<Q", head)[0] if len(head) == 8 else None
        if header_len is None or header_len > size - 8:
            problem = "shorter than its header"
        else:
            try:
                header = json.loads(f.read(header_len))
                ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
            except (ValueError, TypeError, KeyError, IndexError):
                header, ends, problem = None, [], "header is not valid safetensors JSON"
            if problem is None and 8 + header_len + max(ends, default=0) > size:
                problem = f"truncated ({size} bytes, the header declares {8 + header_len + max(ends)})"
    if problem:
        raise UserError(f"{path}: not a complete safetensors file ({problem}){then_hint(hint)}")
    return path


def load_safetensors(path, hint=""):
    """A name -> tensor dict from a .safetensors file."""
    check_safetensors(path, hint)
    from safetensors.torch import load_file  # lazy: imports torch
    try:
        return load_file(path, device="cpu")
    except Exception as e:  # noqa: BLE001 -- the Rust reader raises its own error type
        raise UserError(f"{path}: cannot read safetensors ({str(e).splitlines()[0]}){then_hint(hint)}")
