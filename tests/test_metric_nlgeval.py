"""--add_nlg_eval: pycocoevalcap BLEU/METEOR/ROUGE-L/CIDEr on the authors' tokens; METEOR only with Java."""
import json
import math
import shutil

import pytest

import metric.nlgeval as nlgeval
from metric import evaluate_records
from metric.evaluation import text_metrics

REFS = ["a b c d", "e f g h"]
HYPS = ["a b c d z", "x y w v"]


def _tokens(texts):
    """Whitespace tokens: these texts tokenize the same under nltk.word_tokenize (lower-case, spaced punctuation),
    so most tests here do not need punkt_tab."""
    return [t.split() for t in texts]


def _no_java(monkeypatch):
    monkeypatch.setattr(nlgeval.shutil, "which", lambda name: None)


def test_cider_by_hand(monkeypatch):
    # CIDEr-D over 2 examples: idf = log(2) - log(max(1, df)); every n-gram here has df <= 1, so every tf-idf
    # weight is log 2 and cosines reduce to counting shared n-grams.
    # Example 1, hyp "a b c d z" vs ref "a b c d": shared/ (sqrt(#hyp) * sqrt(#ref)) per order:
    #   1-grams 4/(sqrt5*2), 2-grams 3/(2*sqrt3), 3-grams 2/(sqrt3*sqrt2), 4-grams 1/(sqrt2*1);
    #   length penalty exp(-delta^2 / (2 * 6^2)) with delta = 4 - 3 bigrams = 1; score = 10 * mean over orders.
    # Example 2 shares nothing -> 0. Corpus CIDEr = mean of the two.
    _no_java(monkeypatch)
    cosines = [2 / math.sqrt(5), math.sqrt(3) / 2, math.sqrt(2 / 3), 1 / math.sqrt(2)]
    first = 10 * math.exp(-1 / 72) * sum(cosines) / 4
    scores, lists, _ = nlgeval.nlgeval_scores(_tokens(REFS), _tokens(HYPS))
    assert lists["CIDEr"] == pytest.approx([first, 0.0])
    assert scores["CIDEr"] == pytest.approx(first / 2)


def test_bleu_and_rouge_agree_with_our_text_metrics(monkeypatch):
    # on hypotheses of >= 4 tokens with matches at every order, NLTK's BLEU (authors') and pycocoevalcap's agree
    _no_java(monkeypatch)
    refs = _tokens(["i am so sorry to hear that you lost your job .", "have you talked to a friend about it ?"])
    hyps = _tokens(["i am sorry to hear that you lost the job .", "have you talked to your friend about this ?"])
    ours, _ = text_metrics(refs, hyps)
    scores, _, _ = nlgeval.nlgeval_scores(refs, hyps)
    for n in range(1, 5):
        assert scores[f"Bleu_{n}"] == pytest.approx(ours[f"bleu-{n}"] / 100, rel=1e-6)
    assert scores["ROUGE_L"] == pytest.approx(ours["rouge-l"] / 100, abs=1e-12)


def test_missing_java_skips_meteor_only(punkt, monkeypatch, tmp_path, capsys):
    _no_java(monkeypatch)
    records = [{"response": r, "generation": h} for r, h in zip(REFS, HYPS)]
    evaluate_records(records, str(tmp_path), add_nlg_eval=True, verbose=False)
    saved = json.loads((tmp_path / "metric_nlgeval.json").read_text())
    assert set(saved) == {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "CIDEr"}
    assert "METEOR skipped: no `java` on PATH" in capsys.readouterr().err
    assert (tmp_path / "metric.json").is_file()


@pytest.mark.skipif(shutil.which("java") is None, reason="METEOR needs a Java runtime (no `java` on PATH)")
def test_meteor_through_the_jar():
    refs = _tokens(["the cat sat on the mat .", "i am here for you ."])
    hyps = _tokens(["the cat sat on the mat .", "bananas grow quickly"])
    scores, lists, notes = nlgeval.nlgeval_scores(refs, hyps)
    assert notes == []
    identical, disjoint = lists["METEOR"]
    assert disjoint == 0.0
    assert 0.9 < identical <= 1.0  # a single chunk of 7 matches: only the small fragmentation penalty
    assert 0.0 < scores["METEOR"] < identical


def test_failing_java_is_reported_not_fatal(monkeypatch, tmp_path):
    # a `java` that dies at once (as a JVM that cannot start would): METEOR is skipped with the reason
    fake = tmp_path / "java"
    fake.write_text("#!/bin/sh\necho 'Error: could not create the Java Virtual Machine' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    scores, _, notes = nlgeval.nlgeval_scores(_tokens(REFS), _tokens(HYPS))
    assert "METEOR" not in scores and "CIDEr" in scores
    assert len(notes) == 1 and notes[0].startswith("METEOR skipped: the METEOR jar failed")
