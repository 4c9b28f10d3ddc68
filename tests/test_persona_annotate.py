"""ESConv -> PESConv annotation: persona_list lengths, resume equivalence, N processes equal to one, container/schema
kept, process.py accepts the output, errors."""
import json
import os
import subprocess
import sys

import pytest

from helpers.extractor import make_tiny_bart
from helpers.paths import REPO_ROOT, load_script, shared_path
from palkit.cli import UserError
from persona_extractor import annotate_esconv
from persona_extractor.extractor import PersonaExtractor
from persona_extractor.extractor_annotation import annotate_file, chunk_inputs, partial_path


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
    """This module's own tiny BART (another seed than conftest's)."""
    return make_tiny_bart(tmp_path_factory.mktemp("tiny_bart"), seed=3)


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


def annotate_as_rank(extractor, source, out, rank, **options):
    """One process of a 2-process run, called in this process: the barrier is a no-op, so rank 1 must run first."""
    return annotate_file(extractor, source, out, SETTINGS, chunk_size=2, batch_size=3, progress=False, rank=rank,
                         world_size=2, barrier=lambda: None, **options)


def test_sharded_parts_merge_into_the_one_process_file_and_resume(extractor, tmp_path):
    source = write_json(tmp_path / "ESConv.json", CRAFTED)
    full = tmp_path / "full.json"
    annotate_file(extractor, source, str(full), SETTINGS, chunk_size=2, batch_size=3, progress=False)
    out = str(tmp_path / "PESConv.json")

    def interrupt(n_done):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # rank 1 saves its first chunk (conversations 2, 3), then dies
        annotate_as_rank(extractor, source, out, 1, on_chunk_done=interrupt)
    calls = []
    assert annotate_as_rank(extractor, source, out, 1, resume=True, on_chunk_done=calls.append) is None
    assert calls == [4]  # chunks 1 and 3 of 4: the first was kept, the second done now
    assert not os.path.exists(out)
    records = annotate_as_rank(extractor, source, out, 0)
    assert open(out, "rb").read() == full.read_bytes() and len(records) == len(CRAFTED)
    assert not [p for p in os.listdir(tmp_path) if ".partial" in p]


def test_a_part_of_another_process_count_is_not_taken_for_this_one(extractor, tmp_path):
    source = write_json(tmp_path / "ESConv.json", CRAFTED)
    out = str(tmp_path / "PESConv.json")
    with pytest.raises(KeyboardInterrupt):
        annotate_as_rank(extractor, source, out, 1, on_chunk_done=lambda n: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(UserError, match=r"partial-1-of-2: .*another number of processes"):
        annotate_file(extractor, source, out, SETTINGS, chunk_size=2, progress=False, resume=True)


@pytest.mark.slow
def test_two_torchrun_processes_write_the_file_of_one(tiny_bart, tmp_path):
    source = write_json(tmp_path / "ESConv.json", CRAFTED)
    common = ["--model_dir", tiny_bart, "--input_file", source, "--num_beams", "2", "--max_length", "8",
              "--chunk_size", "2", "--batch_size", "3", "--no_progress", "--device", "cpu"]
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    annotate_esconv.main(common + ["--output_file", str(one)])
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             str(REPO_ROOT / "persona_extractor" / "annotate_esconv.py"), *common,
                             "--output_file", str(two)],
                            capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert two.read_bytes() == one.read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["ESConv.json", "one.json", "two.json"]


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


def test_cli_output_feeds_process_py_and_json_lines_stay_json_lines(tiny_bart, tmp_path):
    source = write_json(tmp_path / "ESConv.json", CRAFTED)
    out = tmp_path / "PESConv.json"
    annotate_esconv.main(["--model_dir", tiny_bart, "--input_file", source, "--output_file", str(out),
                          "--num_beams", "2", "--max_length", "8", "--no_progress", "--device", "cpu"])
    records = json.loads(out.read_text())
    assert [len(r["persona_list"]) for r in records] == [max(0, seeker_turns(c) - 2) for c in CRAFTED]

    process = load_script("codes/_reformat/process.py")
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
    with pytest.raises(UserError, match="other settings \\(max_dialogues\\b"):
        annotate_esconv.main([*argv, "--max_dialogues", "4", "--resume"])
    with pytest.raises(UserError, match="--max_dialogues"):
        annotate_esconv.main([*argv, "--max_dialogues", "0"])


def test_a_partial_pesconv_is_named_by_reformat_prepare_and_refused_by_the_recipe(tiny_bart, blender_tokenizer_dir,
                                                                                  tmp_path, capsys):
    import shutil
    from helpers.paths import fake_venv
    from pal.completeness import partial_description
    source = write_json(tmp_path / "ESConv.json", CRAFTED)
    pesconv = tmp_path / "DATA" / "PESConv.json"
    annotate_esconv.main(["--model_dir", tiny_bart, "--input_file", source, "--output_file", str(pesconv),
                          "--num_beams", "2", "--max_length", "8", "--no_progress", "--device", "cpu",
                          "--max_dialogues", "6"])
    what = f"the first 6 of 8 dialogues of {source} (annotate_esconv.py --max_dialogues 6)"
    assert partial_description(pesconv) == what
    assert "personas: " in capsys.readouterr().out  # the share of empty personas is reported
    process = load_script("codes/_reformat/process.py")
    process.main(["--add_persona", "True", "--input_file", str(pesconv), "--output_dir", str(tmp_path / "split")])
    out, err = capsys.readouterr()
    assert f"note: {pesconv} is partial: {what}" in err and "partial: " in out
    train = tmp_path / "split" / "train.txt"
    assert what in partial_description(train)
    prepare = load_script("codes/prepare.py")
    prepared = prepare.main(["--config_name", "strat", "--inputter_name", "strat", "--train_input_file", str(train),
                             "--pretrained_model_path", blender_tokenizer_dir, "--output_dir", str(tmp_path / "prep"),
                             "--pbar", "False"])
    out, err = capsys.readouterr()
    assert f"note: {train} is partial" in err and "(partial: " in out
    meta = json.loads((tmp_path / "prep" / "features" / "meta.json").read_text())
    assert what in meta["partial"]
    # the recipe: its dry run names the partial file; a real run refuses it unless ALLOW_PARTIAL=1
    root = tmp_path / "clone"
    shutil.copytree(REPO_ROOT / "RUN", root / "RUN")
    for name in ("requirements.txt", "requirements-lock.txt", "pyproject.toml"):
        shutil.copy(REPO_ROOT / name, root / name)
    fake_venv(root / ".venv", root)
    (root / "DATA").mkdir()
    for name in ("PESConv.json", "PESConv.json.subset.json"):
        shutil.copy(tmp_path / "DATA" / name, root / "DATA" / name)
    (root / "Blenderbot_small-90M").mkdir()
    (root / "Blenderbot_small-90M" / "model.safetensors").write_bytes(b"weights")
    env = {k: v for k, v in os.environ.items() if k not in ("PAL_VENV", "ALLOW_PARTIAL")}
    recipe = ["bash", "RUN/reproduce_table3.sh"]
    dry = subprocess.run([*recipe, "--dry_run"], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0 and f"# missing: data: DATA/PESConv.json: partial: {what}" in dry.stdout, dry.stderr
    assert "# device: " in dry.stdout
    real = subprocess.run(recipe, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert real.returncode == 2 and "partial" in real.stderr.strip().splitlines()[-1], real.stderr
    assert "ALLOW_PARTIAL=1" in real.stderr and not (root / "DATA" / "pesconv").exists()
    allowed = subprocess.run([*recipe, "--dry_run"], cwd=root, env=env | {"ALLOW_PARTIAL": "1"}, capture_output=True,
                             text=True, timeout=300)
    assert "(ALLOW_PARTIAL=1: used anyway)" in allowed.stdout and "# missing" not in allowed.stdout, allowed.stdout
    annotate_esconv.main(["--model_dir", tiny_bart, "--input_file", source, "--output_file", str(pesconv),
                          "--num_beams", "2", "--max_length", "8", "--no_progress", "--device", "cpu"])
    assert partial_description(pesconv) is None and not os.path.exists(f"{pesconv}.subset.json")
