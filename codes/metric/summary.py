"""Table 3 from result folders: systems x checkpoint-selection rules, mean +- sd over training seeds and a 95%
confidence interval per cell, beside the paper's rows (Markdown and JSON).

A cell's unit is the training seed: the folders of one training run (its decoding seeds) are averaged first, then
mean, sd (n - 1 in the denominator) and the t interval mean +- t(0.975, n - 1) * sd / sqrt(n) are taken over the
training seeds. `decoding_sd` is the pooled sd between decoding seeds of one training run.
"""
import math
import os

from palkit.loaders import expect_type, load_json
from palkit.cli import UserError

from .paper import COLUMNS, DECIMALS, PAPER, PAPER_LABELS, PAPER_ROWS, SOURCES, STANDARD_DISTINCT

MISSING = "–"
# Student t 0.975 quantiles for 1..30 degrees of freedom (standard tables); beyond, the Cornish-Fisher expansion.
T_975 = [12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139,
         2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963,
         2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272]
Z_975 = 1.959963984540054


def t_quantile_975(df):
    if df <= len(T_975):
        return T_975[df - 1]
    z = Z_975
    return (z + (z ** 3 + z) / (4 * df) + (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2)
            + (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3)
            + (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / (92160 * df ** 4))


def metric_value(value, path, key):
    """A metric's number; a string or other non-number in a metric file is a UserError naming file and key."""
    expect_type(value, (int, float), f"{path}: {key!r}",
                       "the metric files are written by codes/infer.py, codes/evaluate.py and get_*.py: re-run them")
    return float(value)


def read_result_folder(folder, distinct="authors"):
    """{column: value or None} for one result folder; metric.json must exist, the other files are optional."""
    if not os.path.isfile(os.path.join(folder, "metric.json")):
        raise UserError(f"{folder}: no metric.json (run codes/infer.py or `RUN/python codes/evaluate.py {folder}` first)")
    sources = dict(SOURCES, **(STANDARD_DISTINCT if distinct == "standard" else {}))
    cache = {}
    values = {}
    for column in COLUMNS:
        values[column] = None
        for filename, key, scale in sources[column]:
            path = os.path.join(folder, filename)
            if path not in cache:
                cache[path] = load_json(path, expect=dict) if os.path.exists(path) else {}
            if key in cache[path] and cache[path][key] is not None:
                values[column] = metric_value(cache[path][key], path, key) * scale
                break
    return values


def _mean(xs):
    return sum(xs) / len(xs)


def _var(xs):
    m = _mean(xs)
    return sum((x - m) ** 2 for x in xs) / (len(xs) - 1)


def cell(per_run):
    """Statistics of one cell from {run: [values of its folders]} (None values dropped); None when empty."""
    runs = [[v for v in vs if v is not None] for vs in per_run.values()]
    runs = [vs for vs in runs if vs]
    if not runs:
        return None
    means = [_mean(vs) for vs in runs]
    n, mean = len(means), _mean(means)
    sd = math.sqrt(_var(means)) if n > 1 else None  # None (JSON null) where undefined
    half = t_quantile_975(n - 1) * sd / math.sqrt(n) if n > 1 else None
    dof = sum(len(vs) - 1 for vs in runs)
    decoding = math.sqrt(sum((len(vs) - 1) * _var(vs) for vs in runs if len(vs) > 1) / dof) if dof else None
    return {"mean": mean, "sd": sd, "ci_low": None if half is None else mean - half,
            "ci_high": None if half is None else mean + half, "n_seeds": n,
            "n_folders": sum(len(vs) for vs in runs), "per_seed": means, "decoding_sd": decoding}


def _run_key(info):
    return (info.run_dir, info.train_seed) if info.run_dir or info.train_seed is not None else info.path


def build_row(members, values, name, paper_key, epoch=None):
    """One table row: members are the FolderInfo of the row, values {folder: {column: value}}."""
    per_column = {c: {} for c in COLUMNS}
    val_ppl = {}
    for info in members:
        for c in COLUMNS:
            per_column[c].setdefault(_run_key(info), []).append(values[info.path][c])
        if info.epoch in info.eval_ppl:
            val_ppl[_run_key(info)] = [info.eval_ppl[info.epoch]]
    runs = {}
    for info in members:
        runs.setdefault(_run_key(info), info)
    return {"name": name, "system": members[0].system, "paper": paper_key, "epoch": epoch,
            "selected": [{"training_seed": i.train_seed, "run_dir": i.run_dir, "epoch": i.epoch}
                         for i in runs.values()],
            "folders": [i.path for i in members], "cells": {c: cell(per_column[c]) for c in COLUMNS},
            "validation_ppl": cell(val_ppl)}


def _format(value, column, signed=False):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return f"{value:+.{DECIMALS[column]}f}" if signed else f"{value:.{DECIMALS[column]}f}"


def _cell_text(stats, column):
    if stats is None:
        return MISSING
    if stats["n_seeds"] < 2:
        return _format(stats["mean"], column)
    return f"{_format(stats['mean'], column)} ± {_format(stats['sd'], column)}"


def _ci_text(stats, column):
    if stats is None or stats["n_seeds"] < 2:
        return MISSING
    return f"[{_format(stats['ci_low'], column)}, {_format(stats['ci_high'], column)}]"


def _row(label, cells):
    return "| " + " | ".join([label] + cells) + " |"


def _row_lines(row, first_cells=(), first_ci=()):
    cells = row["cells"]
    lines = [_row(row["name"], list(first_cells) + [_cell_text(cells[c], c) for c in COLUMNS])]
    if any(s is not None and s["n_seeds"] > 1 for s in cells.values()):
        first = list(first_ci or [""] * len(first_cells))
        lines.append(_row("  95% CI", first + [_ci_text(cells[c], c) for c in COLUMNS]))
    if row["paper"]:
        paper = PAPER[row["paper"]]
        diffs = [None if cells[c] is None else cells[c]["mean"] - paper[c] for c in COLUMNS]
        lines.append(_row(f"Δ {row['name']} − {PAPER_LABELS[row['paper']]}",
                          [""] * len(first_cells) + [_format(d, c, signed=True) for d, c in zip(diffs, COLUMNS)]))
    return lines


def markdown_table(rows):
    """The paper's rows, then per row: mean (± sd over training seeds), its 95% CI, and the difference from the
    row's paper row."""
    lines = [_row("Model", COLUMNS), "|" + "---|" * (len(COLUMNS) + 1)]
    for _, label, values in PAPER_ROWS:
        lines.append(_row(label, [_format(v, c) for v, c in zip(values, COLUMNS)]))
    for row in rows:
        lines += _row_lines(row)
    return "\n".join(lines) + "\n"


def epochs_table(rows):
    """Every epoch of one system: validation PPL and the metrics, mean ± sd over training seeds."""
    lines = [_row("Epoch", ["val PPL"] + COLUMNS), "|" + "---|" * (len(COLUMNS) + 2)]
    for row in rows:
        val = row["validation_ppl"]
        lines += _row_lines(row, [_cell_text(val, "PPL")], [_ci_text(val, "PPL")])
    return "\n".join(lines) + "\n"
