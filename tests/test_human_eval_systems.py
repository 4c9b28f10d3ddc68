"""The human study with systems of every kind (chat_systems): PAL against a chat LLM in the interactive protocol,
and PAL's result folder against infer_chat.py's in the static one."""
import sqlite3

import pytest

from conftest import load_script
from human_eval import serve
from human_eval.app import create_app
from human_eval.store import Store
from human_eval_setup import FAST_DECODING, make_study_inputs


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_blender_dir):
    from chat_systems.tiny import make_tiny_chat_llm
    root = tmp_path_factory.mktemp("human_eval_llm")
    return {**make_study_inputs(root, tiny_blender_dir), "llm": make_tiny_chat_llm(str(root / "tiny_llm"))}


def start(argv):
    args = serve.build_parser().parse_args(argv)
    criteria = serve.task_builders.load_criteria(args.criteria)
    store = serve.open_study(args, criteria, serve.build_tasks(args, criteria))
    tokens = {a["name"]: a["token"] for a in store.annotators()}
    store.close()
    return create_app(args.db, serve.settings_from(args), criteria, serve.load_systems(args)).test_client(), tokens, args


def test_pal_against_a_chat_llm_interactively(inputs, tmp_path, tiny_blender_dir, one_torch_thread):
    argv = ["--db", str(tmp_path / "study.db"), "--test_file", inputs["test_file"], "--annotators", "ann1",
            "--pretrained_model_path", tiny_blender_dir, "--min_seconds_between_messages", "0", "--device", "cpu",
            *FAST_DECODING, "--system", f"name=pal,config=strat,checkpoint={inputs['strat']}",
            "--system", f"name=tiny,llm={inputs['llm']}"]
    client, tokens, args = start(argv)
    url = client.get(f"/a/{tokens['ann1']}/next").headers["Location"]
    for side in "AB":
        assert client.post(url + "/say", data={"side": side, "text": "i lost my job"}).status_code == 302
    rows = sqlite3.connect(args.db).execute("SELECT system, text, strategy FROM messages WHERE speaker = 'sys'"
                                            ).fetchall()
    by_system = {system: (text, strategy) for system, text, strategy in rows}
    assert set(by_system) == {"pal", "tiny"} and all(text for text, _ in by_system.values())
    assert by_system["pal"][1] is not None and by_system["tiny"][1] is None  # only PAL names a strategy
    setup = Store(args.db).get_meta("setup")["systems"]
    assert setup[0][0] == "pal" and setup[1]["kind"] == "llm"
    start(argv)  # the same arguments resume the study


def test_static_study_of_pal_and_an_llm_result_folder(inputs, tmp_path, tiny_blender_dir, punkt, one_torch_thread):
    pal_dir, llm_dir = str(tmp_path / "pal"), str(tmp_path / "llm")
    load_script("codes/infer.py").main(["--config_name", "strat", "--inputter_name", "strat", "--load_checkpoint",
                                        inputs["strat"], "--pretrained_model_path", tiny_blender_dir,
                                        "--infer_input_file", inputs["test_file"], "--save_dir", pal_dir,
                                        "--device", "cpu", "--max_length", "6", "--min_length", "2"])
    load_script("codes/infer_chat.py").main(["--system", f"name=tiny,llm={inputs['llm']}", "--infer_input_file",
                                             inputs["test_file"], "--output_dir", llm_dir, "--max_tokens", "6"])
    client, tokens, _ = start(["--db", str(tmp_path / "static.db"), "--mode", "static", "--test_file",
                               inputs["test_file"], "--results", f"pal={pal_dir}", "--results", f"tiny={llm_dir}",
                               "--annotators", "ann1"])
    url = client.get(f"/a/{tokens['ann1']}/next").headers["Location"]
    assert client.get(url).status_code == 200
    load_script("codes/compare_systems.py").main([pal_dir, llm_dir, "--resamples", "50"])
