"""The bundled punkt_tab tables (codes/metric/nltk_data/): identical to NLTK's release, and only a fallback.

Each check runs in a fresh interpreter, because NLTK reads NLTK_DATA when it is imported and caches its tokenizer.
"""
import json
import os
import subprocess
import sys

import pytest

from helpers.paths import REPO_ROOT, shared_path
from metric.tokens import BUNDLED_NLTK_DATA

PUNKT = "tokenizers/punkt_tab"

# Prints where NLTK found punkt_tab, its search path, and the metric tokens of each text in the JSON file argv[1].
TOKENIZE = """
import json, sys
import nltk
from metric.tokens import PUNKT_RESOURCE, metric_tokens, sentence_word_tokens
texts = json.load(open(sys.argv[1], encoding="utf-8"))
print(json.dumps({"found": str(nltk.data.find(PUNKT_RESOURCE)), "path": nltk.data.path,
                  "tokens": [[metric_tokens(t), sentence_word_tokens(t)] for t in texts]}))
"""


def tokenize_in_fresh_pythons(texts, tmp_path, *nltk_data_dirs):
    """Tokens of `texts` in one new interpreter per NLTK_DATA folder (run side by side), each with an empty HOME
    (no ~/nltk_data)."""
    (tmp_path / "home").mkdir(exist_ok=True)
    texts_file = tmp_path / "texts.json"
    texts_file.write_text(json.dumps(texts), encoding="utf-8")
    procs = []
    for nltk_data in nltk_data_dirs:
        env = {**os.environ, "NLTK_DATA": str(nltk_data), "HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, "-c", TOKENIZE, str(texts_file)], cwd=REPO_ROOT / "codes",
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 0, stderr[-2000:]
        results.append(json.loads(stdout))
    return results


def first_folder_with_punkt(search_path):
    return next(p for p in search_path if os.path.isdir(os.path.join(p, PUNKT, "english")))


def test_bundled_tables_are_byte_identical_to_nltks_release():
    released = shared_path("nltk_data") / PUNKT
    bundled = os.path.join(BUNDLED_NLTK_DATA, PUNKT)
    names = sorted(os.path.relpath(os.path.join(d, f), released) for d, _, fs in os.walk(released) for f in fs)
    assert "english/ortho_context.tab" in names
    for name in names:
        with open(released / name, "rb") as a, open(os.path.join(bundled, name), "rb") as b:
            assert a.read() == b.read(), f"bundled {name} differs from NLTK's release"


def esconv_texts(every):
    dialogues = json.loads(shared_path("data/esconv/ESConv.json").read_text(encoding="utf-8"))
    return [turn["content"] for conv in dialogues[::every] for turn in conv["dialog"]]


def assert_same_tokens_as_released_tables(texts, tmp_path):
    released, bundled_only = tokenize_in_fresh_pythons(texts, tmp_path, shared_path("nltk_data"),
                                                       tmp_path / "no_nltk_data")
    assert released["found"].startswith(str(shared_path("nltk_data")))
    if first_folder_with_punkt(bundled_only["path"]) != BUNDLED_NLTK_DATA:
        pytest.skip("this machine has punkt_tab on NLTK's own search path, so the bundled copy is never used")
    assert bundled_only["found"].startswith(BUNDLED_NLTK_DATA)
    for text, want, got in zip(texts, released["tokens"], bundled_only["tokens"]):
        assert got == want, f"tokens differ on {text!r}"
    assert len(bundled_only["tokens"]) == len(texts)


def test_bundled_tables_give_nltks_tokens_on_esconv_sample(tmp_path):
    assert_same_tokens_as_released_tables(esconv_texts(every=20), tmp_path)  # 65 dialogues, ~1,900 utterances


@pytest.mark.slow
def test_bundled_tables_give_nltks_tokens_on_all_of_esconv(tmp_path):
    assert_same_tokens_as_released_tables(esconv_texts(every=1), tmp_path)  # 38,365 utterances


def write_tables_without_abbreviation(root, abbreviation):
    """A copy of the English tables in root/tokenizers/punkt_tab/ that no longer knows `abbreviation`."""
    english = root / PUNKT / "english"
    english.mkdir(parents=True)
    for name in os.listdir(os.path.join(BUNDLED_NLTK_DATA, PUNKT, "english")):
        lines = open(os.path.join(BUNDLED_NLTK_DATA, PUNKT, "english", name), encoding="utf-8").read().split("\n")
        if name == "abbrev_types.txt":
            assert abbreviation in lines
            lines = [line for line in lines if line != abbreviation]
        (english / name).write_text("\n".join(lines), encoding="utf-8")


def test_nltk_data_takes_precedence_and_the_bundled_copy_comes_last(tmp_path):
    text = "I met Dr. Smith today."
    write_tables_without_abbreviation(tmp_path / "user_nltk_data", "dr")
    user, nothing = tokenize_in_fresh_pythons([text], tmp_path, tmp_path / "user_nltk_data", tmp_path / "empty")
    assert user["found"].startswith(str(tmp_path / "user_nltk_data"))
    assert user["tokens"][0][1] == [["I", "met", "Dr", "."], ["Smith", "today", "."]]  # the user's tables: 2 sentences
    assert user["path"][-1] == BUNDLED_NLTK_DATA and user["path"].count(BUNDLED_NLTK_DATA) == 1
    assert nothing["found"].startswith(first_folder_with_punkt(nothing["path"]))
    if first_folder_with_punkt(nothing["path"]) == BUNDLED_NLTK_DATA:
        assert nothing["tokens"][0][1] == [["I", "met", "Dr.", "Smith", "today", "."]]  # released tables: "dr" known
