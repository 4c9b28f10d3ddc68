"""Evaluation suite for PAL (paper Table 3; docs/reproduction.md#metrics, keys and scales in README.md here).

- `evaluate_records(records, save_dir, add_nlg_eval=False)`: text, perplexity and strategy metrics of gen.json
  records -> metric.json (+ metric_nlgeval.json, confusion matrix JSON/PNG, strategy report); see evaluation.py.
- tokens.py: the authors' tokenization (lower-cased nltk.word_tokenize); NLTK's English punkt_tab ships in nltk_data/.
- text.py: BLEU (NLTK, smoothing 3), Distinct (authors' off-by-one and standard), unigram F1, ROUGE-L, EAD.
- nlgeval.py: BLEU/METEOR/ROUGE-L/CIDEr through pycocoevalcap (METEOR needs Java).
- strategy.py: accuracy, top-k accuracy, F1, per-strategy report, confusion matrix.
- simcse.py: persona-response cosine similarity with a sentence encoder (imports torch only when used).
- plots.py: confusion-matrix heat map and training curves (PNG). records.py: reading and checking gen.json.
- paper.py: the paper's Table 3 and how each column is read from our metric files.
- summary.py, result_folders.py: Table 3 from result folders (mean +- sd over training seeds, 95% intervals).
- example_stats.py, significance.py: per-example statistics of a result folder and paired tests between systems.
"""
from .evaluation import ead_metrics, evaluate_records, text_metrics
from .text import EAD_VOCAB_SIZE
from .tokens import metric_tokens, require_punkt

__all__ = ["evaluate_records", "text_metrics", "ead_metrics", "EAD_VOCAB_SIZE", "metric_tokens", "require_punkt"]
