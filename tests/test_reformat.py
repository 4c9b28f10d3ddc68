"""Stage 2 (codes/_reformat/process.py): schemas, normalisation, the seed-13 split, persona_list semantics, and
one-line errors that leave no files behind. The script is run as a subprocess, exactly as users run it."""
import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from helpers.paths import REPO_ROOT, shared_path

SCRIPT = REPO_ROOT / "codes" / "_reformat" / "process.py"
OUTPUTS = ("train.txt", "valid.txt", "test.txt")
STRATEGY_CYCLE = ["Question", "Reflection of feelings", "Providing Suggestions", "Others"]


# ------------------------------------------------------------------------------------------------ helpers

def run_reformat(*args, cwd):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=str(cwd),
                          capture_output=True, text=True, timeout=120)


def read_lines(directory, name):
    return (Path(directory) / name).read_text(encoding="utf-8").splitlines()


def read_records(directory, name):
    return [json.loads(line) for line in read_lines(directory, name)]


def seed13_split(items):
    """The authors' recipe written literally (global random.seed), as the oracle for the script's split."""
    state = random.getstate()
    try:
        items = list(items)
        random.seed(13)
        random.shuffle(items)
    finally:
        random.setstate(state)
    n = int(0.1 * len(items))
    return {"train.txt": items[3 * n:], "valid.txt": items[:n] + items[2 * n:3 * n], "test.txt": items[n:2 * n]}


def original_dialogue(i, seeker_turns=3, persona=False):
    """A small ESConv-schema dialogue with messy whitespace; seeker and supporter alternate, seeker first."""
    turns = []
    for k in range(seeker_turns):
        turns.append({"speaker": "seeker", "annotation": {}, "content": f"  i am seeker {i}\tsaying\n\n {k}  "})
        turns.append({"speaker": "supporter", "annotation": {"strategy": STRATEGY_CYCLE[k % 4], "feedback": "5"},
                      "content": f"supporter   {i} reply {k} caf\u00e9"})
    dialogue = {"experience_type": "Current Experience", "emotion_type": f"emotion{i % 3}",
                "problem_type": f"problem{i % 2}", "situation": f"  situation  {i} ", "survey_score": {},
                "dialog": turns}
    if persona:
        dialogue["persona"] = f"<persona> i am person {i}. <input>"
        dialogue["persona_list"] = [f"<persona> inferred {i} after {k + 3}  seeker turns. <input>"
                                    for k in range(seeker_turns - 2)]
    return dialogue


def to_json_lines_schema(dialogue):
    """The same dialogue in the reformatted turn schema ({text, speaker: usr/sys, strategy})."""
    converted = {key: value for key, value in dialogue.items() if key != "dialog"}
    converted["dialog"] = []
    for turn in dialogue["dialog"]:
        if turn["speaker"] == "seeker":
            converted["dialog"].append({"text": turn["content"], "speaker": "usr"})
        else:
            converted["dialog"].append({"text": turn["content"], "speaker": "sys",
                                        "strategy": turn["annotation"]["strategy"]})
    return converted


def write_array(path, dialogues):
    path.write_text(json.dumps(dialogues, indent=2), encoding="utf-8")
    return path


def write_lines(path, dialogues):
    path.write_text("".join(json.dumps(d) + "\n" for d in dialogues), encoding="utf-8")
    return path


def norm(text):
    return " ".join(text.split())


def expected_record(dialogue):
    """What the reformat must write for one ESConv-schema dialogue without persona (independent oracle)."""
    dialog = []
    for turn in dialogue["dialog"]:
        if turn["speaker"] == "seeker":
            dialog.append({"text": norm(turn["content"]), "speaker": "usr"})
        else:
            dialog.append({"text": norm(turn["content"]), "speaker": "sys",
                           "strategy": turn["annotation"]["strategy"]})
    return {"emotion_type": dialogue["emotion_type"], "problem_type": dialogue["problem_type"],
            "situation": dialogue["situation"], "dialog": dialog}


def assert_rejected(result, out_dir, *fragments):
    """Exit 2, exactly one stderr line starting with 'error:', no traceback, and nothing written."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:"), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    leftovers = sorted(p.name for p in Path(out_dir).iterdir()) if Path(out_dir).exists() else []
    assert not [name for name in leftovers if name in OUTPUTS or name.startswith(".tmp-")], leftovers
    return lines[0]


# ----------------------------------------------------------------------------------- the full ESConv corpus

@pytest.fixture(scope="module")
def esconv_output(tmp_path_factory):
    esconv = shared_path("data/esconv/ESConv.json")
    out = tmp_path_factory.mktemp("esconv_out")
    result = run_reformat("--add_persona", "False", "--input_file", esconv, "--output_dir", out, cwd=out)
    assert result.returncode == 0, result.stderr
    return esconv, out, result.stdout


def test_full_esconv_sizes_printed_and_written(esconv_output):
    _, out, stdout = esconv_output
    for name, size in (("train", 910), ("valid", 260), ("test", 130)):
        assert f"{name} {size} " in stdout
        assert len(read_lines(out, f"{name}.txt")) == size
    assert "emotion anxiety=354" in stdout


def test_full_esconv_splits_partition_the_corpus_as_seed13_shuffle(esconv_output):
    esconv, out, _ = esconv_output
    original = json.loads(esconv.read_text(encoding="utf-8"))
    expected_lines = [json.dumps(expected_record(d)) for d in original]
    written = {name: read_lines(out, name) for name in OUTPUTS}
    everything = sum(written.values(), [])
    # A partition: every dialogue exactly once across the three files.
    assert len(set(everything)) == len(everything) == 1300
    assert Counter(everything) == Counter(expected_lines)
    # ... and exactly the authors' split, in the shuffled order.
    assert written == seed13_split(expected_lines)


def test_full_esconv_second_run_is_byte_identical(esconv_output, tmp_path):
    esconv, out, _ = esconv_output
    result = run_reformat("--add_persona", "False", "--input_file", esconv, "--output_dir", tmp_path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in OUTPUTS:
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes()


def test_json_lines_schema_of_same_corpus_gives_identical_files(esconv_output, tmp_path):
    # The public split (JSON lines, usr/sys turns) was produced independently of our reader; ESConv.json in
    # ../shared holds the same 1,300 dialogues in train+valid+test order, so both readers must agree byte for byte.
    _, out, _ = esconv_output
    parts = [shared_path(f"data/esconv/hf_split/{s}.json").read_text(encoding="utf-8").strip("\n")
             for s in ("train", "valid", "test")]
    combined = tmp_path / "esconv_lines.json"
    combined.write_text("\n".join(parts) + "\n", encoding="utf-8")
    result = run_reformat("--add_persona", "False", "--input_file", combined, "--output_dir", tmp_path / "o",
                          cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "(JSON lines)" in result.stdout
    for name in OUTPUTS:
        assert (tmp_path / "o" / name).read_bytes() == (out / name).read_bytes()


# ------------------------------------------------------------------------------- small self-made samples

def test_record_format_normalises_utterances_only(tmp_path):
    source = write_array(tmp_path / "in.json", [original_dialogue(0)])
    result = run_reformat("--add_persona", "False", "--input_file", source, "--output_dir", tmp_path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (record,) = read_records(tmp_path, "train.txt")  # 1 dialogue: n = 0, everything in train
    assert read_lines(tmp_path, "valid.txt") == read_lines(tmp_path, "test.txt") == []
    assert list(record) == ["emotion_type", "problem_type", "situation", "dialog"]
    assert record["situation"] == "  situation  0 "  # not an utterance: unchanged
    assert record["dialog"][0] == {"text": "i am seeker 0 saying 0", "speaker": "usr"}
    assert record["dialog"][1] == {"text": "supporter 0 reply 0 caf\u00e9", "speaker": "sys", "strategy": "Question"}
    assert list(record["dialog"][1]) == ["text", "speaker", "strategy"]
    assert "caf\\u00e9" in read_lines(tmp_path, "train.txt")[0]  # json.dumps defaults, as the authors write


def test_sample_split_follows_seed13_recipe(tmp_path):
    dialogues = [original_dialogue(i, seeker_turns=1 + i % 3) for i in range(37)]  # n = 3
    source = write_array(tmp_path / "in.json", dialogues)
    result = run_reformat("--add_persona", "False", "--input_file", source, "--output_dir", tmp_path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "train 28 " in result.stdout and "valid 6 " in result.stdout and "test 3 " in result.stdout
    expected = seed13_split([json.dumps(expected_record(d)) for d in dialogues])
    assert {name: read_lines(tmp_path, name) for name in OUTPUTS} == expected


def test_both_schemas_give_identical_files_on_sample(tmp_path):
    dialogues = [original_dialogue(i, persona=True) for i in range(25)]
    array_in = write_array(tmp_path / "array.json", dialogues)
    lines_in = write_lines(tmp_path / "lines.json", [to_json_lines_schema(d) for d in dialogues])
    for flag in ("False", "True"):
        a = run_reformat("--add_persona", flag, "--input_file", array_in, "--output_dir", tmp_path / f"a{flag}",
                         cwd=tmp_path)
        b = run_reformat("--add_persona", flag, "--input_file", lines_in, "--output_dir", tmp_path / f"b{flag}",
                         cwd=tmp_path)
        assert a.returncode == b.returncode == 0, a.stderr + b.stderr
        for name in OUTPUTS:
            assert (tmp_path / f"a{flag}" / name).read_bytes() == (tmp_path / f"b{flag}" / name).read_bytes()


def test_sample_second_run_is_byte_identical(tmp_path):
    source = write_lines(tmp_path / "in.json", [to_json_lines_schema(original_dialogue(i)) for i in range(23)])
    for out in ("one", "two"):
        result = run_reformat("--add_persona", "False", "--input_file", source, "--output_dir", tmp_path / out,
                              cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    for name in OUTPUTS:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_default_reads_esconv_json_from_cwd_and_writes_there(tmp_path):
    dialogues = [original_dialogue(i) for i in range(12)]
    write_array(tmp_path / "ESConv.json", dialogues)
    write_array(tmp_path / "PESConv.json", [original_dialogue(100 + i, persona=True) for i in range(12)])
    result = run_reformat("--add_persona", "False", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert {name: read_lines(tmp_path, name) for name in OUTPUTS} == \
        seed13_split([json.dumps(expected_record(d)) for d in dialogues])


def test_default_reads_pesconv_json_from_cwd_with_add_persona(tmp_path):
    write_array(tmp_path / "ESConv.json", [original_dialogue(i) for i in range(12)])
    write_array(tmp_path / "PESConv.json", [original_dialogue(100 + i, persona=True) for i in range(12)])
    result = run_reformat("--add_persona", "True", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = sum((read_records(tmp_path, name) for name in OUTPUTS), [])
    assert sorted(r["persona"] for r in records) == sorted(f"<persona> i am person {100 + i}. <input>"
                                                           for i in range(12))


def test_persona_default_keeps_inferred_persona_list(tmp_path):
    dialogues = [original_dialogue(i, seeker_turns=2 + i % 4, persona=True) for i in range(8)]
    source = write_array(tmp_path / "PESConv.json", dialogues)
    result = run_reformat("--add_persona", "True", "--input_file", source, "--output_dir", tmp_path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    by_persona = {r["persona"]: r for r in read_records(tmp_path, "train.txt")}  # 8 dialogues: n = 0, all train
    for d in dialogues:
        record = by_persona[d["persona"]]
        assert list(record) == ["emotion_type", "problem_type", "persona", "persona_list", "situation", "dialog"]
        assert record["persona_list"] == d["persona_list"]  # inferred strings, untouched (double space kept)
        assert record["dialog"] == expected_record(d)["dialog"]


def test_persona_raw_utterances_option_reproduces_released_bug(tmp_path):
    dialogues = [original_dialogue(i, seeker_turns=2 + i % 4, persona=True) for i in range(8)]
    source = write_array(tmp_path / "PESConv.json", dialogues)
    result = run_reformat("--add_persona", "True", "--persona_list_source", "raw_utterances",
                          "--input_file", source, "--output_dir", tmp_path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    by_persona = {r["persona"]: r for r in read_records(tmp_path, "train.txt")}
    for d in dialogues:
        seeker_texts = [norm(t["content"]) for t in d["dialog"] if t["speaker"] == "seeker"]
        assert by_persona[d["persona"]]["persona_list"] == seeker_texts  # ALL seeker utterances, normalised


def test_help_documents_raw_utterances_bug(tmp_path):
    result = run_reformat("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "raw_utterances" in result.stdout and "bug" in result.stdout


def test_persona_list_of_exactly_the_needed_length_is_accepted(tmp_path, blender_tokenizer_dir):
    """One persona_list entry per seeker turn from the 3rd on, no more: the dialogues are written with their lists as
    given, and PAL's featurizer reads the output without error, giving the supporter turns after the seeker's 1st and
    2nd turns no persona and the later ones entries 0, 1, 2 (the last entry is used)."""
    from pal.config import build_tokenizer, load_config
    from pal.inputter import Featurizer, settings_for
    dialogue = original_dialogue(0, seeker_turns=5, persona=True)  # needs 5 - 2 = 3 entries
    two_turns = original_dialogue(1, seeker_turns=2, persona=True)  # needs none
    assert len(dialogue["persona_list"]) == 3 and two_turns["persona_list"] == []
    source = write_array(tmp_path / "in.json", [dialogue, two_turns])
    result = run_reformat("--add_persona", "True", "--input_file", source, "--output_dir", tmp_path, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = {r["persona"]: (name, r) for name in OUTPUTS for r in read_records(tmp_path, name)}
    name, record = written[dialogue["persona"]]
    assert record["persona_list"] == dialogue["persona_list"] and record["dialog"] == expected_record(dialogue)["dialog"]
    assert written[two_turns["persona"]][1]["persona_list"] == []
    featurizer = Featurizer(build_tokenizer(load_config("strat"), blender_tokenizer_dir),
                            settings_for(load_config("strat"), "strat"))
    by_persona = {}
    for file_name in {name, written[two_turns["persona"]][0]}:
        for features in featurizer.file_features(str(tmp_path / file_name), "inference", with_meta=True):
            by_persona.setdefault(features[0].meta["response"].split()[1], features)  # "supporter <i> reply ..."
    five, two = by_persona["0"], by_persona["1"]
    personas = [f.meta["persona"] for f in five]
    assert len(five) == 5 and personas[:2] == ["", ""] and all(personas[2:]) and len(set(personas[2:])) == 3
    assert [f.meta["persona"] for f in two] == ["", ""]
    assert five[2].persona_input_ids != five[4].persona_input_ids


# ---------------------------------------------------------------------------------------------- bad input

def reject(tmp_path, dialogues_or_text, *extra_args, add_persona="False"):
    source = tmp_path / "bad.json"
    if isinstance(dialogues_or_text, str):
        source.write_text(dialogues_or_text, encoding="utf-8")
    else:
        write_array(source, dialogues_or_text)
    out = tmp_path / "out"
    return run_reformat("--add_persona", add_persona, "--input_file", source, "--output_dir", out, *extra_args,
                        cwd=tmp_path), out


def test_error_invalid_json_array_names_line_and_column(tmp_path):
    text = json.dumps([original_dialogue(0)], indent=2).replace('"speaker": "supporter"', '"speaker" "supporter"', 1)
    result, out = reject(tmp_path, text)
    line = assert_rejected(result, out, "bad.json", "invalid JSON", "line ", "column ")
    bad_line = next(i for i, l in enumerate(text.splitlines(), 1) if '"speaker" "supporter"' in l)
    assert f"line {bad_line}," in line


def test_error_invalid_json_lines_names_dialogue_and_line(tmp_path):
    good = [json.dumps(to_json_lines_schema(original_dialogue(i))) for i in range(3)]
    text = good[0] + "\n\n" + good[1] + "\n" + good[2][:-1] + "\n"  # blank line 2; line 4 is truncated
    result, out = reject(tmp_path, text)
    assert_rejected(result, out, "bad.json", "dialogue 2 (line 4, column", "invalid JSON")


def test_error_missing_dialog(tmp_path):
    dialogues = [original_dialogue(i) for i in range(3)]
    del dialogues[1]["dialog"]
    result, out = reject(tmp_path, dialogues)
    assert_rejected(result, out, "bad.json: dialogue 1:", "missing 'dialog'")


def test_error_unknown_speaker(tmp_path):
    dialogues = [original_dialogue(i) for i in range(3)]
    dialogues[2]["dialog"][3]["speaker"] = "bot"
    result, out = reject(tmp_path, dialogues)
    assert_rejected(result, out, "bad.json: dialogue 2: turn 3:", "unknown speaker 'bot'")


def test_error_supporter_turn_without_strategy(tmp_path):
    dialogues = [original_dialogue(i) for i in range(3)]
    dialogues[0]["dialog"][1]["annotation"] = {"feedback": "4"}
    result, out = reject(tmp_path, dialogues)
    assert_rejected(result, out, "bad.json: dialogue 0: turn 1:", "supporter turn without a strategy")


def test_error_sys_turn_without_strategy_in_json_lines(tmp_path):
    dialogues = [to_json_lines_schema(original_dialogue(i)) for i in range(3)]
    del dialogues[1]["dialog"][5]["strategy"]
    result, out = reject(tmp_path, "".join(json.dumps(d) + "\n" for d in dialogues))
    assert_rejected(result, out, "bad.json: dialogue 1: turn 5:", "supporter turn without a strategy")


def test_error_strategy_outside_the_eight(tmp_path):
    dialogues = [original_dialogue(i) for i in range(3)]
    dialogues[1]["dialog"][3]["annotation"]["strategy"] = "Empathy"
    result, out = reject(tmp_path, dialogues)
    assert_rejected(result, out, "bad.json: dialogue 1: turn 3:", "'Empathy'", "Restatement or Paraphrasing")


def test_error_empty_dialogue(tmp_path):
    dialogues = [original_dialogue(i) for i in range(3)]
    dialogues[2]["dialog"] = []
    result, out = reject(tmp_path, dialogues)
    assert_rejected(result, out, "bad.json: dialogue 2:", "empty dialogue")


def test_error_add_persona_on_data_without_persona(tmp_path):
    dialogues = [original_dialogue(i, persona=True) for i in range(3)]
    del dialogues[1]["persona_list"]
    result, out = reject(tmp_path, dialogues, add_persona="True")
    assert_rejected(result, out, "bad.json: dialogue 1:", "'persona_list'", "--add_persona False")


def test_error_persona_list_shorter_than_seeker_turns(tmp_path):
    dialogues = [original_dialogue(i, seeker_turns=5, persona=True) for i in range(3)]
    dialogues[2]["persona_list"] = dialogues[2]["persona_list"][:2]  # 5 seeker turns need 3
    result, out = reject(tmp_path, dialogues, add_persona="True")
    assert_rejected(result, out, "bad.json: dialogue 2:", "persona_list has 2 entries", "at least 3")


def test_error_missing_input_file(tmp_path):
    result = run_reformat("--add_persona", "False", "--input_file", tmp_path / "nope.json",
                          "--output_dir", tmp_path / "out", cwd=tmp_path)
    assert_rejected(result, tmp_path / "out", "nope.json", "no such file")


def test_error_missing_default_input_in_cwd(tmp_path):
    result = run_reformat("--add_persona", "False", cwd=tmp_path)
    assert_rejected(result, tmp_path, "ESConv.json", "no such file", str(tmp_path))


def test_error_raw_utterances_without_add_persona(tmp_path):
    result, out = reject(tmp_path, [original_dialogue(0)], "--persona_list_source", "raw_utterances")
    assert_rejected(result, out, "--persona_list_source only applies with --add_persona True")


def test_failed_run_leaves_previous_outputs_untouched(tmp_path):
    out = tmp_path / "out"
    good = write_array(tmp_path / "good.json", [original_dialogue(i) for i in range(15)])
    assert run_reformat("--add_persona", "False", "--input_file", good, "--output_dir", out,
                        cwd=tmp_path).returncode == 0
    before = {name: (out / name).read_bytes() for name in OUTPUTS}
    dialogues = [original_dialogue(i) for i in range(15)]
    dialogues[14]["dialog"][0]["speaker"] = "someone"  # only the LAST dialogue is bad
    bad = write_array(tmp_path / "bad.json", dialogues)
    result = run_reformat("--add_persona", "False", "--input_file", bad, "--output_dir", out, cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.startswith("error:")
    assert {name: (out / name).read_bytes() for name in OUTPUTS} == before
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)
