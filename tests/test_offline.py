"""Hub names fail fast everywhere (palkit.hub): a local folder, then the local hub cache, then the hub only when it
accepts a connection within HUB_TIMEOUT seconds, asked once; an unknown name is one line naming the closest known
local names. Every entry point that takes a model name runs as a user types it (RUN/python) against a hub that
never answers (a listening socket whose queue is full: connecting hangs, as with a dead network) and an empty hub
cache. The 5 s bound of the name check itself is measured in-process (test_a_hanging_hub_costs_at_most_its_timeout);
the subprocess bound only rules out retries (the old behaviour: 54 s of them), since start-up imports alone take
seconds on a loaded machine. The extractor checks its CSVs before it loads a model."""
import http.server
import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from palkit import hub
from palkit.cli import UserError

REPO = Path(__file__).resolve().parents[1]
MISSING = "nobody-here/no-such-model"
NO_RETRIES = 40  # seconds: start-up, one bounded hub check and the error; retrying the hub took 54 s and more
TIMEOUT = 120


@pytest.fixture
def hanging_hub():
    """The address of a hub that never accepts a connection (its listen queue is full, so connecting hangs)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):  # fill the accept queue; the connections that no longer fit time out
        filler = socket.socket()
        filler.settimeout(0.2)
        try:
            filler.connect(("127.0.0.1", port))
        except OSError:
            pass
        fillers.append(filler)
    yield f"http://127.0.0.1:{port}"
    for s in fillers + [listener]:
        s.close()


class _NotFound(http.server.BaseHTTPRequestHandler):
    def _answer(self):
        self.server.paths.append(self.path)
        self.send_response(404)
        self.send_header("X-Error-Code", "RepoNotFound")
        self.send_header("Content-Length", "2")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(b"{}")

    do_GET = do_HEAD = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def empty_hub():
    """A hub on 127.0.0.1 that answers every request 'no such repository' and records the paths asked."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    server.paths = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server.paths
    server.shutdown()
    server.server_close()


def run(tmp_path, endpoint, *args, env=None):
    """`RUN/python ARGS` from tmp_path with an empty hub cache and the hub at `endpoint`: (the last stderr line, the
    seconds it took). It must end in one `error: ` line, exit 2, without download retries."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")} | {
        "HF_HOME": str(tmp_path / "hf_home"), "HF_ENDPOINT": endpoint} | (env or {})
    start = time.monotonic()
    result = subprocess.run([str(REPO / "RUN" / "python"), *map(str, args)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=TIMEOUT)
    seconds = time.monotonic() - start
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert "Retrying" not in result.stderr and lines[-1].startswith("error: "), result.stderr
    assert seconds < NO_RETRIES, (seconds, result.stderr)
    return lines[-1], seconds


@pytest.fixture
def pair_csvs(tmp_path):
    folder = tmp_path / "csv"
    folder.mkdir()
    for split in ("train", "valid"):
        (folder / f"{split}.csv").write_text("context,persona\nhi i have a dog .,i have a dog . </s>\n")
    return folder


@pytest.fixture
def test_file(tmp_path):
    from helpers.pal_models import DIALOGUES, write_dialogues
    return write_dialogues(tmp_path / "test.txt", DIALOGUES[:1])


# ---- the mechanism ------------------------------------------------------------------------------------------------
def test_a_hanging_hub_costs_at_most_its_timeout(hanging_hub, tmp_path, monkeypatch):
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "ENDPOINT", hanging_hub)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    start = time.monotonic()
    with pytest.raises(UserError) as error:
        hub.resolve("smolm2", known=("smollm2",))
    seconds = time.monotonic() - start
    assert hub.HUB_TIMEOUT <= seconds < 5, seconds  # it waited for the hub, and only as long as its timeout
    assert str(error.value).endswith("did you mean smollm2?") and "hub is unreachable" in str(error.value)


def test_closest_names_come_from_the_callers_names_the_hub_cache_and_the_folders_beside(tmp_path, monkeypatch):
    from huggingface_hub import constants
    cache = tmp_path / "cache"
    (cache / "models--Qwen--Qwen2.5-7B-Instruct").mkdir(parents=True)
    (tmp_path / "Blenderbot_small-90M").mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.chdir(tmp_path)
    assert hub.did_you_mean("smolm2", ("smollm2",)) == "; did you mean smollm2?"
    assert hub.did_you_mean("qwen/qwen2.5-7b-instruct") == "; did you mean Qwen/Qwen2.5-7B-Instruct?"
    assert hub.did_you_mean("blenderbot_small-90m") == "; did you mean Blenderbot_small-90M?"
    assert hub.did_you_mean("something-else-entirely", ("smollm2",)) == ""


def test_a_cached_hub_name_loads_from_the_cache_without_asking_the_hub(tmp_path, empty_hub, monkeypatch):
    """A hub name in the local hub cache resolves to its snapshot folder; the hub is never asked."""
    from huggingface_hub import constants
    from chat_systems import load_system, parse_system_spec
    from chat_systems.tiny import make_tiny_chat_llm
    repo = tmp_path / "cache" / "models--someorg--tiny-chat"
    make_tiny_chat_llm(str(repo / "snapshots" / "0123abcd"))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    endpoint, asked = empty_hub
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    system = load_system(parse_system_spec("name=t,llm=someorg/tiny-chat"), "cpu")
    assert system.reply([{"role": "user", "content": "hi"}], max_tokens=3, temperature=0).usage["completion_tokens"]
    assert asked == []


def test_a_hub_without_the_model_is_asked_once_and_the_answer_is_one_line(tmp_path, empty_hub, test_file):
    endpoint, asked = empty_hub
    error, _ = run(tmp_path, endpoint, REPO / "codes" / "infer_chat.py", "--system",
                   "name=qwen,llm=Qwen/Qwen2.5-7B-Instruc", "--infer_input_file", test_file)
    assert "'Qwen/Qwen2.5-7B-Instruc': the hub has no such model" in error, error
    assert [p for p in asked if "Instruc" in p] == ["/api/models/Qwen/Qwen2.5-7B-Instruc"], asked  # once, no retries
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


# ---- every entry point that takes a model name --------------------------------------------------------------------
def test_llm_names_of_infer_chat(tmp_path, hanging_hub, test_file):
    error, _ = run(tmp_path, hanging_hub, REPO / "codes" / "infer_chat.py", "--system", "name=smol,llm=smolm2",
                   "--infer_input_file", test_file, "--output_dir", tmp_path / "out")
    assert "'smolm2'" in error and "hub is unreachable" in error and error.endswith("did you mean smollm2?"), error
    assert not (tmp_path / "out.progress.jsonl").exists()


def test_llm_names_of_serve(tmp_path, hanging_hub):
    error, _ = run(tmp_path, hanging_hub, REPO / "codes" / "serve.py", "--system", "name=smol,llm=smolm2",
                   "--port", "0")
    assert error.endswith("did you mean smollm2?"), error


def test_llm_names_of_the_human_evaluation_app(tmp_path, hanging_hub):
    error, _ = run(tmp_path, hanging_hub, "-m", "human_eval", "--mode", "chat", "--system", "name=smol,llm=smolm2",
                   "--db", tmp_path / "chat.db", "--port", "0")
    assert error.endswith("did you mean smollm2?"), error


def test_judge_and_seeker_names_load_through_chat_systems(tmp_path, monkeypatch):
    """The automatic evaluation's judge and seeker are chat_systems specs: the same resolution as llm=."""
    from chat_systems import load_system, parse_system_spec
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for spec in ("name=judge,llm=smolm2", "name=seeker,llm=smolm2"):
        with pytest.raises(UserError, match=r"hub is unreachable.*did you mean smollm2\?$"):
            load_system(parse_system_spec(spec), "cpu")


def test_extractor_training_with_an_unreachable_hub_name(tmp_path, pair_csvs, hanging_hub):
    error, _ = run(tmp_path, hanging_hub, REPO / "persona_extractor" / "train_bart.py", "--model_name_or_path",
                   "facebook/bart-large-cn", "--train_dir", pair_csvs, "--output_dir", tmp_path / "out")
    assert "hub is unreachable" in error and error.endswith("did you mean facebook/bart-large-cnn?"), error


def test_extractor_training_checks_train_csv_before_loading_the_model(tmp_path, pair_csvs, hanging_hub):
    (pair_csvs / "train.csv").unlink()
    error, _ = run(tmp_path, hanging_hub, REPO / "persona_extractor" / "train_bart.py", "--model_name_or_path",
                   MISSING, "--train_dir", pair_csvs, "--output_dir", tmp_path / "out")
    assert "train.csv: no such file" in error and MISSING not in error, error


def test_annotation_with_an_unreachable_hub_name(tmp_path, hanging_hub):
    esconv = tmp_path / "ESConv.json"
    esconv.write_text(json.dumps([{"emotion_type": "sadness", "problem_type": "job", "situation": "lost it",
                                   "dialog": [{"speaker": "seeker", "content": "i lost my job ."}]}]))
    error, _ = run(tmp_path, hanging_hub, REPO / "persona_extractor" / "annotate_esconv.py", "--model_dir",
                   "facebook/bart-large-cn", "--input_file", esconv, "--output_file", tmp_path / "PESConv.json")
    assert error.endswith("did you mean facebook/bart-large-cnn?"), error


def test_cos_sim_with_an_unreachable_hub_name(tmp_path, hanging_hub):
    gen = tmp_path / "gen.json"
    gen.write_text(json.dumps([{"response": "ok .", "generation": "i see .", "persona": "i have a dog ."}]))
    error, _ = run(tmp_path, hanging_hub, REPO / "codes" / "get_cos_similarity.py", "--input_file", gen, "--model",
                   "princeton-nlp/sup-simcse-bert-base")
    assert "hub is unreachable" in error and "--model DIR" in error, error
    assert error.endswith("did you mean princeton-nlp/sup-simcse-bert-base-uncased?"), error


def test_blenderbot_names_of_prepare(tmp_path, hanging_hub):
    train = tmp_path / "train.txt"
    train.write_text(json.dumps({"dialog": [], "persona": ""}) + "\n")
    error, _ = run(tmp_path, hanging_hub, REPO / "codes" / "prepare.py", "--config_name", "strat", "--inputter_name",
                   "strat", "--train_input_file", train, "--pretrained_model_path", "facebook/blenderbot_small-90m",
                   "--output_dir", tmp_path / "prep", "--allow_no_persona", "True")
    assert "Blenderbot_small-90M" in error and error.endswith("did you mean facebook/blenderbot_small-90M?"), error


def test_a_local_folder_name_with_a_typo_gets_the_folder_beside(tmp_path, hanging_hub):
    (tmp_path / "Blenderbot_small-90M").mkdir()
    train = tmp_path / "train.txt"
    train.write_text(json.dumps({"dialog": [], "persona": ""}) + "\n")
    error, _ = run(tmp_path, hanging_hub, REPO / "codes" / "prepare.py", "--config_name", "strat", "--inputter_name",
                   "strat", "--train_input_file", train, "--pretrained_model_path", "Blenderbot_small-90",
                   "--output_dir", tmp_path / "prep", "--allow_no_persona", "True")
    assert "did you mean Blenderbot_small-90M" in error, error
