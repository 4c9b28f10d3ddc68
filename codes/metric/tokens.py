"""Tokenization exactly as the authors' metrics do it, with a hard stop when NLTK's punkt_tab is missing.

Two tokenizations are used:
- text metrics (BLEU, Distinct, F1, ROUGE-L, nlg-eval): `nltk.word_tokenize(text.lower())` on the whole reply;
- EAD: `nltk.sent_tokenize(text)` first, then `nltk.word_tokenize` on each sentence, NOT lower-cased (the authors'
  get_EAD_score.py), so that n-grams never span two sentences.

`nltk.word_tokenize` needs the punkt_tab sentence tables. Without them we stop with a message that says how to get
them: a silent fallback to another tokenizer would change every number.
"""
import nltk

from pal.cli import UserError

PUNKT_RESOURCE = "tokenizers/punkt_tab/english/"
PUNKT_HINT = ("NLTK's punkt_tab tables (needed by nltk.word_tokenize) were not found: run "
              "`python -m nltk.downloader punkt_tab`, or set NLTK_DATA to a folder that holds "
              "tokenizers/punkt_tab (e.g. NLTK_DATA=../shared/nltk_data)")


def require_punkt():
    """Raise a UserError with download instructions unless punkt_tab (English) is on NLTK's search path."""
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
