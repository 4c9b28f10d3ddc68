"""get_cos_similarity.py with a tiny random BERT built here (the real SimCSE weights are not available)."""
import json

import numpy as np
import pytest

from helpers.paths import load_script
from palkit.cli import UserError

get_cos_similarity = load_script("codes/get_cos_similarity.py")

WORDS = "i am a teacher have two kids lost my job sad feel you so sorry to hear that . , dog".split()


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory):
    from pal.tiny import make_tiny_bert_dir
    return make_tiny_bert_dir(str(tmp_path_factory.mktemp("tiny_bert")), words=WORDS)


def _gen_json(tmp_path, records):
    path = tmp_path / "gen.json"
    path.write_text(json.dumps(records))
    return path


def _records():
    return [
        {"response": "i am so sorry to hear that .", "generation": "i am a teacher .", "persona": "i am a teacher ."},
        {"response": "you have two kids", "generation": "sad", "persona": "i lost my job , i have a dog ."},
        {"response": "that is sad .", "generation": "i feel you , so sad .", "persona": "i have two kids ."},
    ]


def _pooler(model_dir, text):
    import torch
    from transformers import AutoModel, AutoTokenizer
    tokenizer, model = AutoTokenizer.from_pretrained(model_dir), AutoModel.from_pretrained(model_dir).eval()
    with torch.no_grad():
        return model(**tokenizer(text, return_tensors="pt")).pooler_output[0].double().numpy()


def _cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_default_encoder_is_sup_simcse(tmp_path):
    (tmp_path / "gen.json").write_text("[]")
    args = get_cos_similarity.parse_args(["--input_file", str(tmp_path / "gen.json")])
    assert args.model == "princeton-nlp/sup-simcse-bert-base-uncased"


def test_identical_texts_score_one_and_values_match_unbatched(tmp_path, tiny_bert_dir):
    path = _gen_json(tmp_path, _records())
    # batch_size 2: texts of different lengths share a padded batch
    get_cos_similarity.main(["--input_file", str(path), "--model", tiny_bert_dir, "--batch_size", "2",
                             "--device", "cpu"])
    per_example = json.loads((tmp_path / "cos_similarity_list.json").read_text())
    summary = json.loads((tmp_path / "cos_similarity.json").read_text())
    assert per_example[0]["generation"] == pytest.approx(1.0, abs=1e-6)  # persona == generation
    # independent computation: one text at a time, cosine in numpy
    for record, got in zip(_records(), per_example):
        persona = _pooler(tiny_bert_dir, record["persona"])
        assert got["generation"] == pytest.approx(_cos(persona, _pooler(tiny_bert_dir, record["generation"])),
                                                  abs=1e-5)
        assert got["response"] == pytest.approx(_cos(persona, _pooler(tiny_bert_dir, record["response"])), abs=1e-5)
    assert abs(per_example[1]["generation"]) < 0.99  # different texts really differ with this encoder
    assert summary["cos-sim-generation"] == pytest.approx(np.mean([s["generation"] for s in per_example]))
    assert summary["num_examples"] == 3 and summary["model"] == tiny_bert_dir
    assert "simcse_score" not in json.loads(path.read_text())[0]  # the input is left alone by default


def test_annotate_input_adds_scores(tmp_path, tiny_bert_dir):
    path = _gen_json(tmp_path, _records())
    get_cos_similarity.main(["--input_file", str(path), "--model", tiny_bert_dir, "--device", "cpu",
                             "--annotate_input", "True"])
    assert set(json.loads(path.read_text())[2]["simcse_score"]) == {"response", "generation"}


def test_clear_errors(tmp_path, tiny_bert_dir):
    records = _records()
    del records[1]["persona"]
    with pytest.raises(UserError, match="record 1 has no 'persona'"):
        get_cos_similarity.main(["--input_file", str(_gen_json(tmp_path, records)), "--model", tiny_bert_dir])
    with pytest.raises(UserError, match="no_such_encoder: no such folder.*pass --model DIR"):
        get_cos_similarity.main(["--input_file", str(_gen_json(tmp_path, _records())),
                                 "--model", str(tmp_path / "no_such_encoder")])


def test_empty_personas_are_counted_and_optionally_excluded(tmp_path, tiny_bert_dir, capsys):
    records = _records() + [{"response": "so sad", "generation": "i am a teacher .", "persona": ""},
                            {"response": "i feel you", "generation": "sad", "persona": "<input>"}]
    path = _gen_json(tmp_path, records)
    get_cos_similarity.main(["--input_file", str(path), "--model", tiny_bert_dir, "--device", "cpu"])
    assert "warning: " in capsys.readouterr().err
    per_example = json.loads((tmp_path / "cos_similarity_list.json").read_text())
    included = json.loads((tmp_path / "cos_similarity.json").read_text())
    assert included["num_empty_persona"] == 2 and included["empty_persona"] == "included"
    assert included["num_examples"] == 5  # the authors' mean: every record
    assert included["cos-sim-generation"] == pytest.approx(np.mean([s["generation"] for s in per_example]))
    get_cos_similarity.main(["--input_file", str(path), "--model", tiny_bert_dir, "--device", "cpu",
                             "--exclude_empty_persona", "True"])
    excluded = json.loads((tmp_path / "cos_similarity.json").read_text())
    assert excluded["num_examples"] == 3 and excluded["num_empty_persona"] == 2
    assert excluded["cos-sim-generation"] == pytest.approx(np.mean([s["generation"] for s in per_example[:3]]))
    assert excluded["cos-sim-generation"] == pytest.approx(included["nonempty"]["cos-sim-generation"])


def test_a_hub_name_without_network_fails_without_asking_the_hub(monkeypatch):
    from metric import simcse
    from palkit import hub
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not hub.hub_reachable()
    calls = []
    real = simcse._from_pretrained
    monkeypatch.setattr(simcse, "_from_pretrained", lambda *a, **kw: calls.append(kw) or real(*a, **kw))
    with pytest.raises(UserError, match="not in the local hub cache, and the hub is unreachable"):
        simcse.load_encoder("nobody-here/no-such-encoder", "cpu")
    assert calls == []  # the local hub cache was looked up by name: nothing loaded, no download, no retries


def test_the_two_persona_counts_name_their_units_and_say_how_they_differ(capsys):
    """Reformat/prepare count persona_list entries (one per seeker turn from the 3rd on); Cos-Sim counts gen.json
    records (one per supporter reply, the first ones before any persona): each line says which it counts and why a
    result folder's count is higher."""
    from metric.simcse import summarize_similarities
    from pal.completeness import report_empty_personas
    report_empty_personas([{"persona_list": ["i lost my job.", "i have a dog."]}], "test.txt")
    entries = capsys.readouterr().out
    assert entries.startswith("personas: 0 of 2 persona_list entries of test.txt are empty (0%)")
    assert "after one seeker turn, from the seeker's 3rd turn on" in entries and "more records" in entries
    records = [{"persona": p} for p in ("", "", "i lost my job.", "i have a dog.")]
    summarize_similarities(records, [{"generation": 0.1, "response": 0.2}] * 4)
    warning = capsys.readouterr().err
    assert "2 of 4 records have an empty persona; a record is one supporter reply" in warning
    assert "before the seeker's 3rd turn have no persona (persona_list starts there)" in warning
