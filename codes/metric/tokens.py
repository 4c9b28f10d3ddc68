"""Tokenization exactly as the authors' metrics do it, with a hard stop when NLTK's punkt_tab is missing.

Two tokenizations are used:
- text metrics (BLEU, Distinct, F1, ROUGE-L, nlg-eval): `nltk.word_tokenize(text.lower())` on the whole reply;
- EAD: `nltk.sent_tokenize(text)` first, then `nltk.word_tokenize` on each sentence, NOT lower-cased (the authors'
  get_EAD_score.py), so that n-grams never span two sentences.

`nltk.word_tokenize` needs the punkt_tab sentence tables, which NLTK downloads from its own data server. The
English tables of NLTK's release ship with this package (metric/nltk_data/, Apache-2.0, byte-identical) and are
appended as the LAST entry of NLTK's search path, so NLTK_DATA and NLTK's normal folders keep precedence and the
bundled copy is used only when NLTK finds none. If even that copy is missing we stop with a message that says how
to get the tables: a silent fallback to another tokenizer would change every number.
"""
from pathlib import Path

import nltk

from palkit.cli import UserError

PUNKT_RESOURCE = "tokenizers/punkt_tab/english/"
BUNDLED_NLTK_DATA = str(Path(__file__).resolve().parent / "nltk_data")
PUNKT_HINT = ("NLTK's punkt_tab tables (needed by nltk.word_tokenize) were found neither on NLTK's search path nor "
              f"in the bundled copy {BUNDLED_NLTK_DATA}: restore that folder (git checkout codes/metric/nltk_data), "
              "run `python -m nltk.downloader punkt_tab`, or set NLTK_DATA to a folder that holds "
              "tokenizers/punkt_tab")

if BUNDLED_NLTK_DATA not in nltk.data.path:
    nltk.data.path.append(BUNDLED_NLTK_DATA)  # last: only a fallback for NLTK's own lookup


def require_punkt():
    """Raise a UserError with instructions unless NLTK finds punkt_tab (English), the bundled copy included."""
    try:
        nltk.data.find(PUNKT_RESOURCE)
    except LookupError:
        raise UserError(PUNKT_HINT) from None


def _word_tokenize(text):
    try:
        return nltk.word_tokenize(text)
    except LookupError:  # a partial NLTK_DATA folder: same advice as require_punkt
        raise UserError(PUNKT_HINT) from None


def metric_tokens(text):
    """Lower-cased `nltk.word_tokenize` tokens: the tokens every text metric compares."""
    return _word_tokenize(str(text).lower())


def sentence_word_tokens(text, lower=False):
    """A list of token lists, one per sentence (`nltk.sent_tokenize`), as the authors' EAD script splits text."""
    text = str(text).lower() if lower else str(text)
    try:
        sentences = nltk.sent_tokenize(text)
    except LookupError:
        raise UserError(PUNKT_HINT) from None
    return [_word_tokenize(s) for s in sentences]
