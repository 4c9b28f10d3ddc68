"""PAL served by codes/serve.py (waitress, 127.0.0.1) against the same checkpoint in-process, through the endpoint
client of chat_systems: the same replies and strategies (greedy and sampled), under 8 concurrent clients too, and
OpenAI-style 4xx errors for bad requests."""
import json
import re
import socket
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from chat_systems import load_system
from chat_systems.supporter import supporter_messages
from helpers.paths import REPO_ROOT, load_script


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_blender_dir):
    from helpers.human_eval import make_study_inputs
    return make_study_inputs(tmp_path_factory.mktemp("serve"), tiny_blender_dir)


@pytest.fixture(scope="module")
def server(inputs, tiny_blender_dir):
    """codes/serve.py on a free port of 127.0.0.1; its base URL."""
    proc = subprocess.Popen([sys.executable, str(REPO_ROOT / "codes" / "serve.py"), inputs["strat"], "--config",
                             "strat", "--pretrained_model_path", tiny_blender_dir, "--port", "0", "--device", "cpu"],
                            env=dict(os.environ, OMP_NUM_THREADS="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout=300)  # bounded wait for the "ready" line
    if not lines or not lines[0].startswith("ready: "):
        proc.kill()
        pytest.fail(f"server did not start: {lines} {proc.stderr.read() if proc.poll() is not None else ''}")
    yield lines[0].split()[1]
    proc.terminate()
    proc.wait(timeout=60)


@pytest.fixture(scope="module")
def in_process(inputs, tiny_blender_dir):
    import torch
    torch.set_num_threads(1)
    return load_system(f"name=pal,config=strat,checkpoint={inputs['strat']}", pretrained_model_path=tiny_blender_dir)


@pytest.fixture(scope="module")
def conversations(inputs):
    examples = load_script("codes/infer_chat.py").test_examples(inputs["test_file"], None)
    return [supporter_messages(history) for _, history, _ in examples]


@pytest.mark.parametrize("decoding", [{"temperature": 0}, {"seed": 7}, {"seed": 7, "temperature": 1.2, "top_p": 0.8,
                                                                       "max_tokens": 12}])
def test_served_equals_in_process(server, in_process, conversations, decoding):
    served = load_system(f"name=served,endpoint={server},model=pal")
    for messages in conversations:
        a, b = in_process.reply(messages, **decoding), served.reply(messages, **decoding)
        assert (b.text, b.strategy, b.persona) == (a.text, a.strategy, a.persona)


def test_concurrent_clients_get_their_own_answers(server, in_process, conversations):
    """8 clients x 10 greedy requests (different prompts and lengths): no 5xx, no crossed replies."""
    jobs = [(c, r, conversations[(c * 10 + r) % len(conversations)], 4 + (c + r) % 9) for c in range(8)
            for r in range(10)]
    expected = {(c, r): in_process.reply(m, temperature=0, max_tokens=n).text for c, r, m, n in jobs}

    def client(c):
        session, out = requests.Session(), {}
        for _, r, messages, n in [j for j in jobs if j[0] == c]:
            response = session.post(f"{server}/chat/completions", timeout=(5, 300),
                                    json={"messages": messages, "temperature": 0, "max_tokens": n})
            assert response.status_code == 200, response.text
            out[(c, r)] = response.json()["choices"][0]["message"]["content"]
        return out

    got = {}
    with ThreadPoolExecutor(8) as pool:
        for answers in pool.map(client, range(8)):
            got.update(answers)
    assert got == expected


BAD = [
    (b"not json", 400, None),
    (json.dumps({"messages": []}).encode(), 400, "messages"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}).encode(), 400, "temperature"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}).encode(), 400, "max_tokens"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}], "top_p": 0}).encode(), 400, "top_p"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}], "seed": -1}).encode(), 400, "seed"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}], "n": 2}).encode(), 400, "n"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}], "stream": True}).encode(), 400, "stream"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}], "model": "gpt-x"}).encode(), 404, "model"),
    (json.dumps({"messages": [{"role": "robot", "content": "hi"}]}).encode(), 400, "messages"),
    (json.dumps({"messages": [{"role": "assistant", "content": "hi"}]}).encode(), 400, "messages"),
    (json.dumps({"messages": [{"role": "user", "content": 3}]}).encode(), 400, "messages"),
    (json.dumps({"messages": [{"role": "assistant", "content": "a", "strategy": "Shouting"},
                              {"role": "user", "content": "b"}]}).encode(), 400, "messages"),
    (json.dumps([1, 2]).encode(), 400, None),
    (b"{" + b" " * (2 << 20) + b"}", 413, None),
]


@pytest.mark.parametrize("body, status, param", BAD)
def test_bad_requests_get_openai_style_4xx(server, body, status, param):
    response = requests.post(f"{server}/chat/completions", data=body, timeout=(5, 120),
                             headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and "Traceback" not in response.text and error["param"] == param


def test_other_routes_and_models(server):
    assert requests.get(f"{server}/chat/completions", timeout=(5, 60)).status_code == 405
    assert requests.get(f"{server}/nothing", timeout=(5, 60)).json()["error"]["message"]
    assert [m["id"] for m in requests.get(f"{server}/models", timeout=(5, 60)).json()["data"]] == ["pal"]


# ---- codes/bench_serve.py against this server (smoke: it runs and prints its numbers; nothing is timed here) --------
def bench_serve(*args):
    return subprocess.run([sys.executable, str(REPO_ROOT / "codes" / "bench_serve.py"), *map(str, args)],
                          env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=600)


def test_bench_serve_measures_a_served_tiny_model(server, inputs):
    result = bench_serve("--endpoint", server, "--test_file", inputs["test_file"], "--clients", "2", "--requests", "3",
                         "--temperature", "0")
    assert result.returncode == 0, result.stderr
    assert re.search(r"^6 requests from 2 clients in [\d.]+ s: [\d.]+ requests/s", result.stdout, re.M), result.stdout


def test_bench_serve_help_and_an_unreachable_endpoint(inputs):
    assert "--endpoint" in bench_serve("--help").stdout
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = bench_serve("--endpoint", f"http://127.0.0.1:{port}/v1", "--test_file", inputs["test_file"],
                         "--clients", "1", "--requests", "1")
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith(
        f"error: cannot reach http://127.0.0.1:{port}/v1/chat/completions"), result.stderr
