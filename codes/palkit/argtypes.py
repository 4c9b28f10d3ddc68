"""argparse `type=` helpers: each value is checked when the command line is parsed, before any work.

Numeric ranges (`int_range`, `float_range`, `probability`, ...), the authors' `True|False` flags (`boolean_string`),
input paths that must exist as a file or a folder (`existing_file`, `existing_dir`, `existing_path`) and output paths
that must not exist as the other kind (`output_dir`, `output_file`). With palkit.cli.ArgumentParser a bad value is
one line `error: argument --top_p: must be a number in [0, 1], got 1.5; ...` and exit 2.
"""
import argparse
import math

from .cli import UserError
from .paths import require_dir, require_file, require_output_dir, require_output_file, require_path

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
