"""`evaluate_records`: every metric of a gen.json, written into the result folder.

Files written into `save_dir` (all computed first, then written, so bad input leaves no partial output):
- metric.json: the authors' keys and scales, sorted by key like theirs:
  perplexity; bleu-1..bleu-4, dist-1..dist-3 (the authors' off-by-one Distinct), f1, rouge-l: percent (x100);
  length: mean reply length in tokens; acc_cls_strat_id(_top1/_top3), f1_micro_cls_strat_id, f1_macro_cls_strat_id:
  fractions. New: dist-1-standard..dist-3-standard, ead-1, ead-2 (percent; E-1/E-2), ead_vocab_size (the V used).
- metric_list.json: per-example f1, rouge-l and strategy hits (the authors' file of the same name).
- with add_nlg_eval: metric_nlgeval.json (Bleu_1..4, METEOR, ROUGE_L, CIDEr; fractions) and metric_nlgeval_list.json.
- with gold and predicted strategies: confusion_matrix_cls_strat_id.json (the authors' nested list),
  confusion_matrix_cls_strat_id.png, strategy_report_cls_strat_id.json (all 8 strategies: per-class
  precision/recall/F1, top-k accuracy, 8x8 matrix).
  Records with predicted but no gold strategies (the authors' gen.json) get every other metric and one note line;
  metric.records.with_gold_strategies adds the gold ones from the test file.
"""
import os
import sys

from palkit.cli import UserError
from palkit.atomic import write_json

from .plots import plot_confusion_matrix
from .records import all_or_none, check_records, corpus_perplexity, first_text
from .strategy import GOLD_KEY, PRED_KEY, classification_report_text, strategy_metrics
from .text import (EAD_VOCAB_SIZE, bleu, distinct_authors, distinct_standard, ead, mean, rouge_l_per_example,
                   unigram_f1_per_example)
from .tokens import metric_tokens, require_punkt, sentence_word_tokens

EAD_ORDERS = (1, 2)


def text_metrics(ref_tokens, hyp_tokens):
    """The authors' Metric.close(): (metrics in their scales, per-example lists)."""
    f1_list = unigram_f1_per_example(ref_tokens, hyp_tokens)
    rouge_list = rouge_l_per_example(ref_tokens, hyp_tokens)
    metrics = {"length": mean([len(h) for h in hyp_tokens])}
    for n in range(1, 4):
        metrics[f"dist-{n}"] = 100 * distinct_authors(hyp_tokens, n)
        metrics[f"dist-{n}-standard"] = 100 * distinct_standard(hyp_tokens, n)
    for n in range(1, 5):
        metrics[f"bleu-{n}"] = 100 * bleu(ref_tokens, hyp_tokens, n)
    metrics["f1"] = 100 * mean(f1_list)
    metrics["rouge-l"] = 100 * mean(rouge_list)
    return metrics, {"f1": f1_list, "rouge-l": rouge_list}


def ead_metrics(generations, orders=EAD_ORDERS, vocab_size=EAD_VOCAB_SIZE, lower=False):
    """{'ead-n': percent} plus the counts behind each value, on the generations split into sentences as the
    authors' get_EAD_score.py does (not lower-cased by default, like theirs)."""
    sentences = [s for g in generations for s in sentence_word_tokens(g, lower=lower)]
    result = {}
    for n in orders:
        value, distinct, total = ead(sentences, n, vocab_size)
        result[f"ead-{n}"] = 100 * value
        result[f"ead-{n}_distinct_ngrams"] = distinct
        result[f"ead-{n}_total_ngrams"] = total
    return result


NO_GOLD_NOTE = (f"note: gen.json has predicted strategies ({PRED_KEY}) but no gold ones ({GOLD_KEY}), as the authors' "
                f"infer.py writes it: strategy accuracy is unavailable; codes/evaluate.py --gold_file TEST_FILE "
                f"recovers the gold strategies from the reformatted test file")


def _strategy_outputs(records):
    """strategy_metrics(records), or None without strategy fields (vanilla) or without gold labels (one note)."""
    has_pred = all_or_none(records, (PRED_KEY,))
    has_gold = all_or_none(records, (GOLD_KEY,))
    if has_gold and not has_pred:
        raise UserError(f"gen.json: the records have {GOLD_KEY} but no {PRED_KEY}; strategy metrics need both")
    if has_pred and not has_gold:
        print(NO_GOLD_NOTE, file=sys.stderr)
        return None
    return strategy_metrics(records) if has_pred else None


def evaluate_records(records, save_dir, add_nlg_eval=False, ead_vocab_size=EAD_VOCAB_SIZE, extra_metrics=None,
                     verbose=True):
    """Score gen.json records and write the metric files into save_dir; returns the metric.json dict.

    `extra_metrics` (optional) are merged into metric.json last, for values the caller computed itself.
    """
    require_punkt()
    check_records(records)
    references = [first_text(r["response"]) for r in records]
    generations = [first_text(r["generation"]) for r in records]
    ref_tokens = [metric_tokens(t) for t in references]
    hyp_tokens = [metric_tokens(t) for t in generations]

    metrics, per_example = text_metrics(ref_tokens, hyp_tokens)
    ead_result = ead_metrics(generations, vocab_size=ead_vocab_size)
    metrics.update({f"ead-{n}": ead_result[f"ead-{n}"] for n in EAD_ORDERS})  # n-gram counts: get_EAD_score.py
    metrics["ead_vocab_size"] = ead_vocab_size
    if all_or_none(records, ("loss", "token_num")):
        metrics["perplexity"] = corpus_perplexity(records)
    strategy = _strategy_outputs(records)
    if strategy:
        strategy_values, strategy_lists, report, authors_matrix = strategy
        metrics.update(strategy_values)
        per_example.update(strategy_lists)
    nlg = None
    if add_nlg_eval:
        from .nlgeval import nlgeval_scores  # pycocoevalcap is needed only here
        nlg = nlgeval_scores(ref_tokens, hyp_tokens)
    metrics.update(extra_metrics or {})
    metrics = dict(sorted(metrics.items()))

    os.makedirs(save_dir, exist_ok=True)
    write_json(os.path.join(save_dir, "metric.json"), metrics)
    write_json(os.path.join(save_dir, "metric_list.json"), per_example, indent=None)
    if nlg:
        nlg_scores, nlg_lists, notes = nlg
        write_json(os.path.join(save_dir, "metric_nlgeval.json"), dict(sorted(nlg_scores.items())))
        write_json(os.path.join(save_dir, "metric_nlgeval_list.json"), nlg_lists, indent=None)
        for note in notes:
            print(f"warning: {note}", file=sys.stderr)
    if strategy:
        _write_strategy_files(save_dir, report, authors_matrix)
    if verbose:
        _print_summary(metrics, nlg[0] if nlg else None, records if strategy else None)
    return metrics


def _write_strategy_files(save_dir, report, authors_matrix):
    key = GOLD_KEY
    write_json(os.path.join(save_dir, f"confusion_matrix_{key}.json"), authors_matrix, indent=None)
    write_json(os.path.join(save_dir, f"strategy_report_{key}.json"), report)
    plot_confusion_matrix(report["confusion_matrix"], report["label_names"],
                          os.path.join(save_dir, f"confusion_matrix_{key}.png"))


def _print_summary(metrics, nlg_scores, strategy_records):
    if strategy_records:
        gold = [int(r[GOLD_KEY]) for r in strategy_records]
        pred = [int(r[PRED_KEY]) for r in strategy_records]
        print(f"{GOLD_KEY}: classification_report\n{classification_report_text(gold, pred)}")
    print("metric.json: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
    if nlg_scores:
        print("metric_nlgeval.json: " + ", ".join(f"{k} {v:.4g}" for k, v in sorted(nlg_scores.items())))
