"""Strategy metrics and the files evaluate_records writes, on a hand-made gen.json."""
import json
import math

import pytest

from metric import evaluate_records
from metric.strategy import strategy_metrics, top_k_accuracies
from palkit.cli import UserError

GOLD = [0, 1, 2, 2]
PRED = [0, 2, 2, 1]
TOP3 = [[0, 1, 2], [2, 3, 4], [2, 0, 1], [1, 0, 3]]  # gold inside for examples 0 and 2 only


def _dist(order):
    """An 8-way distribution whose ids, from most to least probable, start with `order`."""
    probs = [0.0] * 8
    for rank, idx in enumerate(order):
        probs[idx] = 0.5 / (rank + 1)
    rest = [i for i in range(8) if i not in order]
    for i in rest:
        probs[i] = 0.01
    return " ".join(str(p) for p in probs)


# gold ranks: example 0 -> 1st, example 1 (gold 1) -> 3rd, example 2 -> 1st, example 3 (gold 2) -> 2nd
DISTS = [_dist([0, 1, 2]), _dist([2, 3, 1]), _dist([2, 0, 1]), _dist([1, 2, 3])]


def _records():
    texts = [("i am sad .", "i am sorry ."), ("my friend left .", "that sounds hard ."),
             ("i lost my job", "did you talk to anyone ?"), ("it is ok", "you can do this .")]
    return [{"sample_id": i, "post": "", "response": r, "generation": g, "persona": "i have a dog.",
             "cls_strat_id": GOLD[i], "pred_strat_id": PRED[i], "pred_strat_id_top1": [PRED[i]],
             "pred_strat_id_top3": TOP3[i], "pred_strat_id_dist": DISTS[i], "token_num": [1, 3, 2, 2][i],
             "loss": [1.0, 2.0, 0.5, 1.5][i], "ppl": 0.0}
            for i, (r, g) in enumerate(texts)]


def test_strategy_metrics_by_hand():
    metrics, lists, report, authors_matrix = strategy_metrics(_records())
    # 2 of 4 correct; micro F1 = accuracy for single-label data
    assert metrics["acc_cls_strat_id"] == 0.5 and metrics["f1_micro_cls_strat_id"] == 0.5
    # macro over the ids that occur (0, 1, 2): F1 = 1 (0: 1/1 right), 0 (1: never right), 1/2 (2: P 1/2, R 1/2)
    assert metrics["f1_macro_cls_strat_id"] == pytest.approx(0.5)
    assert metrics["acc_cls_strat_id_top1"] == 0.5 and metrics["acc_cls_strat_id_top3"] == 0.5
    assert lists["acc_cls_strat_id_top3"] == [1, 0, 1, 0]
    assert authors_matrix == [[1, 0, 0], [0, 0, 1], [0, 1, 1]]  # rows gold, columns predicted, ids 0-2
    assert len(report["confusion_matrix"]) == 8 and report["confusion_matrix"][2][:3] == [0, 1, 1]
    assert report["label_names"][2] == "Reflection of feelings"
    assert report["classification_report"]["Reflection of feelings"]["f1-score"] == pytest.approx(0.5)
    assert report["top_k_accuracy"]["1"] == 0.5 and report["top_k_accuracy"]["2"] == 0.75
    assert report["top_k_accuracy"]["3"] == 1.0


def test_top_k_ties_are_ranked_by_id():
    import numpy as np
    # all equal: gold 3 ranks 4th (ids 0, 1, 2 come first)
    assert top_k_accuracies(np.array([3]), [[0.25] * 4]) == {1: 0.0, 2: 0.0, 3: 0.0, 4: 1.0}


def test_evaluate_records_writes_every_file(punkt, tmp_path):
    metrics = evaluate_records(_records(), str(tmp_path), verbose=False)
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {"metric.json", "metric_list.json", "confusion_matrix_cls_strat_id.json",
                     "confusion_matrix_cls_strat_id.png", "strategy_report_cls_strat_id.json"}
    saved = json.loads((tmp_path / "metric.json").read_text())
    assert saved == pytest.approx(metrics) and list(saved) == sorted(saved)
    # token-weighted loss (1*1 + 2*3 + 0.5*2 + 1.5*2) / 8 = 11/8
    assert saved["perplexity"] == pytest.approx(math.exp(11 / 8))
    assert saved["acc_cls_strat_id"] == 0.5
    assert saved["ead_vocab_size"] == 54956
    for key in ("bleu-1", "bleu-2", "bleu-3", "bleu-4", "dist-1", "dist-2", "dist-3", "dist-1-standard", "f1",
                "rouge-l", "length", "ead-1", "ead-2", "f1_macro_cls_strat_id", "acc_cls_strat_id_top3"):
        assert key in saved
    assert (tmp_path / "confusion_matrix_cls_strat_id.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lists = json.loads((tmp_path / "metric_list.json").read_text())
    assert len(lists["f1"]) == 4 and lists["acc_cls_strat_id"] == [1, 0, 1, 0]


def test_vanilla_records_have_no_strategy_metrics(punkt, tmp_path):
    records = [{"response": "i see you there", "generation": "i see you now"}]
    metrics = evaluate_records(records, str(tmp_path), verbose=False)
    assert "acc_cls_strat_id" not in metrics and "perplexity" not in metrics
    assert not (tmp_path / "confusion_matrix_cls_strat_id.png").exists()


def test_bad_records_write_nothing(punkt, tmp_path):
    records = _records()
    del records[2]["generation"]
    with pytest.raises(UserError, match="record 2"):
        evaluate_records(records, str(tmp_path / "out"), verbose=False)
    records = _records()
    del records[1]["pred_strat_id"]
    with pytest.raises(UserError, match="record 1 lacks"):
        evaluate_records(records, str(tmp_path / "out"), verbose=False)
    assert not (tmp_path / "out").exists()
