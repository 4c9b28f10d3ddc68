"""Collect the metric files of result folders into one Markdown table beside the paper's Table 3."""
import json
import math
import os

from pal.cli import UserError

from .paper import COLUMNS, DECIMALS, PAPER, PAPER_LABELS, PAPER_ROWS, SOURCES, STANDARD_DISTINCT

MISSING = "–"


def _load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})")


def read_result_folder(folder, distinct="authors"):
    """{column: value or None} for one result folder; metric.json must exist, the other files are optional."""
    if not os.path.isfile(os.path.join(folder, "metric.json")):
        raise UserError(f"{folder}: no metric.json (run codes/infer.py or `python codes/evaluate.py {folder}` first)")
    sources = dict(SOURCES, **(STANDARD_DISTINCT if distinct == "standard" else {}))
    cache = {}
    values = {}
    for column in COLUMNS:
        values[column] = None
        for filename, key, scale in sources[column]:
            path = os.path.join(folder, filename)
            if path not in cache:
                cache[path] = _load_json(path) if os.path.isfile(path) else {}
            if isinstance(cache[path], dict) and key in cache[path] and cache[path][key] is not None:
                values[column] = float(cache[path][key]) * scale
                break
    return values


def _format(value, column, signed=False):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return f"{value:+.{DECIMALS[column]}f}" if signed else f"{value:.{DECIMALS[column]}f}"


def _row(label, cells):
    return "| " + " | ".join([label] + cells) + " |"


def markdown_table(results, compare_to):
    """results: list of (name, {column: value}); compare_to: one paper row key per result."""
    lines = [_row("Model", COLUMNS), "|" + "---|" * (len(COLUMNS) + 1)]
    for _, label, values in PAPER_ROWS:
        lines.append(_row(label, [_format(v, c) for v, c in zip(values, COLUMNS)]))
    for (name, values), paper_key in zip(results, compare_to):
        lines.append(_row(name, [_format(values[c], c) for c in COLUMNS]))
        paper = PAPER[paper_key]
        diffs = [None if values[c] is None else values[c] - paper[c] for c in COLUMNS]
        lines.append(_row(f"Δ {name} − {PAPER_LABELS[paper_key]}", [_format(d, c, signed=True)
                                                                     for d, c in zip(diffs, COLUMNS)]))
    return "\n".join(lines) + "\n"
