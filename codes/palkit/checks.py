"""One mechanism for bad input, used by every entry point.

1. argparse `type=` helpers check each value when the command line is parsed, before any work:
   numeric ranges (`int_range`, `float_range`, `probability`, ...), input paths that must exist as a file or a
   folder (`existing_file`, `existing_dir`, `existing_path`) and output paths that must not exist as the other
   kind (`output_dir`, `output_file`). With palkit.cli.ArgumentParser a bad value is one line `error: argument
   --top_p: must be a number in [0, 1], got 1.5; ...` and exit 2.
   The same checks for paths an entry point derives itself (a default result folder): `require_file`,
   `require_dir`, `require_output_dir`, `require_output_file`, raising palkit.cli.UserError.
2. Loaders of user-supplied files (`read_text`, `load_json`, `load_jsonl`, `read_csv`, `load_pickle`,
   `load_torch_state`, `load_safetensors`) and checks of model folders (`check_tokenizer_dir`,
   `check_model_dir`) turn a read or parse failure into a UserError naming the file, what is wrong and what to do
   (palkit.cli.run_main prints it as one line and exits 2). None of them falls back to anything else.
"""
import argparse
import json
import math
import os
import pickle
import struct
import zipfile

from .cli import UserError
from .hub import is_local  # noqa: F401 (a local folder, as opposed to a hub name: palkit.hub)

# ---- numeric ranges ------------------------------------------------------------------------------------------


def _range_text(lo, hi, lo_open=False, hi_open=False):
    if lo is None and hi is None:
        return "(finite)"
    if hi is None:
        return f"{'>' if lo_open else '>='} {lo}"
    if lo is None:
        return f"{'<' if hi_open else '<='} {hi}"
    return f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"


def int_range(lo=None, hi=None):
    """argparse type: an integer with lo <= value <= hi (None: unbounded on that side)."""
    wanted = _range_text(lo, hi)

    def parse(text):
        try:
            value = int(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"must be an integer {wanted}, got {text!r}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be an integer {wanted}, got {value}")
        return value

    parse.__name__ = f"integer {wanted}"
    return parse


def float_range(lo=None, hi=None, lo_open=False, hi_open=False):
    """argparse type: a finite number within [lo, hi] (lo_open/hi_open exclude that end)."""
    wanted = _range_text(lo, hi, lo_open, hi_open)

    def inside(value):
        above = lo is None or (value > lo if lo_open else value >= lo)
        below = hi is None or (value < hi if hi_open else value <= hi)
        return above and below

    def parse(text):
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"must be a number {wanted}, got {text!r}")
        if not math.isfinite(value) or not inside(value):
            raise argparse.ArgumentTypeError(f"must be a number {wanted}, got {text}")
        return value

    parse.__name__ = f"number {wanted}"
    return parse


positive_int = int_range(1)
non_negative_int = int_range(0)
positive_float = float_range(0, lo_open=True)
non_negative_float = float_range(0)
probability = float_range(0, 1)


# ---- paths ---------------------------------------------------------------------------------------------------
def _then(hint):
    """The '; what to do' tail of a message."""
    return f"; {hint}" if hint else ""


def _where(path):
    return "" if os.path.isabs(path) else f" (looked in {os.path.abspath(path)})"


def require_file(path, hint=""):
    """`path` is an existing file; a UserError naming it otherwise (`hint`: what to do)."""
    if os.path.isdir(path):
        raise UserError(f"{path}: is a folder, expected a file{_then(hint)}")
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such file{_where(path)}{_then(hint)}")
    return path


def require_dir(path, hint=""):
    """`path` is an existing folder; a UserError naming it otherwise."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"{path}: is a file, expected a folder{_then(hint)}")
    if not os.path.isdir(path):
        raise UserError(f"{path}: no such folder{_where(path)}{_then(hint)}")
    return path


def require_path(path, hint=""):
    """`path` exists (file or folder)."""
    if not os.path.exists(path):
        raise UserError(f"{path}: no such file or folder{_where(path)}{_then(hint)}")
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


def boolean_string(s):
    """argparse type for the authors' `--flag True|False` style arguments."""
    if str(s).lower() not in {"true", "false"}:
        raise argparse.ArgumentTypeError(f"expected True or False, got {s!r}")
    return str(s).lower() == "true"


def argument_type(check, hint=None):
    """argparse type from a path check raising UserError; `hint` (what to do) is passed on to input checks.
    argparse prefixes the option's name: `error: argument --data_dir: x: no such folder; <hint>`."""
    def parse(text):
        try:
            return check(text) if hint is None else check(text, hint)
        except UserError as e:
            raise argparse.ArgumentTypeError(str(e))
    parse.__name__ = check.__name__.replace("require_", "")
    return parse


existing_file = argument_type(require_file)
existing_dir = argument_type(require_dir)
existing_path = argument_type(require_path)
output_dir = argument_type(require_output_dir)
output_file = argument_type(require_output_file)


# ---- loaders ---------------------------------------------------------------------------------------------------
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
        raise UserError(f"{where}: expected {_type_name(kind)}, got {got}{_then(hint)}")
    return value


def load_json(path, expect=None, hint="", nonempty=False):
    """The parsed JSON of `path`; `expect` (list, dict, ...) checks the top-level type, `nonempty` its length."""
    text = read_text(path, hint)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}"
                        f"{_then(hint)}")
    if expect is not None:
        expect_type(data, expect, path, hint)
    if nonempty and not data:
        raise UserError(f"{path}: is empty{_then(hint)}")
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
        raise UserError(f"{path}: has no JSON lines{_then(hint)}")
    return values


def read_csv(path, hint="", nonempty=False):
    """(column names, rows as dicts) of a CSV file with a header line."""
    import csv
    import io
    try:
        reader = csv.DictReader(io.StringIO(read_text(path, hint), newline=""))
        rows = list(reader)
    except csv.Error as e:
        raise UserError(f"{path}: not a readable CSV file ({e}){_then(hint)}")
    if nonempty and not rows:
        raise UserError(f"{path}: has no data rows{_then(hint)}")
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
                        f"{str(e).splitlines()[0] if str(e) else 'no detail'}){_then(hint)}")


def load_torch_state(path, hint="", weights_only=True):
    """torch.load(path) on the CPU; a text file or a truncated archive is a UserError. weights_only=False only for
    files this project wrote itself (the resumable training state holds RNG states and settings)."""
    import torch
    require_file(path, hint)
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    # torch.load raises whatever its unpickler meets in a corrupt file (KeyError, IndexError, RuntimeError, ...).
    except Exception as e:  # noqa: BLE001
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{path}: not a readable torch file (truncated, or not written by torch.save: {detail})"
                        f"{_then(hint)}")


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
        raise UserError(f"{path}: not a complete safetensors file ({problem}){_then(hint)}")
    return path


def load_safetensors(path, hint=""):
    """A name -> tensor dict from a .safetensors file."""
    check_safetensors(path, hint)
    from safetensors.torch import load_file
    try:
        return load_file(path, device="cpu")
    except Exception as e:  # noqa: BLE001 -- the Rust reader raises its own error type
        raise UserError(f"{path}: cannot read safetensors ({str(e).splitlines()[0]}){_then(hint)}")


# ---- model folders ---------------------------------------------------------------------------------------------
# Tokenizer files that make a local folder loadable, as alternatives (any one set is enough).
# BlenderBot-small's tokenizer reads only vocab.json + merges.txt; BART's reads either set (without any, transformers 5
# silently builds a 5-token tokenizer); SimCSE's BERT tokenizer reads vocab.txt or tokenizer.json.
VOCAB_AND_MERGES = (("vocab.json", "merges.txt"),)
BPE_TOKENIZER_FILES = (("tokenizer.json",),) + VOCAB_AND_MERGES
ENCODER_TOKENIZER_FILES = BPE_TOKENIZER_FILES + (("vocab.txt",),)
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")


def check_tokenizer_dir(path, alternatives=BPE_TOKENIZER_FILES, hint=""):
    """A local tokenizer folder has one complete set of tokenizer files, and its JSON files parse.

    Hub names pass unchecked (transformers resolves them). Without this check transformers 5 raises a TypeError on
    a folder without vocab.json, or silently builds another tokenizer from what is there.
    """
    if not is_local(path):
        return path
    complete = [files for files in alternatives if all(os.path.isfile(os.path.join(path, f)) for f in files)]
    if not complete:
        sets = " or ".join(" + ".join(files) for files in alternatives)
        raise UserError(f"{path}: incomplete tokenizer folder (needs {sets}){_then(hint)}")
    # AutoTokenizer reads config.json too (to pick the tokenizer class).
    for name in ("tokenizer.json", "vocab.json", "tokenizer_config.json", "special_tokens_map.json", "config.json"):
        if os.path.isfile(os.path.join(path, name)):
            load_json(os.path.join(path, name), expect=dict, hint=hint)
    return path


def check_model_dir(path, hint=""):
    """A local save_pretrained folder: config.json (a JSON object) and a weights file that is complete."""
    if not is_local(path):
        return path
    load_json(os.path.join(path, "config.json"), expect=dict, hint=hint)
    present = [name for name in WEIGHT_FILES if os.path.isfile(os.path.join(path, name))]
    if not present:
        raise UserError(f"{path}: no weights file (one of {', '.join(WEIGHT_FILES)}){_then(hint)}")
    for name in present:
        check_weights_file(os.path.join(path, name), hint)
    return path


def check_weights_file(path, hint=""):
    """model.safetensors: complete; pytorch_model.bin: a zip archive whose directory reads; an index: every shard
    it names is there and complete."""
    if path.endswith(".safetensors"):
        return check_safetensors(path, hint)
    if path.endswith(".index.json"):
        index = load_json(path, expect=dict, hint=hint)
        shards = sorted(set(expect_type(index.get("weight_map"), dict, f"{path}: weight_map", hint).values()))
        for shard in shards:
            check_weights_file(require_file(os.path.join(os.path.dirname(path), shard), hint), hint)
        return path
    with open(path, "rb") as f:
        if f.read(1) == b"\x80":
            return path  # torch's legacy (pre-1.6) format, a bare pickle: only loading it can tell
    try:
        with zipfile.ZipFile(path):
            pass  # opening reads the central directory at the end: a truncated file fails here
    except (zipfile.BadZipFile, OSError) as e:
        raise UserError(f"{path}: truncated or not a torch.save archive ({e}){_then(hint)}")
    return path


def state_dict_mismatches(model, state, show=6):
    """'' when keys and shapes match; else one line listing missing, unexpected and shape-mismatched keys."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
                    for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if items:
            more = f" and {len(items) - show} more" if len(items) > show else ""
            parts.append(f"{label} {len(items)}: {', '.join(items[:show])}{more}")
    return "; ".join(parts)
