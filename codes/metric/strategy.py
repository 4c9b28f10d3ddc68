"""Strategy-prediction metrics: accuracy (top-1/top-3 as the authors report), top-k accuracy from the predicted
distribution, micro/macro F1, a per-strategy report and the confusion matrix (scikit-learn).

Inputs come from gen.json: `cls_strat_id` (gold id), `pred_strat_id`, and when present `pred_strat_id_top1`,
`pred_strat_id_top3` (lists of ids) and `pred_strat_id_dist` (space-separated probabilities, as the authors write it).
"""
import numpy as np
from sklearn.metrics import classification_report, confusion_matrix, f1_score

from palkit.cli import UserError
from pal.config import STRATEGIES

from .records import GOLD_KEY, PRED_KEY


def _parse_distribution(value, index):
    numbers = value.split() if isinstance(value, str) else value
    try:
        return [float(x) for x in numbers]
    except (TypeError, ValueError):
        raise UserError(f"record {index}: pred_strat_id_dist must be space-separated numbers, got {value!r}")


def _int_column(records, key):
    try:
        return np.array([int(r[key]) for r in records], dtype=int)
    except (TypeError, ValueError) as e:
        raise UserError(f"gen.json: {key} must be an integer id in every record ({e})")


def _hit_in_lists(gold, lists):
    """1 where the gold id is one of the predicted ids of that example (the authors' top-k accuracy)."""
    return np.array([int(g in set(int(x) for x in ids)) for g, ids in zip(gold, lists)], dtype=int)


def top_k_accuracies(gold, distributions):
    """{k: fraction of examples whose gold id is among the k most probable ids} for k = 1..num_classes.
    Ties are ranked by id (stable sort), so the result does not depend on the platform."""
    probs = np.asarray(distributions, dtype=float)
    order = np.argsort(-probs, axis=1, kind="stable")
    rank_of_gold = np.argmax(order == gold[:, None], axis=1)
    return {k: float(np.mean(rank_of_gold < k)) for k in range(1, probs.shape[1] + 1)}


def strategy_metrics(records, label_names=STRATEGIES):
    """Return (metrics for metric.json, per-example lists, report dict, authors'-style confusion matrix list)."""
    gold, pred = _int_column(records, GOLD_KEY), _int_column(records, PRED_KEY)
    key = GOLD_KEY
    correct = (gold == pred).astype(int)
    metrics = {
        f"acc_{key}": float(correct.mean()),
        # scikit-learn's default label set (the ids present in gold or prediction), as the authors call it
        f"f1_micro_{key}": float(f1_score(gold, pred, average="micro")),
        f"f1_macro_{key}": float(f1_score(gold, pred, average="macro")),
    }
    per_example = {f"acc_{key}": correct.tolist()}
    for suffix in ("top1", "top3"):
        field = f"{PRED_KEY}_{suffix}"
        if all(field in r for r in records):
            hits = _hit_in_lists(gold, [r[field] for r in records])
            metrics[f"acc_{key}_{suffix}"] = float(hits.mean())
            per_example[f"acc_{key}_{suffix}"] = hits.tolist()

    num_classes = max(len(label_names), int(gold.max()) + 1, int(pred.max()) + 1)
    labels = list(range(num_classes))
    names = [label_names[i] if i < len(label_names) else str(i) for i in labels]
    report = {
        "num_examples": int(len(gold)),
        "labels": labels,
        "label_names": names,
        "accuracy": metrics[f"acc_{key}"],
        "f1_micro": metrics[f"f1_micro_{key}"],
        "f1_macro": metrics[f"f1_macro_{key}"],
        "f1_macro_all_labels": float(f1_score(gold, pred, labels=labels, average="macro", zero_division=0)),
        "classification_report": classification_report(gold, pred, labels=labels, target_names=names,
                                                       output_dict=True, zero_division=0),
        "confusion_matrix": confusion_matrix(gold, pred, labels=labels).tolist(),
    }
    dist_field = f"{PRED_KEY}_dist"
    if all(dist_field in r for r in records):
        dists = [_parse_distribution(r[dist_field], i) for i, r in enumerate(records)]
        if len({len(d) for d in dists}) != 1 or len(dists[0]) <= int(gold.max()):
            raise UserError(f"gen.json: {dist_field} must have the same number (> max gold id) of values everywhere")
        report["top_k_accuracy"] = {str(k): v for k, v in top_k_accuracies(gold, dists).items()}
    # The authors' confusion_matrix_<key>.json: scikit-learn's default labels (only ids that occur)
    authors_matrix = confusion_matrix(gold, pred).tolist()
    return metrics, per_example, report, authors_matrix


def classification_report_text(gold, pred, label_names=STRATEGIES):
    """The per-strategy report as text, each row named by its strategy (ids beyond the names by their number)."""
    labels = sorted(set(gold) | set(pred) | set(range(len(label_names))))
    names = [label_names[i] if i < len(label_names) else str(i) for i in labels]
    return classification_report(gold, pred, labels=labels, target_names=names, zero_division=0)
