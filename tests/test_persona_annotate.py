"""ESConv -> PESConv annotation: persona_list lengths, resume equivalence, container/schema kept, process.py
accepts the output, errors."""
import importlib.util
import json
import os

import pytest

from conftest import REPO_ROOT, SHARED, shared_path
from extractor import PersonaExtractor
from extractor_annotation import annotate_file, chunk_inputs, partial_path
from pal.cli import UserError
import annotate_esconv


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def turn(speaker, text, strategy="Question"):
    if speaker == "seeker":
        return {"speaker": "seeker", "annotation": {}, "content": text}
    return {"speaker": "supporter", "annotation": {"strategy": strategy}, "content": text}


def conversation(seeker_texts, lead_supporter=True):
    dialog = [turn("supporter", "hello, how can i help?")] if lead_supporter else []
    for text in seeker_texts:
        dialog += [turn("seeker", text), turn("supporter", "i see. tell me more.", "Reflection of feelings")]
    return {"experience_type": "Current Experience", "emotion_type": "sadness", "problem_type": "job crisis",
            "situation": "lost job", "survey_score": {}, "dialog": dialog}


SEEKER_TEXTS = ["i lost my job", "i have two kids", "my wife is worried", "i feel  so sad", "i like to run",
                "i am a teacher", "my dog is old"]
CRAFTED = [conversation(SEEKER_TEXTS[:n], lead_supporter=n % 2 == 0) for n in (0, 1, 2, 3, 5, 7, 4, 3)]


@pytest.fixture(scope="module")
def tiny_bart(tmp_path_factory):
    from tiny_bart import make_tiny_bart_dir
    real = SHARED / "models" / "bart-base"
    return make_tiny_bart_dir(str(tmp_path_factory.mktemp("tiny_bart")), seed=3,
                              tokenizer_dir=str(real) if real.is_dir() else None)


@pytest.fixture(scope="module")
def extractor(tiny_bart):
    ex = PersonaExtractor.from_pretrained(tiny_bart, device="cpu")
    ex.decoding.num_beams, ex.decoding.max_length = 2, 12  # keep CPU time small; the defaults are 10 / 128
    return ex


def write_json(path, data):
    with open(path, "w") as f:
        json.dump(data, f)
    return str(path)


SETTINGS = {"model": "tiny", "chunk_size": 3}


def seeker_turns(conv):
    return sum(t["speaker"] in ("seeker", "usr") for t in conv["dialog"])


def test_persona_list_has_one_entry_per_seeker_turn_from_the_third(extractor, tmp_path):
    source = shared_path("data/esconv/ESConv.json")
    with open(source) as f:
        few = json.load(f)[:2]
    for conv in few:  # keep only the first 4 seeker turns so CPU generation stays quick
        seen, kept = 0, []
        for t in conv["dialog"]:
            seen += t["speaker"] == "seeker"
            if seen <= 4:
                kept.append(t)
        conv["dialog"] = kept
    data = few + CRAFTED
    records = annotate_file(extractor, write_json(tmp_path / "ESConv.json", data), str(tmp_path / "PESConv.json"),
                            SETTINGS, chunk_size=3, batch_size=4, progress=False)
    assert len(records) == len(data)
    for original, record in zip(data, records):
        n = seeker_turns(original)
        assert len(record["persona_list"]) == max(0, n - 2)
        assert {k: v for k, v in record.items() if k not in ("persona", "persona_list")} == original
        for p in [record["persona"]] + record["persona_list"]:
            assert p == "<input>" or (p.startswith("<persona> ") and p.endswith(" <input>"))
        if n:
            # the last persona_list entry and persona come from the same input: generated once, so equal
            assert not record["persona_list"] or record["persona_list"][-1] == record["persona"]
        else:
            assert record["persona"] == "<input>"


def test_each_distinct_input_is_generated_once_per_chunk():
    texts = chunk_inputs([["a", "b", "c"], ["a", "b", "c"], ["a", "b", "c", "d"]])
    assert texts == ["a <sep> b <sep> c</s>", "a <sep> b <sep> c <sep> d</s>"]


def test_interrupted_annotation_resumes_to_the_same_file(extractor, tmp_path):
    source = write_json(tmp_path / "ESConv.json", CRAFTED)
    full = tmp_path / "full.json"
    annotate_file(extractor, source, str(full), SETTINGS, chunk_size=3, batch_size=4, progress=False)
    assert any(p != "<input>" for r in json.loads(full.read_text()) for p in r["persona_list"]), \
        "the tiny model should produce some non-empty personas, else the comparison proves little"

    out = tmp_path / "PESConv.json"

    def interrupt(n_done):
        if n_done >= 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        annotate_file(extractor, source, str(out), SETTINGS, chunk_size=3, batch_size=4, progress=False,
                      on_chunk_done=interrupt)
    assert not out.exists()
    with open(partial_path(str(out)), "a") as f:
        f.write('{"index": 3, "seeker_dig')  # a line cut off by the kill
    calls = []
    annotate_file(extractor, source, str(out), SETTINGS, chunk_size=3, batch_size=4, progress=False, resume=True,
                  on_chunk_done=calls.append)
    assert calls == [6, 8]  # the first chunk was not redone
    assert out.read_bytes() == full.read_bytes()
    assert not os.path.exists(partial_path(str(out)))


def test_resume_after_a_kill_mid_chunk_redoes_that_chunk_whole(extractor, tmp_path):
    source = write_json(tmp_path / "ESConv.json", CRAFTED)
    full = tmp_path / "full.json"
    annotate_file(extractor, source, str(full), SETTINGS, chunk_size=3, batch_size=4, progress=False)
    out = tmp_path / "PESConv.json"

    def interrupt(n_done):
        if n_done >= 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        annotate_file(extractor, source, str(out), SETTINGS, chunk_size=3, batch_size=4, progress=False,
                      on_chunk_done=interrupt)
    part = partial_path(str(out))
    lines = open(part).read().splitlines(keepends=True)
    with open(part, "w") as f:  # header + conversations 0-3: the kill flushed one entry of the second chunk
        f.writelines(lines[:5])
    calls = []
    annotate_file(extractor, source, str(out), SETTINGS, chunk_size=3, batch_size=4, progress=False, resume=True,
                  on_chunk_done=calls.append)
    assert calls == [6, 8]  # the second chunk was redone whole, the first was kept
    assert out.read_bytes() == full.read_bytes()


def test_a_leftover_partial_is_not_discarded_without_resume(extractor, tmp_path):
    source = write_json(tmp_path / "ESConv.json", CRAFTED)
    out = str(tmp_path / "PESConv.json")
    with pytest.raises(KeyboardInterrupt):
        annotate_file(extractor, source, out, SETTINGS, chunk_size=3, progress=False,
                      on_chunk_done=lambda n: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(UserError, match="--resume"):
        annotate_file(extractor, source, out, SETTINGS, chunk_size=3, progress=False)


def test_resume_refuses_other_settings_or_data(extractor, tmp_path):
    source = write_json(tmp_path / "ESConv.json", CRAFTED)
    out = str(tmp_path / "PESConv.json")

    def interrupt(n_done):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        annotate_file(extractor, source, out, SETTINGS, chunk_size=3, progress=False, on_chunk_done=interrupt)
    with pytest.raises(UserError, match="other settings"):
        annotate_file(extractor, source, out, {**SETTINGS, "model": "other"}, chunk_size=3, progress=False,
                      resume=True)
    changed = write_json(tmp_path / "changed.json", [conversation(["x"])] + CRAFTED[1:])
    with pytest.raises(UserError, match="conversation 0 does not match"):
        annotate_file(extractor, changed, out, SETTINGS, chunk_size=3, progress=False, resume=True)


def load_process_module():
    path = REPO_ROOT / "codes" / "_reformat" / "process.py"
    if not path.exists():
        pytest.skip(f"needs {path}")
    spec = importlib.util.spec_from_file_location("reformat_process", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_output_feeds_process_py_and_json_lines_stay_json_lines(tiny_bart, tmp_path):
    source = write_json(tmp_path / "ESConv.json", CRAFTED)
    out = tmp_path / "PESConv.json"
    annotate_esconv.main(["--model_dir", tiny_bart, "--input_file", source, "--output_file", str(out),
                          "--num_beams", "2", "--max_length", "8", "--no_progress", "--device", "cpu"])
    records = json.loads(out.read_text())
    assert [len(r["persona_list"]) for r in records] == [max(0, seeker_turns(c) - 2) for c in CRAFTED]

    process = load_process_module()
    process.main(["--add_persona", "True", "--input_file", str(out), "--output_dir", str(tmp_path / "split")])
    lines = [json.loads(x) for name in ("train", "valid", "test")
             for x in (tmp_path / "split" / f"{name}.txt").read_text().splitlines()]
    assert len(lines) == len(CRAFTED) and all("persona_list" in x for x in lines)

    # the reformatted JSON-lines schema (usr/sys, text) is accepted and kept
    reformatted = tmp_path / "reformatted.txt"
    reformatted.write_text("".join(json.dumps(x) + "\n" for x in lines))
    out_lines = tmp_path / "annotated.txt"
    annotate_esconv.main(["--model_dir", tiny_bart, "--input_file", str(reformatted), "--output_file",
                          str(out_lines), "--num_beams", "2", "--max_length", "8", "--no_progress"])
    annotated = [json.loads(x) for x in out_lines.read_text().splitlines()]
    assert [len(a["persona_list"]) for a in annotated] == [max(0, seeker_turns(x) - 2) for x in lines]
    assert [a["dialog"] for a in annotated] == [x["dialog"] for x in lines]


def test_bad_input_is_one_clear_error(tiny_bart, tmp_path):
    bad = conversation(["hi"])
    bad["dialog"][1]["speaker"] = "helper"
    source = write_json(tmp_path / "bad.json", CRAFTED[:2] + [bad])
    with pytest.raises(UserError, match=r"conversation 2: turn 1: unknown speaker 'helper'"):
        annotate_esconv.main(["--model_dir", tiny_bart, "--input_file", source, "--output_file",
                              str(tmp_path / "o.json")])
    assert not (tmp_path / "o.json").exists()
    with pytest.raises(UserError, match="no such file"):
        annotate_esconv.main(["--model_dir", tiny_bart, "--input_file", str(tmp_path / "none.json")])
    with pytest.raises(UserError, match="not found"):
        annotate_esconv.main(["--model_dir", str(tmp_path / "nomodel"), "--input_file", source])


def test_max_dialogues_annotates_the_first_n_as_a_file_of_those_n_would(extractor, tmp_path):
    source = write_json(tmp_path / "ESConv.json", CRAFTED)
    first5 = write_json(tmp_path / "first5.json", CRAFTED[:5])
    annotate_file(extractor, first5, str(tmp_path / "reference.json"), SETTINGS, chunk_size=3, batch_size=4,
                  progress=False)
    out = tmp_path / "PESConv.json"
    with pytest.raises(KeyboardInterrupt):  # stopped after the first chunk, then resumed with the same N
        annotate_file(extractor, source, str(out), SETTINGS, chunk_size=3, batch_size=4, progress=False,
                      max_dialogues=5, on_chunk_done=lambda n: (_ for _ in ()).throw(KeyboardInterrupt))
    calls = []
    annotate_file(extractor, source, str(out), SETTINGS, chunk_size=3, batch_size=4, progress=False,
                  max_dialogues=5, resume=True, on_chunk_done=calls.append)
    assert calls == [5]  # only the rest of the first 5, the first chunk kept
    assert out.read_bytes() == (tmp_path / "reference.json").read_bytes()


def test_max_dialogues_cli_says_partial_and_resume_keeps_n(tiny_bart, tmp_path, capsys):
    source = write_json(tmp_path / "ESConv.json", CRAFTED)
    out = tmp_path / "PESConv.json"
    argv = ["--model_dir", tiny_bart, "--input_file", source, "--output_file", str(out), "--num_beams", "2",
            "--max_length", "8", "--no_progress", "--device", "cpu", "--chunk_size", "2"]
    annotate_esconv.main([*argv, "--max_dialogues", "3"])
    printed = capsys.readouterr().out
    assert "the first 3 of 8 conversations" in printed and "3 conversations (partial" in printed
    assert len(json.loads(out.read_text())) == 3
    with open(partial_path(str(out)), "w") as f:  # a run with N=3 that was interrupted: its settings header only
        f.write(json.dumps({"settings": annotate_esconv.settings_of(
            annotate_esconv.build_parser().parse_args([*argv, "--max_dialogues", "3"]))}) + "\n")
    with pytest.raises(UserError, match="other settings \\(max_dialogues\\)"):
        annotate_esconv.main([*argv, "--max_dialogues", "4", "--resume"])
    with pytest.raises(UserError, match="--max_dialogues must be at least 1"):
        annotate_esconv.main([*argv, "--max_dialogues", "0"])
