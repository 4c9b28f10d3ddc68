"""codes/infer_chat.py: a failed run never blocks its corrected rerun. The progress file is made only when a batch is
done (after arguments and the system have loaded); a rerun with other arguments is refused naming them, and
--restart starts over, giving what a fresh run gives."""
import json
import os

import pytest

from helpers.paths import load_script
from helpers.pal_models import DIALOGUES, write_dialogues
from palkit.cli import UserError


@pytest.fixture(scope="module")
def tiny_llm(tmp_path_factory):
    from chat_systems.tiny import make_tiny_chat_llm
    return make_tiny_chat_llm(str(tmp_path_factory.mktemp("tiny_llm")))


@pytest.fixture(scope="module")
def test_file(tmp_path_factory):
    return str(write_dialogues(tmp_path_factory.mktemp("data") / "test.txt", DIALOGUES))


def gen(folder):
    with open(os.path.join(folder, "gen.json")) as f:
        return json.load(f)


def test_a_run_that_fails_to_load_its_system_leaves_nothing_that_blocks_the_fix(tiny_llm, test_file, tmp_path,
                                                                                 monkeypatch, punkt):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    infer_chat = load_script("codes/infer_chat.py")
    out = str(tmp_path / "smol")
    common = ["--infer_input_file", test_file, "--output_dir", out, "--max_examples", "2", "--max_tokens", "4"]
    with pytest.raises(UserError, match="did you mean smollm2"):
        infer_chat.main(["--system", "name=smol,llm=smolm2", *common])
    assert not os.path.exists(out + ".progress.jsonl") and not os.path.exists(out)
    infer_chat.main(["--system", f"name=smol,llm={tiny_llm}", *common])  # the corrected command
    assert len(gen(out)) == 2


def test_a_rerun_with_other_arguments_names_them_and_restart_starts_over(tiny_llm, test_file, tmp_path, punkt,
                                                                         monkeypatch):
    infer_chat = load_script("codes/infer_chat.py")
    out, fresh = str(tmp_path / "cut"), str(tmp_path / "fresh")
    common = ["--system", f"name=tiny,llm={tiny_llm}", "--infer_input_file", test_file, "--max_examples", "3",
              "--batch_size", "2", "--max_tokens", "6", "--temperature", "1.0"]

    def stopped(_folder):  # the run stops after every batch is on disk, before its folder is written
        raise KeyboardInterrupt
    with monkeypatch.context() as patch:
        patch.setattr(infer_chat, "new_result_folder", stopped)
        with pytest.raises(KeyboardInterrupt):
            infer_chat.main([*common, "--output_dir", out, "--seed", "0"])
    progress = out + ".progress.jsonl"
    assert os.path.exists(progress) and not os.path.exists(out)
    with pytest.raises(UserError) as refused:
        infer_chat.main([*common, "--output_dir", out, "--seed", "1", "--top_p", "0.5"])
    message = str(refused.value)
    assert "--seed (that run: 0; this run: 1)" in message and "--top_p (that run: None; this run: 0.5)" in message
    assert "--restart" in message and "--system" not in message and "--temperature" not in message
    infer_chat.main([*common, "--output_dir", out, "--seed", "1", "--top_p", "0.5", "--restart"])
    infer_chat.main([*common, "--output_dir", fresh, "--seed", "1", "--top_p", "0.5"])
    assert gen(out) == gen(fresh) and not os.path.exists(progress)
    assert "--restart" in infer_chat.build_parser().format_help()
