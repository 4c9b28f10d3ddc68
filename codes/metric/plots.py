"""PNG figures: the strategy confusion matrix, training curves from train_log.csv/eval_log.csv, test metrics per
epoch across seeds (summarize_results.py) and a forest plot of paired differences (compare_systems.py).

Figures are drawn on matplotlib's Agg canvas directly (no pyplot, no display needed) and written atomically.
"""
import math
import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from palkit.loaders import read_csv
from palkit.cli import UserError
from palkit.atomic import atomic_write

# Column names accepted for each quantity, first match wins. Ours first, then the authors' train.py headers
# (their eval_log.csv header says freq_loss/freq_ppl for what are validation loss/perplexity).
TRAIN_LOSS_COLUMNS = ("loss", "tmp_loss", "train_loss", "mean_loss")
TRAIN_STEP_COLUMNS = ("global_step", "step")
EVAL_LOSS_COLUMNS = ("eval_loss", "valid_loss", "freq_loss")
EVAL_PPL_COLUMNS = ("eval_ppl", "valid_ppl", "freq_ppl")


def _save(figure, path):
    FigureCanvasAgg(figure)
    with atomic_write(path, "wb") as f:
        figure.savefig(f, format="png", dpi=120, bbox_inches="tight")


def plot_confusion_matrix(matrix, label_names, path, title="Strategy confusion matrix (rows: gold, columns: predicted)"):
    """Heat map of a square count matrix with the count written in every cell."""
    size = len(matrix)
    figure = Figure(figsize=(1.1 * size + 3, 0.9 * size + 2.5))
    ax = figure.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(size), labels=label_names, rotation=45, ha="right")
    ax.set_yticks(range(size), labels=label_names)
    ax.set_xlabel("predicted strategy")
    ax.set_ylabel("gold strategy")
    ax.set_title(title)
    peak = max((max(row) for row in matrix), default=0)
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center",
                    color="white" if peak and count > peak / 2 else "black", fontsize=8)
    _save(figure, path)


def _read_csv(path):
    return read_csv(path, hint="give the train_log.csv / eval_log.csv that codes/train.py writes", nonempty=True)


def _pick(fieldnames, candidates, path, what):
    for name in candidates:
        if name in fieldnames:
            return name
    raise UserError(f"{path}: no {what} column (looked for {', '.join(candidates)}; the file has "
                    f"{', '.join(fieldnames) or 'no header'})")


def _column(rows, name, path):
    values = []
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        try:
            values.append(float(row[name]))
        except (TypeError, ValueError):
            raise UserError(f"{path}, line {line}: {name} is not a number ({row.get(name)!r})")
    return values


def _mean_by_epoch(epochs, values):
    sums = {}
    for e, v in zip(epochs, values):
        total, count = sums.get(e, (0.0, 0))
        sums[e] = (total + v, count + 1)
    keys = sorted(sums)
    return keys, [sums[k][0] / sums[k][1] for k in keys]


def load_training_logs(train_csv, eval_csv):
    """Read the curves to plot; either file may be None, not both. Raises a UserError naming missing columns."""
    curves = {}
    if train_csv:
        fields, rows = _read_csv(train_csv)
        loss_col = _pick(fields, TRAIN_LOSS_COLUMNS, train_csv, "training loss")
        epoch_col = _pick(fields, ("epoch",), train_csv, "epoch")
        loss = _column(rows, loss_col, train_csv)
        step_col = next((c for c in TRAIN_STEP_COLUMNS if c in fields), None)
        steps = _column(rows, step_col, train_csv) if step_col else list(range(1, len(rows) + 1))
        curves["train_steps"] = (steps, loss, step_col or "logged step")
        curves["train_epoch"] = _mean_by_epoch(_column(rows, epoch_col, train_csv), loss)
        if not eval_csv and "val_loss" in fields:  # the persona extractor logs validation in the same file
            validated = [r for r in rows if (r.get("val_loss") or "").strip()]
            epochs, val_loss = _column(validated, epoch_col, train_csv), _column(validated, "val_loss", train_csv)
            curves["eval_loss"] = (epochs, val_loss)
            curves["eval_ppl"] = (epochs, [math.exp(min(x, 700.0)) for x in val_loss])
    if eval_csv:
        fields, rows = _read_csv(eval_csv)
        epochs = _column(rows, _pick(fields, ("epoch",), eval_csv, "epoch"), eval_csv)
        curves["eval_loss"] = (epochs, _column(rows, _pick(fields, EVAL_LOSS_COLUMNS, eval_csv, "validation loss"),
                                               eval_csv))
        curves["eval_ppl"] = (epochs, _column(rows, _pick(fields, EVAL_PPL_COLUMNS, eval_csv, "validation perplexity"),
                                              eval_csv))
    if not curves:
        raise UserError("no training log to plot: give train_log.csv and/or eval_log.csv")
    return curves


def plot_training_curves(train_csv, eval_csv, path):
    """Three panels: train loss per step; train (epoch mean) and validation loss per epoch; validation PPL."""
    curves = load_training_logs(train_csv, eval_csv)
    figure = Figure(figsize=(15, 4))
    step_ax, epoch_ax, ppl_ax = figure.subplots(1, 3)
    if "train_steps" in curves:
        steps, loss, step_label = curves["train_steps"]
        step_ax.plot(steps, loss, linewidth=0.8)
        step_ax.set_xlabel(step_label)
        epochs, means = curves["train_epoch"]
        epoch_ax.plot(epochs, means, marker="o", label="train (mean over the epoch)")
    step_ax.set_title("training loss per step")
    step_ax.set_ylabel("loss")
    if "eval_loss" in curves:
        epoch_ax.plot(*curves["eval_loss"], marker="s", label="validation")
        epochs, ppl = curves["eval_ppl"]
        ppl_ax.plot(epochs, ppl, marker="s", color="tab:orange")
        finite = [p for p in ppl if math.isfinite(p)]
        if finite and max(finite) / max(min(finite), 1e-12) > 50:  # an early huge PPL would flatten the rest
            ppl_ax.set_yscale("log")
    epoch_ax.set_title("loss per epoch")
    epoch_ax.set_xlabel("epoch (as logged)")
    epoch_ax.set_ylabel("loss")
    epoch_ax.legend()
    ppl_ax.set_title("validation perplexity per epoch")
    ppl_ax.set_xlabel("epoch (as logged)")
    ppl_ax.set_ylabel("perplexity")
    _save(figure, path)
    return curves


def find_training_logs(run_dir):
    """(train_log.csv or None, eval_log.csv or None) inside a run directory."""
    found = [os.path.join(run_dir, name) for name in ("train_log.csv", "eval_log.csv")]
    return tuple(p if os.path.isfile(p) else None for p in found)


def plot_forest(comparisons, metrics, path, confidence=0.95):
    """Forest plot: a panel per metric (Table 3's scale), a row per comparison B - A with its paired-bootstrap
    interval and p-value; blue where p < 0.05. metrics: {key: (column, multiplier)}."""
    keys = list(comparisons[0]["metrics"])
    cols = min(5, len(keys))
    rows = math.ceil(len(keys) / cols)
    figure = Figure(figsize=(3.4 * cols, (0.45 * len(comparisons) + 2.0) * rows), layout="constrained")
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    labels = [f"{c['b']} − {c['a']}" for c in comparisons]
    for i, (ax, key) in enumerate(zip(axes, keys)):
        column, scale = metrics[key]
        for y, comparison in enumerate(reversed(comparisons)):
            r = comparison["metrics"][key]
            if not r.get("comparable", True):  # e.g. PPL under different tokenizers: no difference to draw
                ax.annotate(f"not comparable ({r['why']})", (0, y), ha="center", va="center", fontsize=7)
                continue
            color = "tab:blue" if r["p_value"] < 0.05 else "tab:gray"
            if r["ci_low"] is not None and r["ci_high"] is not None:
                ax.plot([scale * r["ci_low"], scale * r["ci_high"]], [y, y], color=color, linewidth=2)
            ax.plot([scale * r["delta"]], [y], marker="o", color=color)
            ax.annotate(f"p={r['p_value']:.2g}", (scale * r["delta"], y), xytext=(0, 5), textcoords="offset points",
                        fontsize=7, ha="center")
        ax.axvline(0, color="black", linewidth=0.8)
        # the comparisons' names once per row of panels: repeated beside every panel, long names squeeze them flat
        ax.set_yticks(range(len(comparisons)), labels=list(reversed(labels)) if i % cols == 0 else [], fontsize=7)
        ax.set_ylim(-0.7, len(comparisons) - 0.3)
        ax.set_title(column)
    for ax in axes[len(keys):]:
        ax.set_visible(False)
    figure.suptitle(f"Paired differences B − A with {round(100 * confidence)}% intervals (bootstrap; Distinct, EAD: "
                    "randomization inverted) (blue: randomization p < 0.05)")
    _save(figure, path)


def plot_epochs(curves, val_ppl, columns, path):
    """One panel per metric against epoch, one line per system (mean over training seeds) with a band of +- one sd,
    and a last panel with each run family's validation PPL; dotted lines mark each system's lowest mean validation
    PPL epoch, so a reader sees whether the lowest-PPL epoch is also the best one.

    curves: {system label: {column: [(epoch, mean, sd)]}}; val_ppl: {label: [(epoch, mean, sd)]}."""
    panels = [c for c in columns if any(curves[s].get(c) for s in curves)] + (["validation PPL"] if val_ppl else [])
    cols = 4
    figure = Figure(figsize=(4 * cols, 3.2 * math.ceil(len(panels) / cols)), layout="constrained")
    axes = figure.subplots(math.ceil(len(panels) / cols), cols, squeeze=False).ravel()
    best = {s: min(points, key=lambda p: (p[1], p[0]))[0] for s, points in val_ppl.items() if points}
    colors = {s: f"C{i}" for i, s in enumerate(list(curves) + [s for s in val_ppl if s not in curves])}
    for ax, panel in zip(axes, panels):
        series = val_ppl if panel == "validation PPL" else {s: curves[s].get(panel, []) for s in curves}
        for system, points in series.items():
            if not points:
                continue
            epochs, means, sds = (list(x) for x in zip(*points))
            lower = [m - (s or 0) for m, s in zip(means, sds)]  # sd is None with one training seed
            upper = [m + (s or 0) for m, s in zip(means, sds)]
            ax.plot(epochs, means, marker="o", markersize=3, color=colors[system], label=system)
            ax.fill_between(epochs, lower, upper, color=colors[system], alpha=0.2, linewidth=0)
        for system, epoch in best.items():
            ax.axvline(epoch, color=colors[system], linestyle=":", linewidth=1)
        ax.set_title(panel)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        shown = {p[0] for points in series.values() for p in points}
        if len(shown) == 1:  # one epoch: a window around it, not matplotlib's +-5% of a zero-width range
            ax.set_xlim(min(shown) - 1, min(shown) + 1)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    axes[len(panels) - 1].legend(fontsize=7)
    figure.suptitle("Test metrics per epoch (mean ± sd over training seeds); dotted: lowest validation PPL")
    _save(figure, path)
