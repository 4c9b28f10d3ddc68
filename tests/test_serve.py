"""PAL served by codes/serve.py (waitress, 127.0.0.1) against the same checkpoint in-process, through the endpoint
client of chat_systems: the same replies and strategies (greedy and sampled), under 8 concurrent clients too;
OpenAI's fields honoured (stop, max_tokens, usage, logprobs, content parts, system messages, streaming) or refused by
name with a 400, every malformed body a JSON 4xx, idle connections that cannot starve it, one access-log line per
request."""
import json
import math
import os
import re
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from chat_systems import load_system
from chat_systems.server import FIELDS, MAX_JSON_DEPTH
from chat_systems.supporter import supporter_examples, supporter_messages
from helpers.serving import log_since, serve_script, start_server
from helpers.paths import REPO_ROOT


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_blender_dir):
    from helpers.human_eval import make_study_inputs
    return make_study_inputs(tmp_path_factory.mktemp("serve"), tiny_blender_dir)


@pytest.fixture(scope="module")
def running(inputs, tiny_blender_dir):
    """codes/serve.py on a free port of 127.0.0.1 (helpers.serving.start_server)."""
    server = start_server(*serve_script(inputs["strat"], "--config", "strat", "--pretrained_model_path",
                                        tiny_blender_dir))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(running):
    """The server's base URL."""
    return running.url


@pytest.fixture(scope="module")
def in_process(inputs, tiny_blender_dir):
    import torch
    torch.set_num_threads(1)
    return load_system(f"name=pal,config=strat,checkpoint={inputs['strat']}", pretrained_model_path=tiny_blender_dir)


@pytest.fixture(scope="module")
def conversations(inputs):
    examples = supporter_examples(inputs["test_file"])
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
    (json.dumps({"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}).encode(), 400, "stream"),
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
    assert requests.get(f"{server}/models/pal", timeout=(5, 60)).json()["id"] == "pal"
    missing = requests.get(f"{server}/models/gpt-x", timeout=(5, 60))
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "model_not_found"


# ---- fields ---------------------------------------------------------------------------------------------------------
HI = [{"role": "user", "content": "I lost my job and I do not know what to do"}]


def post(server, **body):
    return requests.post(f"{server}/chat/completions", json={"messages": HI, **body}, timeout=(5, 300))


REFUSED = [  # (field, value): honoured only with the value that changes nothing, refused by name otherwise
    ("n", 2), ("frequency_penalty", 0.5), ("presence_penalty", -1), ("logit_bias", {"50": 10}),
    ("response_format", {"type": "json_object"}), ("modalities", ["text", "audio"]),
    ("tools", [{"type": "function", "function": {"name": "f"}}]), ("tool_choice", "auto"),
    ("parallel_tool_calls", True), ("functions", [{"name": "f"}]), ("function_call", "auto"),
    ("audio", {"voice": "alloy"}), ("prediction", {"type": "content", "content": "x"}),
    ("web_search_options", {}), ("reasoning_effort", "low"), ("verbosity", "low"), ("store", True),
    ("service_tier", "flex"), ("stream_options", {"include_usage": True}), ("top_logprobs", 3),
    ("colour", "blue"),
]


@pytest.mark.parametrize("key, value", REFUSED)
def test_fields_refused_by_name(server, key, value):
    response = post(server, **{key: value})
    assert response.status_code == 400 and response.json()["error"]["param"] == key, response.text
    assert key in response.json()["error"]["message"]


@pytest.mark.parametrize("key", sorted(FIELDS))
def test_every_field_of_a_wrong_type_is_a_400_naming_it(server, key):
    body = {"messages": HI, key: {"nested": [1, [2]]}} if key != "messages" else {"messages": {"role": "user"}}
    response = requests.post(f"{server}/chat/completions", json=body, timeout=(5, 60))
    assert response.status_code == 400 and response.json()["error"]["param"] == key, response.text


def test_neutral_values_and_identifiers_are_accepted(server):
    neutral = {"n": 1, "frequency_penalty": 0, "presence_penalty": 0.0, "logit_bias": {}, "tools": [],
               "tool_choice": "none", "response_format": {"type": "text"}, "modalities": ["text"], "store": False,
               "service_tier": "auto", "user": "u-1", "safety_identifier": "s", "prompt_cache_key": "k",
               "metadata": {"run": "1"}, "audio": None, "temperature": 0, "max_tokens": 5}
    assert post(server, **neutral).json()["choices"][0]["message"]["content"] == \
        post(server, temperature=0, max_tokens=5).json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize("messages, complaint", [
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}], "part type 'image_url'"),
    ([{"role": "tool", "content": "x", "tool_call_id": "1"}, {"role": "user", "content": "hi"}], "field 'tool_call_id'"),
    ([{"role": "function", "content": "x"}, {"role": "user", "content": "hi"}], "role 'function'"),
    ([{"role": "assistant", "content": None, "tool_calls": []}, {"role": "user", "content": "hi"}], "'tool_calls'"),
    ([{"role": "user", "content": [{"type": "text"}]}], "a text part is"),
    ([{"role": "user", "content": "hi", "name": 3}], "name must be a string"),
])
def test_message_forms_refused_by_name(server, messages, complaint):
    response = requests.post(f"{server}/chat/completions", json={"messages": messages}, timeout=(5, 60))
    assert response.status_code == 400 and complaint in response.json()["error"]["message"], response.text


def test_content_parts_developer_role_and_system_messages(server, in_process):
    plain = post(server, temperature=0, max_tokens=8).json()
    parts = requests.post(f"{server}/chat/completions", timeout=(5, 300), json={
        "messages": [{"role": "developer", "content": "Be kind."},
                     {"role": "user", "content": [{"type": "text", "text": HI[0]["content"]}], "name": "seeker"}],
        "temperature": 0, "max_tokens": 8}).json()
    assert parts["choices"][0]["message"]["content"] == plain["choices"][0]["message"]["content"]
    assert parts["pal"]["system_messages"] == "ignored" and "system_messages" not in plain["pal"]
    assert in_process.capabilities.system_messages == "ignored"


def test_max_tokens_usage_and_finish_reason(server):
    for n in (1, 2, 7):
        answer = post(server, max_tokens=n, temperature=0).json()
        usage, choice = answer["usage"], answer["choices"][0]
        assert choice["message"]["content"].strip()  # max_tokens=1 is one token, never an empty reply
        assert 1 <= usage["completion_tokens"] <= n and usage["prompt_tokens"] > 0
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        assert choice["finish_reason"] == ("length" if usage["completion_tokens"] == n else "stop")
    assert post(server, max_tokens=1, temperature=0).json()["choices"][0]["finish_reason"] == "length"
    same = post(server, max_completion_tokens=4, temperature=0).json()
    assert same["choices"][0]["message"] == post(server, max_tokens=4, temperature=0).json()["choices"][0]["message"]
    assert post(server, max_tokens=4, max_completion_tokens=5).status_code == 400


def test_stop_cuts_before_the_first_stop_string(server):
    whole = post(server, temperature=0, max_tokens=20).json()
    text = whole["choices"][0]["message"]["content"]
    words = text.split()
    assert len(words) >= 3, text
    stop = " " + words[2]  # cut before the third word
    cut = post(server, temperature=0, max_tokens=20, stop=[stop, "no such stop"]).json()
    assert cut["choices"][0]["message"]["content"] == text[:text.index(stop)]
    assert cut["choices"][0]["finish_reason"] == "stop"
    assert cut["usage"]["completion_tokens"] < whole["usage"]["completion_tokens"]
    assert post(server, temperature=0, max_tokens=20, stop=words[0]).json()["choices"][0]["message"]["content"] == ""
    assert post(server, stop=["a", "b", "c", "d", "e"]).status_code == 400


def test_logprobs_openai_format(server):
    answer = post(server, temperature=0, max_tokens=6, logprobs=True, top_logprobs=3).json()
    content = answer["choices"][0]["logprobs"]["content"]
    assert len(content) == answer["usage"]["completion_tokens"]
    for entry in content:
        assert set(entry) == {"token", "logprob", "bytes", "top_logprobs"} and entry["logprob"] <= 0
        assert bytes(entry["bytes"]).decode("utf-8") == entry["token"] and len(entry["top_logprobs"]) == 3
        values = [t["logprob"] for t in entry["top_logprobs"]]
        assert values == sorted(values, reverse=True) and entry["logprob"] <= values[0]
    assert answer["choices"][0]["logprobs"]["content"][0]["top_logprobs"][0]["logprob"] > math.log(1e-9)
    plain = post(server, temperature=0, max_tokens=6, logprobs=True).json()["choices"][0]["logprobs"]["content"]
    assert [e["logprob"] for e in plain] == [e["logprob"] for e in content] and plain[0]["top_logprobs"] == []
    assert post(server, top_logprobs=21, logprobs=True).status_code == 400


# ---- streaming ------------------------------------------------------------------------------------------------------
def events(server, **body):
    """The data payloads of a streamed answer (requests reading the raw SSE lines)."""
    with requests.post(f"{server}/chat/completions", json={"messages": HI, "stream": True, **body}, stream=True,
                       timeout=(5, 300)) as response:
        assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines(decode_unicode=True) if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
    return [json.loads(line[6:]) for line in lines[:-1]]


@pytest.mark.parametrize("decoding", [{"temperature": 0, "max_tokens": 15}, {"seed": 11},
                                      {"seed": 4, "temperature": 1.3, "stop": ["you", "."], "logprobs": True}])
def test_stream_concatenates_to_the_plain_answer(server, decoding):
    plain = post(server, **decoding).json()
    chunks = events(server, stream_options={"include_usage": True}, **decoding)
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == plain["choices"][0]["message"]["content"]
    finish = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finish) == 1 and finish[0]["choices"][0]["finish_reason"] == plain["choices"][0]["finish_reason"]
    assert finish[0]["pal"] == plain["pal"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == plain["usage"]
    if decoding.get("logprobs"):
        streamed = [e for c in chunks if c["choices"] and c["choices"][0]["logprobs"]
                    for e in c["choices"][0]["logprobs"]["content"]]
        assert streamed == plain["choices"][0]["logprobs"]["content"]


def test_stream_without_usage_option_has_no_usage_chunk(server):
    chunks = events(server, max_tokens=3)
    assert all(c["choices"] and "usage" not in c for c in chunks)


# ---- nothing a client sends takes the server down -------------------------------------------------------------------
@pytest.mark.parametrize("temperature", [1e-45, 5e-324, 1e-6])
def test_tiny_temperatures_are_greedy(server, temperature):
    answer = post(server, temperature=temperature, max_tokens=8)
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"] == post(server, temperature=0, max_tokens=8).json()["choices"][0][
        "message"]


@pytest.mark.parametrize("body", [
    b"[" * 2000 + b"]" * 2000, b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    json.dumps({"messages": HI, "metadata": {"a": {"b": {"c": {}}}}}).encode().replace(b"{}", b"[" * (
        MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)),
    b'{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}', b"\xff\xfe{}",
    b'{"messages": [{"role": "user", "content": "hi"}], "seed": 1e400}',
    b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 100000000000000000000000000000}',
])
def test_malformed_bodies_are_json_4xx(server, body):
    response = requests.post(f"{server}/chat/completions", data=body, timeout=(5, 120),
                             headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500 and response.json()["error"]["message"], response.text


def test_idle_and_half_open_connections_do_not_starve_it(server):
    host, port = server.split("//")[1].split("/")[0].split(":")
    idle = []
    try:
        for i in range(120):
            s = socket.create_connection((host, int(port)), timeout=5)
            if i % 2:  # half a request: headers that never end
                s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n")
            idle.append(s)
        start = time.monotonic()
        answer = requests.get(f"{server}/models", timeout=(2, 2))
        assert answer.status_code == 200 and time.monotonic() - start < 2
    finally:
        for s in idle:
            s.close()


def test_one_access_log_line_per_request_without_content_or_keys(running, server):
    marker = f"marker-{time.time_ns()}"  # earlier tests' lines may still be on their way from the server's stderr
    assert requests.get(f"{server}/models/{marker}", timeout=(5, 60)).status_code == 404
    for _ in range(600):  # bounded wait for the marker's line
        seen = [i for i, line in enumerate(running.log) if f"/v1/models/{marker} 404 " in line]
        if seen:
            break
        time.sleep(0.05)
    start = seen[0] + 1
    secret = "SECRET-CONTENT-7f3a"
    requests.post(f"{server}/chat/completions", timeout=(5, 300), headers={"Authorization": "Bearer sk-key-9b1c"},
                  json={"messages": [{"role": "user", "content": secret}], "max_tokens": 3, "user": "who-4d2e"})
    requests.get(f"{server}/models?token=tok-5e6f", timeout=(5, 60))
    requests.post(f"{server}/chat/completions", data=b"not json", timeout=(5, 60))
    events(server, max_tokens=2)
    logged = log_since(running, start, 4)
    lines = [line for line in logged if re.search(r" (GET|POST) /v1/", line)]  # (not waitress's own warnings)
    assert len(lines) == 4, logged
    assert " POST /v1/chat/completions 200 " in lines[0] and re.search(r" \d+ ms tokens=\d+\+[123]$", lines[0])
    assert " GET /v1/models 200 " in lines[1] and " POST /v1/chat/completions 400 " in lines[2]
    assert " POST /v1/chat/completions 200 " in lines[3] and re.search(r" \d+ ms tokens=\d+\+[12]$", lines[3])
    for leaked in (secret, "sk-key-9b1c", "who-4d2e", "tok-5e6f"):
        assert not any(leaked in line for line in running.log)


def test_raw_sse_with_curl(server):
    """What curl (no client library) receives: event lines ending with data: [DONE]."""
    body = json.dumps({"messages": HI, "stream": True, "max_tokens": 4})
    out = subprocess.run(["curl", "-sN", "-H", "Content-Type: application/json", "-d", body,
                          f"{server}/chat/completions"], capture_output=True, text=True, timeout=120).stdout
    blocks = out.split("\n\n")
    assert blocks[-1] == "" and blocks[-2] == "data: [DONE]"
    assert all(b.startswith("data: {") for b in blocks[:-2]) and len(blocks) >= 4


def test_endpoint_system_passes_logprobs_and_per_request_seeds(server):
    """The endpoint client of chat_systems over this server: logprobs come back, and reply_batch's seeds are per
    conversation (what the server's batches give it)."""
    served = load_system(f"name=served,endpoint={server},model=pal")
    reply = served.reply(HI, temperature=0, max_tokens=4, logprobs=2)
    answer = post(server, temperature=0, max_tokens=4, logprobs=True, top_logprobs=2).json()
    assert reply.logprobs == answer["choices"][0]["logprobs"]["content"] and reply.finish_reason == "length"
    batch = served.reply_batch([HI, HI], seed=[1, 2], max_tokens=10)
    assert [r.text for r in batch] == [served.reply(HI, seed=s, max_tokens=10).text for s in (1, 2)]


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


def test_bench_serve_compares_batched_and_one_at_a_time(inputs, tiny_blender_dir, tmp_path):
    """--compare serves the checkpoint twice (batched, --max_batch 1), sends both the same sampled requests, and
    writes both summaries and their ratios; every batched reply is the unbatched one."""
    output = tmp_path / "bench.json"
    result = bench_serve("--compare", inputs["strat"], "--test_file", inputs["test_file"], "--clients", "3",
                         "--requests", "2", "--rounds", "2", "--max_batch", "4", "--max_tokens", "6",
                         "--serve_args", f"--config strat --pretrained_model_path {tiny_blender_dir}",
                         "--output", output)
    assert result.returncode == 0, result.stderr
    report = json.loads(output.read_text())
    for label, max_batch in (("batched", 4), ("unbatched", 1)):
        assert {"req_per_s", "p50_s", "p95_s"} <= report[label].keys(), report
        assert report[label]["requests"] == 6 and report[label]["max_batch"] == max_batch
    assert report["throughput_ratio"] == round(report["batched"]["req_per_s"] / report["unbatched"]["req_per_s"], 3)
    assert report["identical_replies"] == report["requests"] == 6
    assert re.search(r"^throughput ratio [\d.]+x, p95 ratio [\d.]+ \(batched / unbatched\); identical replies 6 of 6$",
                     result.stdout, re.M), result.stdout
