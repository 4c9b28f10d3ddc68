"""Featurization (docs/reproduction.md#featurization) and batching: pal.inputter and codes/prepare.py.

The central check: the fast featurizer (each dialogue's history tokenized once, ids assembled) gives exactly the ids
of the straightforward form the authors use (re-tokenize the joined history string for every example), on real
ESConv dialogues and on a self-made sample with awkward texts, for PAL's 12-token vocabulary and Blender-Joint's
10-token one (where "</s> <s>" is plain text). The reference (pal.reference_featurization) is written independently
of pal.inputter, from the documented rule.
"""
import json
import pickle
import random

import pytest
import torch

from helpers.paths import load_script, shared_path
from palkit.cli import UserError
from pal.config import build_tokenizer, load_config
from pal.reference_featurization import reference_strat, reference_vanilla
from pal.inputter import (BucketBatchSampler, Featurizer, collate, inference_batches, read_dialogues,
                          settings_for, validation_batches)


# ------------------------------------------------------------------------------------------------ helpers

@pytest.fixture(scope="module")
def toker(blender_tokenizer_dir):
    return build_tokenizer(load_config("strat"), blender_tokenizer_dir)


@pytest.fixture(scope="module")
def real_toker(real_blender_tokenizer_dir):
    return build_tokenizer(load_config("strat"), real_blender_tokenizer_dir)


@pytest.fixture(scope="module")
def joint_toker(real_blender_tokenizer_dir):
    """Blender-Joint's tokenizer: the authors' 10 added tokens (no "</s>", "<s>")."""
    return build_tokenizer(load_config("strat_no_persona"), real_blender_tokenizer_dir)


def featurizer(toker, config="strat", inputter="strat", **kw):
    return Featurizer(toker, settings_for(load_config(config), inputter, **kw))


def ids(toker, text):
    return toker(text)["input_ids"]


def assert_same(fast, reference):
    assert len(fast) == len(reference)
    for f, r in zip(fast, reference):
        for key, value in r.items():
            assert getattr(f, key) == value, (key, r["turn_index"])


def turn(speaker, text, strategy="Question"):
    return {"text": text, "speaker": speaker, **({"strategy": strategy} if speaker == "sys" else {})}


def from_esconv(conversation):
    """Original ESConv schema -> reformatted turns (what codes/_reformat/process.py writes, without the split)."""
    dialog = [{"text": t["content"], "speaker": "usr" if t["speaker"] == "seeker" else "sys",
               **({"strategy": t["annotation"]["strategy"]} if t["speaker"] == "supporter" else {})}
              for t in conversation["dialog"]]
    seeker = [t["text"] for t in dialog if t["speaker"] == "usr"]
    # A persona_list in PESConv's shape, so that persona selection is exercised on real dialogues too.
    persona_list = [f"<persona> {' '.join(seeker[k].split()[:6])} . <input>" for k in range(2, len(seeker))]
    return {"dialog": dialog, "persona_list": persona_list, "persona": persona_list[-1] if persona_list else "<input>"}


AWKWARD_DIALOGUE = {"dialog": [
    turn("sys", "Hello! I'm here.", "Others"),               # a first supporter turn: never an example
    turn("usr", "  hi   there\n I'm SAD :( ...  "),
    turn("sys", "Why?? Tell me <s> more", "Question"),        # an added-token string inside the text
    turn("sys", "[Question]I see.</s>", "Reflection of feelings"),
    turn("usr", ""),                                           # an empty utterance
    turn("usr", "my job... it's gone;  __end__ no__unk__ ü ñ 😢"),
    turn("sys", "That's tough.", "Affirmation and Reassurance"),
    turn("usr", "<persona> <input> [Others]"),
    turn("sys", " ".join(["word"] * 80), "Providing Suggestions"),
], "persona_list": ["<persona> i lost my job. <input>", "<input>", "<persona> i am sad. <persona> x <input>"],
    "persona": "<persona> all of it. <input>"}


# ------------------------------------------------------------------------------------------------ fast == straightforward

def real_sample():
    conversations = json.loads(shared_path("data/esconv/ESConv.json").read_text(encoding="utf-8"))
    return [from_esconv(c) for c in conversations[::25]]  # 52 dialogues spread over the corpus


def test_fast_equals_straightforward_on_real_esconv(real_toker):
    sample = real_sample()
    for stage in ("training", "inference"):
        strat, vanilla = featurizer(real_toker), featurizer(real_toker, "vanilla", "vanilla")
        for data in sample:
            assert_same(strat.dialogue_features(data, stage), reference_strat(data, real_toker, stage))
            assert_same(vanilla.dialogue_features(data, stage), reference_vanilla(data, real_toker, stage))
    # truncation on real data: a short max_input_length cuts nearly every context
    short = featurizer(real_toker, max_input_length=40, max_decoder_input_length=8)
    for data in sample[:10]:
        assert_same(short.dialogue_features(data, "training"),
                    reference_strat(data, real_toker, "training", max_in=40, max_dec=8))


def test_blender_joint_fast_equals_straightforward_on_real_esconv(joint_toker):
    """The 10-token vocabulary: "</s> <s>" is BPE text there, merged with the words beside it."""
    sample = real_sample()
    for stage in ("training", "inference"):
        joint = featurizer(joint_toker, "strat_no_persona")
        for data in sample:
            assert_same(joint.dialogue_features(data, stage), reference_strat(data, joint_toker, stage))
    short = featurizer(joint_toker, "strat_no_persona", max_input_length=40, max_decoder_input_length=8)
    for data in sample[:10]:
        assert_same(short.dialogue_features(data, "training"),
                    reference_strat(data, joint_toker, "training", max_in=40, max_dec=8))


@pytest.mark.parametrize("stage", ["training", "validation", "inference"])
def test_fast_equals_straightforward_on_awkward_texts(toker, stage):
    for max_in, max_dec in ((512, 50), (30, 5)):
        assert_same(featurizer(toker, max_input_length=max_in, max_decoder_input_length=max_dec)
                    .dialogue_features(AWKWARD_DIALOGUE, stage),
                    reference_strat(AWKWARD_DIALOGUE, toker, stage, max_in, max_dec))
        assert_same(featurizer(toker, "vanilla", "vanilla", max_input_length=max_in, max_decoder_input_length=max_dec)
                    .dialogue_features(AWKWARD_DIALOGUE, stage),
                    reference_vanilla(AWKWARD_DIALOGUE, toker, stage, max_in, max_dec))
    both = featurizer(toker, use_all_persona=True).dialogue_features(AWKWARD_DIALOGUE, stage)
    assert_same(both, reference_strat(AWKWARD_DIALOGUE, toker, stage, use_all_persona=True))


@pytest.mark.parametrize("stage", ["training", "inference"])
def test_blender_joint_fast_equals_straightforward_on_awkward_texts(joint_toker, stage):
    for max_in, max_dec in ((512, 50), (30, 5)):
        assert_same(featurizer(joint_toker, "strat_no_persona", max_input_length=max_in,
                               max_decoder_input_length=max_dec).dialogue_features(AWKWARD_DIALOGUE, stage),
                    reference_strat(AWKWARD_DIALOGUE, joint_toker, stage, max_in, max_dec))


# ------------------------------------------------------------------------------------------------ exact ids

def test_exact_ids_of_a_hand_written_dialogue(real_toker):
    t = real_toker
    data = {"dialog": [turn("usr", "I lost my job."), turn("sys", "How do you feel?", "Question"),
                       turn("usr", "Sad."), turn("sys", "That sounds hard.", "Reflection of feelings")]}
    first, second = featurizer(t).dialogue_features(data, "training")
    assert first.input_ids == ids(t, "Persona:I lost my job.</s> <s>System:")
    assert second.input_ids == ids(t, "Persona:I lost my job.</s> <s>System:[Question]How do you feel?</s> <s>"
                                      "Persona:Sad.</s> <s>System:")
    # the real vocabulary: added tokens after the 54,944 BlenderBot-small ids, strategies last
    assert ids(t, "</s> <s>") == [54944, 54945] and ids(t, "<input>") == [54947]
    assert ids(t, "[Question]") == [54948] and ids(t, "[Reflection of feelings]") == [54950] and len(t) == 54956
    assert first.labels == [54948] + ids(t, "How do you feel?") + [2]
    assert second.labels == [54950] + ids(t, "That sounds hard.") + [2]
    assert second.decoder_input_ids == [1] + second.labels[:-1]
    assert (first.strat_id, second.strat_id) == (0, 2)
    assert first.persona_input_ids == second.persona_input_ids == [54947]  # fewer than 3 seeker turns: "<input>"
    vanilla = featurizer(t, "vanilla", "vanilla").dialogue_features(data, "training")[1]
    assert vanilla.input_ids == ids(t, "I lost my job.") + [2] + ids(t, "How do you feel?") + [2] + ids(t, "Sad.")
    assert vanilla.labels == ids(t, "That sounds hard.") + [2] and vanilla.strat_id is None


def test_exact_ids_with_the_blender_joint_vocabulary(joint_toker):
    """The authors' strat_no_persona.json adds 10 tokens (vocabulary 54,954); their inputter tokenizes the joined
    history, in which "</s> <s>" is text: 46 context ids for this 4-turn dialogue (measured on this dialogue)."""
    t = joint_toker
    data = {"dialog": [turn("usr", "I lost my job."), turn("sys", "How do you feel?", "Question"),
                       turn("usr", "Sad."), turn("sys", "That sounds hard.", "Reflection of feelings")]}
    first, second = featurizer(t, "strat_no_persona").dialogue_features(data, "training")
    history = "Persona:I lost my job.</s> <s>System:[Question]How do you feel?</s> <s>Persona:Sad.</s> <s>System:"
    assert second.input_ids == ids(t, history) and len(second.input_ids) == 46
    assert first.input_ids == ids(t, "Persona:I lost my job.</s> <s>System:")
    assert len(t) == 54956 - 2 and ids(t, "<persona>") == [54944] and ids(t, "<input>") == [54945]
    assert ids(t, "[Question]") == [54946] and ids(t, "[Others]") == [54953]
    assert all(i < t.vocab_size for i in ids(t, "</s> <s>"))  # no added token: BPE pieces
    # per-utterance assembly would be wrong: BPE merges across the joins ("job.</s>", "<s>System:")
    per_utterance = ids(t, "Persona:I lost my job.") + ids(t, "</s> <s>") + ids(t, "System:")
    assert per_utterance != first.input_ids
    assert (first.labels, second.labels) == ([54946] + ids(t, "How do you feel?") + [2],
                                             [54948] + ids(t, "That sounds hard.") + [2])
    assert (first.strat_id, second.strat_id) == (0, 2)


def test_the_12_token_blender_joint_option_keeps_pals_vocabulary(real_blender_tokenizer_dir):
    t = build_tokenizer(load_config("strat_no_persona_12tok"), real_blender_tokenizer_dir)
    assert len(t) == 54956 and ids(t, "</s> <s>") == [54944, 54945] and ids(t, "[Question]") == [54948]
    assert not settings_for(load_config("strat_no_persona_12tok"), "strat").persona_in_batches


def test_truncation_keeps_the_last_context_ids_and_cuts_labels(toker):
    data = {"dialog": [turn("usr", "one two three four five six seven eight nine ten"),
                       turn("sys", "a b c d e f g h", "Others")]}
    full = featurizer(toker).dialogue_features(data, "training")[0]
    cut = featurizer(toker, max_input_length=5, max_decoder_input_length=3).dialogue_features(data, "training")[0]
    assert cut.input_ids == full.input_ids[-5:]
    assert cut.labels == full.labels[:4] and len(cut.decoder_input_ids) == 4  # strategy + 3 reply tokens
    vanilla = featurizer(toker, "vanilla", "vanilla", max_decoder_input_length=3).dialogue_features(data, "training")[0]
    assert len(vanilla.labels) == 3  # zcj's vanilla cuts to max_decoder_input_length (no strategy token)


# ------------------------------------------------------------------------------------------------ persona and emission

def seeker_heavy_dialogue():
    dialog = []
    for k in range(1, 6):  # after seeker turn k, one supporter turn
        dialog += [turn("usr", f"seeker says {k}"), turn("sys", f"supporter answers {k}", "Question")]
    return {"dialog": dialog, "persona_list": ["<persona> p three <input>", "<persona> p four <input>",
                                               "<persona> p five <input>"], "persona": "<persona> all <input>"}


def test_persona_is_selected_by_the_number_of_seeker_turns(toker):
    data = seeker_heavy_dialogue()
    features = featurizer(toker).dialogue_features(data, "training")
    expected = ["<input>", "<input>", "<persona> p three <input>", "<persona> p four <input>", "<persona> p five <input>"]
    assert [f.persona_input_ids for f in features] == [ids(toker, p) for p in expected]
    everywhere = featurizer(toker, use_all_persona=True).dialogue_features(data, "training")
    assert all(f.persona_input_ids == ids(toker, "<persona> all <input>") for f in everywhere)
    without = featurizer(toker).dialogue_features({"dialog": data["dialog"]}, "training")
    assert all(f.persona_input_ids == ids(toker, "<input>") for f in without)
    with pytest.raises(UserError, match="persona_list has 2 entries"):
        featurizer(toker).dialogue_features(dict(data, persona_list=data["persona_list"][:2]), "training")


def test_examples_emitted_at_every_supporter_turn_when_training_only_after_seeker_otherwise(toker):
    data = {"dialog": [turn("sys", "hello", "Others"), turn("usr", "hi"), turn("sys", "a", "Question"),
                       turn("sys", "b", "Information"), turn("sys", "c", "Others"), turn("usr", "ok"),
                       turn("sys", "d", "Question"), turn("usr", "bye")]}
    for name in ("strat", "vanilla"):
        f = featurizer(toker, name if name == "strat" else "vanilla", name)
        assert [x.turn_index for x in f.dialogue_features(data, "training")] == [2, 3, 4, 6]
        assert [x.turn_index for x in f.dialogue_features(data, "validation")] == [2, 6]
        assert [x.turn_index for x in f.dialogue_features(data, "inference")] == [2, 6]


# ------------------------------------------------------------------------------------------------ batches

def test_collate_pads_context_and_persona_to_one_length(toker):
    features = featurizer(toker).dialogue_features(seeker_heavy_dialogue(), "training")
    longest_context = max(len(f.input_ids) for f in features)
    features[0].persona_input_ids = list(range(5, 15 + longest_context))  # a persona longer than every context
    batch = collate(features, toker.pad_token_id, persona_in_batches=True)
    width = longest_context + 10
    assert batch["input_ids"].shape == batch["persona_input_ids"].shape == (5, width)
    for row, f in enumerate(features):
        assert batch["input_ids"][row, :len(f.input_ids)].tolist() == f.input_ids
        assert batch["attention_mask"][row].tolist() == [1] * len(f.input_ids) + [0] * (width - len(f.input_ids))
        assert batch["persona_attention_mask"][row].sum() == len(f.persona_input_ids)
        assert batch["labels"][row].tolist() == f.labels + [-100] * (batch["labels"].shape[1] - len(f.labels))
        assert batch["decoder_input_ids"][row, len(f.labels):].eq(toker.pad_token_id).all()
    assert all(t.dtype == torch.long for t in batch.values())
    assert batch["strat_id"].tolist() == [0] * 5
    plain = collate(features, toker.pad_token_id, persona_in_batches=False)
    assert "persona_input_ids" not in plain and plain["input_ids"].shape[1] == max(len(f.input_ids) for f in features)


def test_persona_tensors_only_for_the_pal_config(toker):
    assert settings_for(load_config("strat"), "strat").persona_in_batches
    assert not settings_for(load_config("strat_no_persona"), "strat").persona_in_batches
    assert not settings_for(load_config("vanilla"), "vanilla").persona_in_batches
    with pytest.raises(UserError, match="strategy tokens"):
        settings_for(load_config("vanilla"), "strat")
    with pytest.raises(UserError, match="unknown --inputter_name"):
        settings_for(load_config("strat"), "nope")


def dialogues_with_sizes(sizes):
    """Fake per-dialogue feature lists: dialogue d has sizes[d] one-token examples holding (d, i)."""
    from pal.inputter import Feature
    return [[Feature([d + 5, i + 5], [1, 7], [7, 2], [9], 0, dialogue_index=d, meta={"post": f"{d}.{i}"})
             for i in range(n)] for d, n in enumerate(sizes)]


def test_validation_batches_hold_whole_dialogues_in_file_order():
    per_dialogue = dialogues_with_sizes([3, 2, 6, 1, 1, 1, 2])
    batches = list(validation_batches(per_dialogue, 4, 0, persona_in_batches=True))
    # pending 3, +2 = 5 >= 4 -> batch; 6 -> batch; 1, 1, 1, +2 = 5 -> batch
    assert [b["input_ids"].shape[0] for b in batches] == [5, 6, 5]
    order = [(int(r[0]) - 5, int(r[1]) - 5) for b in batches for r in b["input_ids"]]
    assert order == [(d, i) for d, n in enumerate([3, 2, 6, 1, 1, 1, 2]) for i in range(n)]
    assert [b["input_ids"].shape[0] for b in validation_batches(dialogues_with_sizes([1, 1]), 4, 0, True)] == [2]


def test_inference_batches_are_exact_size_consecutive_with_meta():
    per_dialogue = dialogues_with_sizes([3, 2, 6])
    batches = list(inference_batches(per_dialogue, 4, 0, persona_in_batches=False))
    assert [b["input_ids"].shape[0] for b in batches] == [4, 4, 3]
    assert [s for b in batches for s in b["meta"]["sample_id"]] == [0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2]
    assert batches[0]["meta"]["post"] == ["0.0", "0.1", "0.2", "1.0"]
    assert set(batches[0]["meta"]) == {"sample_id", "post", "response", "persona"}


def test_inference_meta_is_what_gen_json_shows(toker):
    data = seeker_heavy_dialogue()
    data["dialog"][4]["text"] = "  seeker   says 3 "
    strat = featurizer(toker).dialogue_features(data, "inference", with_meta=True, dialogue_index=7)
    assert strat[2].meta["post"] == "seeker says 3"  # the previous turn's normalised text (PAL's last_text)
    assert strat[2].meta["response"] == "supporter answers 3"
    assert strat[2].meta["persona"] == toker.decode(ids(toker, "<persona> p three <input>"), skip_special_tokens=True)
    assert "persona" not in strat[2].meta["persona"] and strat[0].meta["persona"] == ""
    assert strat[2].dialogue_index == 7
    vanilla = featurizer(toker, "vanilla", "vanilla").dialogue_features(data, "inference", with_meta=True)
    assert vanilla[2].meta["post"] == toker.decode(ids(toker, "seeker says 3"))  # zcj: decoded context[-1]


def test_bucket_sampler_is_the_authors_order():
    lengths = [random.Random(1).randint(5, 60) for _ in range(10)] + [random.Random(i).randint(5, 60) for i in range(47)]
    sampler = BucketBatchSampler(lengths, batch_size=4, seed=13, bucket_factor=3)
    random.seed(13)  # the authors: global random after set_seed(13), state carried over epochs
    for _ in range(3):
        ids_ = list(range(len(lengths)))
        random.shuffle(ids_)
        buckets = [sorted(ids_[i:i + 12], key=lambda j: lengths[j], reverse=True) for i in range(0, len(ids_), 12)]
        expected = [b[i:i + 4] for b in buckets for i in range(0, len(b), 4)]
        expected = [b for b in expected if len(b) == 4]
        random.shuffle(expected)
        got = sampler.epoch_batches()
        assert got == expected and len(got) == sampler.batches_per_epoch() == 57 // 4
    assert sampler.nominal_batches_per_epoch() == 15


# ------------------------------------------------------------------------------------------------ files and errors

def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("content, message", [
    ([""], "no dialogues"),
    (['{"dialog": []}', "{not json"], r"dialogue 1 \(line 2, column 2\): invalid JSON"),
    (['[{"dialog": []}]'], "JSON array"),
    (['{"dialog": [{"text": "x", "speaker": "bot"}]}'], "line 1: turn 0: expected a turn with speaker"),
    (['{"dialog": [{"text": "x", "speaker": "usr"}, {"text": "y", "speaker": "sys", "strategy": "Hug"}]}'],
     "line 1: turn 1: supporter strategy 'Hug'"),
    (['{"turns": []}'], "no 'dialog' list"),
])
def test_bad_data_files_give_one_line_errors(tmp_path, toker, content, message):
    path = write_lines(tmp_path / "bad.txt", content)
    with pytest.raises(UserError, match=message) as e:
        featurizer(toker).file_features(path, "training")
    assert "\n" not in str(e.value) and "bad.txt" in str(e.value)


def test_missing_file_and_strategy_free_vanilla(tmp_path, toker):
    with pytest.raises(UserError, match="no such file"):
        read_dialogues(str(tmp_path / "absent.txt"))
    path = write_lines(tmp_path / "v.txt", ['{"dialog": [{"text": "x", "speaker": "usr"}, {"text": "y", "speaker": "sys"}]}'])
    assert len(featurizer(toker, "vanilla", "vanilla").file_features(path, "training")[0]) == 1


def test_prepare_writes_the_features_and_refuses_bad_input(tmp_path, blender_tokenizer_dir, toker, capsys):
    from pal.prepared import load_prepared
    prepare = load_script("codes/prepare.py")
    path = write_lines(tmp_path / "train.txt", [json.dumps(AWKWARD_DIALOGUE), json.dumps(seeker_heavy_dialogue())])
    out = tmp_path / "prepared"
    prepare.main(["--config_name", "strat", "--inputter_name", "strat", "--train_input_file", path,
                  "--max_input_length", "64", "--pretrained_model_path", blender_tokenizer_dir,
                  "--output_dir", str(out), "--pbar", "False"])
    with open(out / "features" / "data.pkl", "rb") as f:
        stored = pickle.load(f)
    meta = json.loads((out / "features" / "meta.json").read_text())
    expected = [f for d in featurizer(toker, max_input_length=64).file_features(path, "training") for f in d]
    assert [(f.input_ids, f.persona_input_ids, f.labels) for f in stored] == \
           [(f.input_ids, f.persona_input_ids, f.labels) for f in expected]
    assert meta["n_examples"] == len(stored) and meta["max_input_length"] == 64 and meta["vocab_size"] == len(toker)
    features, _ = load_prepared(str(out), {"max_input_length": 64, "inputter_name": "strat"})
    assert len(features) == len(stored)
    with pytest.raises(UserError, match="prepared with other settings"):
        load_prepared(str(out), {"max_input_length": 512})
    bad = write_lines(tmp_path / "bad.txt", ["{oops"])
    with pytest.raises(SystemExit) as e:
        from palkit.cli import run_main
        run_main(prepare.main, ["--config_name", "strat", "--inputter_name", "strat", "--train_input_file", bad,
                                "--pretrained_model_path", blender_tokenizer_dir, "--output_dir", str(tmp_path / "no")])
    assert e.value.code == 2 and "bad.txt: dialogue 0 (line 1, column 2): invalid JSON" in capsys.readouterr().err
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("text", ["Hello! I'm here.", "  hi   there\n I'm SAD :( ...  ", "a\nb\n", "job.</s>", "x<s>y",
                                  "[Restatement or Paraphrasing] ok", "no__unk__ ü ñ 😢", "", "Persona:it's, (fine)?"])
def test_encode_word_by_word_equals_the_tokenizer(real_toker, text):
    """Featurizer.encode keeps each word's ids; a text with an added token is encoded whole."""
    fast = featurizer(real_toker)
    for _ in range(2):  # the second time from its word cache
        assert fast.encode(text) == real_toker(text, add_special_tokens=False)["input_ids"]
