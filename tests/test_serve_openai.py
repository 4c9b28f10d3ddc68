"""codes/serve.py through the official `openai` Python client, as evaluation harnesses call it: a tiny PAL, a tiny
chat Llama, and SmolLM2 (slow). Non-streamed and streamed replies (the stream concatenates to the reply), stop,
max_completion_tokens, usage, models.list/retrieve, content parts, logprobs (a chat LLM's equal an in-process
forward pass, log_softmax of the raw logits), and the client's error classes for refused fields."""
import math

import openai
import pytest

from chat_systems import load_system
from helpers.serving import serve_script, start_server

MESSAGES = [{"role": "system", "content": "You are a kind listener."},
            {"role": "user", "content": "I lost my job last week and I cannot sleep."}]


@pytest.fixture(scope="module", params=["pal", "tiny_llm", pytest.param("smollm2", marks=pytest.mark.slow)])
def served(request, tmp_path_factory, tiny_blender_dir):
    """(openai client, the same system in-process, the served model's name)."""
    root = tmp_path_factory.mktemp("openai")
    if request.param == "pal":
        from helpers.human_eval import make_study_inputs
        checkpoint = make_study_inputs(root, tiny_blender_dir)["strat"]
        args = (checkpoint, "--config", "strat", "--pretrained_model_path", tiny_blender_dir)
        spec, options = f"name=pal,config=strat,checkpoint={checkpoint}", {"pretrained_model_path": tiny_blender_dir}
    else:
        from chat_systems.tiny import make_tiny_chat_llm
        llm = "smollm2" if request.param == "smollm2" else make_tiny_chat_llm(str(root / "llm"))
        spec, options = f"name={request.param},llm={llm}", {}
        args = ("--system", spec)
    server = start_server(*serve_script(*args))
    import torch
    torch.set_num_threads(1)
    yield openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=300), \
        load_system(spec, **options), spec.split(",")[0].split("=")[1]
    server.stop()


def test_models_list_and_retrieve(served):
    client, _, name = served
    assert [m.id for m in client.models.list()] == [name]
    assert client.models.retrieve(name).id == name
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-x")


def test_reply_usage_and_the_same_reply_in_process(served):
    client, system, name = served
    answer = client.chat.completions.create(model=name, messages=MESSAGES, seed=5, max_tokens=12)
    choice, usage = answer.choices[0], answer.usage
    assert choice.message.content and choice.finish_reason in ("stop", "length")
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens and usage.completion_tokens <= 12
    assert choice.message.content == system.reply(MESSAGES, seed=5, max_tokens=12).text


def test_stream_equals_the_reply(served):
    client, _, name = served
    for decoding in ({"seed": 3}, {"temperature": 0, "max_completion_tokens": 10}, {"seed": 1, "stop": [".", "?"]}):
        plain = client.chat.completions.create(model=name, messages=MESSAGES, **decoding)
        chunks = list(client.chat.completions.create(model=name, messages=MESSAGES, stream=True,
                                                     stream_options={"include_usage": True}, **decoding))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == plain.choices[0].message.content
        assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == \
            [plain.choices[0].finish_reason]
        assert chunks[-1].usage == plain.usage


def test_stop_and_max_completion_tokens(served):
    client, _, name = served
    whole = client.chat.completions.create(model=name, messages=MESSAGES, temperature=0, max_completion_tokens=16)
    text = whole.choices[0].message.content
    assert whole.usage.completion_tokens <= 16
    stop = text[len(text) // 2:len(text) // 2 + 2]
    cut = client.chat.completions.create(model=name, messages=MESSAGES, temperature=0, max_completion_tokens=16,
                                         stop=stop)
    assert cut.choices[0].message.content == text[:text.index(stop)] and cut.choices[0].finish_reason == "stop"
    one = client.chat.completions.create(model=name, messages=MESSAGES, temperature=0, max_completion_tokens=1)
    assert one.usage.completion_tokens == 1 and one.choices[0].finish_reason == "length"


def test_content_parts(served):
    client, _, name = served
    parts = [{"role": "user", "content": [{"type": "text", "text": MESSAGES[1]["content"]}]}]
    assert client.chat.completions.create(model=name, messages=parts, temperature=0, max_tokens=8).choices[0] \
        .message.content == client.chat.completions.create(model=name, messages=MESSAGES[1:], temperature=0,
                                                           max_tokens=8).choices[0].message.content
    with pytest.raises(openai.BadRequestError, match="image_url"):
        client.chat.completions.create(model=name, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.org/a.png"}}]}])


@pytest.mark.parametrize("field, value", [("tools", [{"type": "function", "function": {"name": "f"}}]), ("n", 2),
                                          ("frequency_penalty", 1.0), ("response_format", {"type": "json_object"}),
                                          ("logit_bias", {"1": 5})])
def test_refused_fields_raise_the_client_error_naming_them(served, field, value):
    client, _, name = served
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=name, messages=MESSAGES, **{field: value})
    assert e.value.body["param"] == field and field in e.value.message


def test_wrong_model_is_not_found(served):
    client, _, _ = served
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-x", messages=MESSAGES)


def test_logprobs_are_log_softmax_of_the_raw_logits(served):
    """The first token's top_logprobs are log_softmax of the raw next-token logits, as an in-process forward pass
    gives them (for a chat LLM: the prompt through the chat template; for PAL: its contrastive logits)."""
    import torch
    client, system, name = served
    answer = client.chat.completions.create(model=name, messages=MESSAGES, temperature=0, max_tokens=3,
                                            logprobs=True, top_logprobs=5)
    first = answer.choices[0].logprobs.content[0]
    served_top = [(t.token, t.logprob) for t in first.top_logprobs]
    assert len(served_top) == 5 and math.isclose(sum(math.exp(v) for _, v in served_top[:1]),
                                                 math.exp(served_top[0][1]))
    if not hasattr(system, "prompt"):  # PAL: the values are checked against the same system in-process
        reference = system.reply(MESSAGES, temperature=0, max_tokens=3, logprobs=5).logprobs[0]["top_logprobs"]
        assert [(t["token"], t["logprob"]) for t in reference] == served_top
        return
    with torch.no_grad():
        logits = system.model(**system.encode([system.prompt(MESSAGES)])).logits[0, -1].float()
    values, ids = torch.log_softmax(logits, dim=-1).topk(5)
    assert [system.token_text(i) for i in ids.tolist()] == [t for t, _ in served_top]
    assert all(math.isclose(a, b, abs_tol=1e-4) for a, (_, b) in zip(values.tolist(), served_top))
    assert first.token == served_top[0][0]  # greedy takes the most probable token
