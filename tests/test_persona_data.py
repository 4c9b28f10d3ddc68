"""Persona extractor, data side: PersonaChat -> CSV, persona-string filters and format, authors' token ids."""
import os

import pandas as pd
import pytest

from helpers.paths import shared_path
from palkit.cli import UserError
from persona_extractor import process_bart_df
from persona_extractor.modeling import clean_up_spaces, decode_like_authors, encode_texts
from pal.dialogues import INPUT_TOKEN, format_persona
from persona_extractor.persona_text import (EXTRA_TOKENS, dialogue_inputs, extractor_input, filter_sentences,
                                            persona_from_generation)
from persona_extractor.personachat import read_personachat

VALID = "data/personachat/valid_both_original_no_cands.txt"

# The first dialogue of ConvAI2's valid_both_original, checked by hand against the file: the response column
# belongs to "your persona", the first column to "partner's persona".
FIRST_YOUR_CONTEXT = (
    "i am good , i just got off work and tired , i have two jobs . <sep> "
    "i rather read , i've read about 20 books this year . <sep> "
    "but a good movie is always good . <sep> "
    "i work in the movies as well . <sep> "
    "yes it is neat , i stunt double , it is so much fun and hard work . <sep> "
    "nice , i only have one parent so now i help out my mom . <sep> "
    "she raised me right , i am just like her . <sep> "
    "now that i am older home depot is my toy r us . </s>")
FIRST_YOUR_PERSONA = ("i read twenty books a year. <persona> i'm a stunt double as my second job. <persona> "
                      "i only eat kosher. <persona> i was raised in a single parent household. </s>")
FIRST_PARTNER_CONTEXT = (
    "hello what are doing today ? <sep> "
    "i just got done watching a horror movie <sep> "
    "wow ! i do love a good horror movie . loving this cooler weather <sep> "
    "yes ! my son is in junior high and i just started letting him watch them too <sep> "
    "neat ! ! i used to work in the human services field <sep> "
    "yes i bet you can get hurt . my wife works and i stay at home <sep> "
    "i bet she appreciates that very much . <sep> "
    "my dad was always busy working at home depot </s>")
FIRST_PARTNER_PERSONA = (
    "horror movies are my favorites. <persona> i'm a stay at home dad. <persona> "
    "my father used to work for home depot. <persona> i spent a decade working in the human services field. "
    "<persona> i have a son who is in junior high school. </s>")

TINY_PARLAI = ("1 your persona: i like cats.\n"
               "2 partner's persona: i am a nurse.\n"
               "3 partner's persona: i run marathons.\n"
               "4 hi there\thello , how are you ?\n"
               "5 good . i just ran 10 miles\twow ! i'd rather pet my cats .\n"
               "1 your persona: i love pizza.\n"
               "2 partner's persona: i have a dog.\n"
               "3 hey\thi !\n")


def run_process(tmp_path, files, extra=()):
    data_dir = tmp_path / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (data_dir / name).write_text(text)
    out = tmp_path / "out"
    process_bart_df.main(["--data_dir", str(data_dir), "--output_dir", str(out), "--splits_present", *extra])
    return out


def read_csv(path):
    return pd.read_csv(path, keep_default_na=False, dtype=str)


# --------------------------------------------------------------------------------------------- PersonaChat

def test_valid_split_gives_two_rows_per_dialogue_and_the_hand_checked_strings(tmp_path):
    source = shared_path(VALID)
    data_dir = tmp_path / "personachat"
    data_dir.mkdir()
    os.symlink(source, data_dir / "valid_both_original_no_cands.txt")
    out = tmp_path / "out"
    with pytest.raises(UserError, match="no train_both_original.txt .* --splits_present"):
        process_bart_df.main(["--data_dir", str(data_dir), "--output_dir", str(out)])  # no train split: an error
    process_bart_df.main(["--data_dir", str(data_dir), "--output_dir", str(out), "--splits_present"])
    assert sorted(os.listdir(out)) == ["valid.csv"]  # train and test are absent: skipped
    frame = read_csv(out / "valid.csv")
    assert len(frame) == 2000
    assert list(frame.columns) == ["Unnamed: 0", "context", "persona"]  # pandas' index column, as the authors'
    assert frame.loc[0, "context"] == FIRST_YOUR_CONTEXT
    assert frame.loc[0, "persona"] == FIRST_YOUR_PERSONA
    assert frame.loc[1, "context"] == FIRST_PARTNER_CONTEXT
    assert frame.loc[1, "persona"] == FIRST_PARTNER_PERSONA
    assert len(read_personachat(str(source))) == 1000


def test_candidate_columns_are_ignored_and_missing_splits_noted(tmp_path, capsys):
    with_cands = TINY_PARLAI.replace("how are you ?\n", "how are you ?\t\tbye|how are you ?\n")
    out_a = run_process(tmp_path / "a", {"train_both_original.txt": with_cands})
    out_b = run_process(tmp_path / "b", {"train_both_original_no_cands.txt": TINY_PARLAI})
    assert (out_a / "train.csv").read_bytes() == (out_b / "train.csv").read_bytes()
    assert "valid.csv skipped" in capsys.readouterr().out
    frame = read_csv(out_a / "train.csv")
    assert frame["context"].tolist() == [
        "hello , how are you ? <sep> wow ! i'd rather pet my cats . </s>",
        "hi there <sep> good . i just ran 10 miles </s>",
        "hi ! </s>",
        "hey </s>",
    ]
    assert frame["persona"].tolist() == ["i like cats. </s>", "i am a nurse. <persona> i run marathons. </s>",
                                         "i love pizza. </s>", "i have a dog. </s>"]


def test_eos_suffix_can_be_left_out(tmp_path):
    out = run_process(tmp_path, {"valid_both_original.txt": TINY_PARLAI}, ["--eos_suffix", ""])
    assert read_csv(out / "valid.csv")["persona"].tolist()[1] == "i am a nurse. <persona> i run marathons."


@pytest.mark.parametrize("text, line, message", [
    ("1 your persona: a.\n2 hello there\n", 2, "without a tab"),
    ("1 your persona: a.\nhello\tthere\n", 2, "expected '<number> <text>'"),
    ("1 your persona: a.\n3 hi\tthere\n", 2, "line number 3 where 2 was expected"),
    ("1 hi\tthere\n2 your persona: a.\n", 2, "persona line after"),
    ("1 your persona: a.\n2 partner's persona: b.\n1 hi\tyo\n", 1, "no utterance lines"),
])
def test_malformed_lines_name_file_and_line_and_write_nothing(tmp_path, text, line, message):
    with pytest.raises(UserError) as err:
        run_process(tmp_path, {"valid_both_original.txt": TINY_PARLAI, "test_both_original.txt": text})
    assert f"test_both_original.txt:{line}:" in str(err.value)
    assert message in str(err.value)
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_missing_data_dir_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such folder"):
        process_bart_df.main(["--data_dir", str(tmp_path / "nope")])
    with pytest.raises(UserError, match="none of"):
        process_bart_df.main(["--data_dir", str(tmp_path)])


# --------------------------------------------------------------------------------- persona strings + filters

def test_extractor_inputs_for_a_conversation():
    utterances = ["Hi  there", "I lost\nmy job", "I have two kids", "bye"]
    whole, prefixes = dialogue_inputs(utterances)
    assert whole == "Hi there <sep> I lost my job <sep> I have two kids <sep> bye</s>"
    assert prefixes == ["Hi there <sep> I lost my job <sep> I have two kids</s>", whole]
    assert dialogue_inputs(["a", "b"]) == ("a <sep> b</s>", [])
    assert dialogue_inputs([]) == (None, [])
    assert extractor_input(["x"]) == "x</s>"


def test_format_persona():
    assert format_persona(["i am a teacher.", "i have two kids."]) == \
        "<persona> i am a teacher. <persona> i have two kids. <input>"
    assert format_persona([]) == INPUT_TOKEN == "<input>"


def test_filters_on_crafted_sentences():
    words = lambda n: " ".join(["w"] * n)  # noqa: E731
    pieces = [" i like dogs. ", " My Favorite Color Is blue. ", "i love my favorite band.", "hello",
              words(2), words(25), words(26), "   ", "i have two kids."]
    assert filter_sentences(pieces) == ["i like dogs.", words(2), words(25), "i have two kids."]


def test_persona_from_generation_strips_special_tokens():
    raw = "</s><s> i am a teacher.  <persona>  my favorite band is queen. <persona> i have two kids.</s><pad><pad>"
    assert persona_from_generation(raw) == "<persona> i am a teacher. <persona> i have two kids. <input>"
    assert persona_from_generation("</s><s> ok</s>") == "<input>"
    assert persona_from_generation("</s><s></s>") == "<input>"


def test_authors_filter_quirks():
    # their loop removes from the list it iterates: the piece after a removed one is never checked
    pieces = [" my favorite band is x. ", " my favorite color is red. ", " i am a nurse. "]
    assert filter_sentences(pieces) == ["i am a nurse."]
    assert filter_sentences(pieces, authors_quirks=True) == ["my favorite color is red.", "i am a nurse."]
    # split(' ') on an unstripped piece counts the empty strings around it: " hello " has 3 "words"
    assert filter_sentences([" hello ", "x"], authors_quirks=True) == ["hello"]
    assert filter_sentences([" hello ", "x"]) == []
    long_piece = " " + " ".join(["w"] * 24) + " "  # 24 words + 2 empty strings = 26 > 25
    assert filter_sentences([long_piece], authors_quirks=True) == []
    assert filter_sentences([long_piece]) == [long_piece.strip()]


def test_clean_up_spaces_like_transformers_4():
    assert clean_up_spaces("i do n't like dogs , really . you 're ok ? i 'm sure ! it 's fine") == \
        "i don't like dogs, really. you're ok? i'm sure! it's fine"


# ------------------------------------------------------------------------------------------ token ids

# Made with transformers 4.24.0 and 4.30.2 (identical): BartTokenizer.from_pretrained(bart-base) +
# add_special_tokens({'additional_special_tokens': ['<persona>', '<sep>']}), then
# tokenizer(text, max_length=L, truncation=True, add_prefix_space=True).input_ids, as the authors call it.
AUTHORS_TEXTS = [
    "hello what are doing today ? <sep> i just got done watching a horror movie <sep> wow ! i do n't love it </s>",
    "i read twenty books a year. <persona> i'm a stunt double as my second job. </s>",
    "I feel so alone since my job ended<sep>hi  there </s>",
    "<persona> i am   tall",
    "I'm worried about my exams <sep> My mom says it's fine, but \u00e9 \u2014 \U0001f642 <sep> ok</s>",
]
AUTHORS_IDS_128 = [
    [0, 20760, 99, 32, 608, 452, 17487, 50266, 118, 95, 300, 626, 2494, 10, 8444, 1569, 50266, 34798, 27785, 939,
     109, 295, 75, 657, 24, 2, 2],
    [0, 939, 1166, 10328, 2799, 10, 76, 4, 50265, 118, 437, 10, 16391, 1457, 25, 127, 200, 633, 4, 2, 2],
    [0, 38, 619, 98, 1937, 187, 127, 633, 1249, 50266, 3592, 1437, 89, 2, 2],
    [0, 50265, 118, 524, 1437, 1437, 6764, 2],
    [0, 38, 437, 3915, 59, 127, 15734, 50266, 2387, 3795, 161, 24, 18, 2051, 6, 53, 7935, 93, 45868, 50266, 1638, 2,
     2],
]
AUTHORS_IDS_12 = [
    [0, 20760, 99, 32, 608, 452, 17487, 50266, 118, 95, 300, 2],
    [0, 939, 1166, 10328, 2799, 10, 76, 4, 50265, 118, 437, 2],
    [0, 38, 619, 98, 1937, 187, 127, 633, 1249, 50266, 3592, 2],
    [0, 50265, 118, 524, 1437, 1437, 6764, 2],
    [0, 38, 437, 3915, 59, 127, 15734, 50266, 2387, 3795, 161, 2],
]


@pytest.fixture(scope="module")
def real_bart_tokenizer():
    from transformers import BartTokenizer
    from persona_extractor.modeling import add_extractor_tokens
    return add_extractor_tokens(BartTokenizer.from_pretrained(str(shared_path("models/bart-base"))))


def test_token_ids_match_the_authors_tokenizer(real_bart_tokenizer):
    tok = real_bart_tokenizer
    assert tok.convert_tokens_to_ids(EXTRA_TOKENS) == [50265, 50266]
    assert encode_texts(tok, AUTHORS_TEXTS, 128) == AUTHORS_IDS_128
    assert encode_texts(tok, AUTHORS_TEXTS, 12) == AUTHORS_IDS_12


def test_decoding_matches_the_authors_decode(real_bart_tokenizer):
    # expected strings from transformers 4.24 decode(ids, clean_up_tokenization_spaces=True)
    tok = real_bart_tokenizer
    ids = [2, 0, 939, 524, 10, 3254, 479, 1437, 50265, 939, 109, 295, 75, 101, 3678, 2157, 2, 1, 1]
    assert decode_like_authors(tok, ids) == "</s><s> i am a teacher.  <persona>  i don't like dogs feeling</s><pad><pad>"
    assert decode_like_authors(tok, [2, 0, 118, 50265, 118, 50266, 939, 2]) == "</s><s>i <persona> i <sep>  i</s>"
    assert persona_from_generation(decode_like_authors(tok, ids)) == \
        "<persona> i am a teacher. <persona> i don't like dogs feeling <input>"


def test_tiny_tokenizer_fallback_without_shared(tmp_path):
    """The self-made tokenizer the tests use when ../shared is absent encodes and decodes like BART's."""
    from transformers import BartTokenizer
    from persona_extractor.modeling import add_extractor_tokens
    from persona_extractor.tiny_bart import make_tiny_bart_tokenizer
    tok = add_extractor_tokens(BartTokenizer.from_pretrained(make_tiny_bart_tokenizer(str(tmp_path))))
    ids = encode_texts(tok, ["i am a nurse <persona> i like my job </s>"], 64)[0]
    assert ids[0] == tok.bos_token_id and ids[-2:] == [tok.eos_token_id] * 2
    assert tok.convert_tokens_to_ids("<persona>") in ids and tok.unk_token_id not in ids
    assert persona_from_generation(decode_like_authors(tok, [2, 0] + ids[1:-2] + [2])) == \
        "<persona> i am a nurse <persona> i like my job <input>"
