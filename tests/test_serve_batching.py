"""The server's batching (chat_systems.server.Batcher) in-process: requests that arrive together are decoded in
batches, and each reply is exactly what its request gets alone, greedy and sampled with its own seed. PAL (whose
fusion attends over padding) batches requests of any length, each row encoded and fused at its own length, and so
with fusion_mask_padding; a chat LLM batches prompts of about one length."""
import pytest

from chat_systems import load_system
from chat_systems.server import Batcher, ChatRequest, wait_for
from chat_systems.supporter import supporter_examples, supporter_messages


class Counting:
    """A system whose reply_batch calls are counted (batch sizes), otherwise the system itself."""

    def __init__(self, system):
        self.system, self.sizes = system, []

    def __getattr__(self, name):
        return getattr(self.system, name)

    def reply_batch(self, conversations, **options):
        self.sizes.append(len(conversations))
        return self.system.reply_batch(conversations, **options)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_blender_dir):
    from helpers.human_eval import make_study_inputs
    return make_study_inputs(tmp_path_factory.mktemp("batching"), tiny_blender_dir)


@pytest.fixture(scope="module")
def conversations(inputs):
    return [supporter_messages(history) for _, history, _ in supporter_examples(inputs["test_file"])]


def requests_of(conversations, decoding):
    """Every conversation twice (so that PAL's padded lengths repeat), each request with its own seed."""
    return [ChatRequest(messages=m, seed=100 + i, **decoding) for i, m in enumerate(conversations * 2)]


def check_batched_equals_alone(system, requests):
    counting = Counting(system)
    batcher = Batcher(counting, max_batch=64, wait_s=0.5)
    jobs = [batcher.submit(r) for r in requests]  # all pending before the first batch closes
    batched = [wait_for(job) for job in jobs]
    alone = [system.reply(r.messages, seed=r.seed, temperature=r.temperature, top_p=r.top_p,
                          max_tokens=r.max_tokens) for r in requests]
    assert [(b.text, b.strategy, b.finish_reason, b.usage) for b in batched] == \
        [(a.text, a.strategy, a.finish_reason, a.usage) for a in alone]
    assert sum(counting.sizes) == len(requests)
    return counting.sizes


DECODINGS = [{"temperature": 0, "max_tokens": 12}, {"max_tokens": 12}, {"temperature": 1.3, "top_p": 0.8}]


@pytest.mark.parametrize("decoding", DECODINGS)
def test_pal_batches_requests_of_any_length(inputs, tiny_blender_dir, conversations, decoding, one_torch_thread):
    system = load_system(f"name=pal,config=strat,checkpoint={inputs['strat']}", pretrained_model_path=tiny_blender_dir)
    widths = {len(system.prepare(m)[1].input_ids) for m in conversations}
    assert len(widths) > 3 and system.fuses_own_length  # padded to other lengths than alone
    assert check_batched_equals_alone(system, requests_of(conversations, decoding)) == [2 * len(conversations)]


def test_pal_batch_encodes_each_row_at_its_own_length(inputs, tiny_blender_dir, conversations, one_torch_thread):
    """The fused states of a row padded longer in a batch are its fused states alone (float rounding), where
    plain padding changes them (the authors' fusion attends over padding)."""
    import torch
    from pal.generation import encoder_streams
    from pal.inputter import collate
    system = load_system(f"name=pal,config=strat,checkpoint={inputs['strat']}", pretrained_model_path=tiny_blender_dir)
    features = [system.prepare(m)[1] for m in conversations]
    short = min(range(len(features)), key=lambda i: len(features[i].input_ids))

    def fused(rows, own):
        batch = collate([features[i] for i in rows], system.toker.pad_token_id, True)
        if own:
            batch["own_length"] = torch.tensor([max(len(features[i].input_ids), len(features[i].persona_input_ids))
                                                for i in rows])
        with torch.no_grad():
            return encoder_streams(system.model, batch)[0].states[0, :int(batch["attention_mask"][0].sum())]

    alone, rows = fused([short], False), [short] + list(range(len(features)))
    assert torch.allclose(fused(rows, True), alone, atol=1e-5)
    assert not torch.allclose(fused(rows, False), alone, atol=1e-3)


@pytest.mark.parametrize("decoding", DECODINGS)
def test_pal_with_masked_fusion_batches_everything(inputs, tiny_blender_dir, conversations, decoding,
                                                   one_torch_thread):
    system = load_system(f"name=pal,config=strat,checkpoint={inputs['strat']}", pretrained_model_path=tiny_blender_dir,
                         fusion_mask_padding=True)
    assert not system.fuses_own_length
    assert check_batched_equals_alone(system, requests_of(conversations, decoding)) == [2 * len(conversations)]


@pytest.mark.parametrize("decoding", DECODINGS)
def test_chat_llm_batches_prompts_of_about_one_length(tmp_path_factory, conversations, decoding, one_torch_thread):
    from chat_systems.llm import BATCH_LENGTH_RATIO
    from chat_systems.tiny import make_tiny_chat_llm
    system = load_system(f"name=tiny,llm={make_tiny_chat_llm(str(tmp_path_factory.mktemp('llm')))}")
    buckets = {}
    for m in conversations:
        buckets.setdefault(system.batch_key(m), []).append(len(system.encode([system.prompt(m)])["input_ids"][0]))
    assert all(max(lengths) < BATCH_LENGTH_RATIO * min(lengths) for lengths in buckets.values())
    sizes = check_batched_equals_alone(system, requests_of(conversations, {"max_tokens": 16, **decoding}))
    assert len(sizes) == len(buckets) and max(sizes) > 2  # a bucket holds more than one conversation's two requests


def test_a_bad_request_fails_alone(tmp_path_factory, conversations, one_torch_thread):
    """A request the system refuses inside a batch (a prompt over the model's positions) gets its 400; the others
    in its batch still get their replies."""
    from chat_systems.server import BadRequest
    from chat_systems.tiny import make_tiny_chat_llm
    system = load_system(f"name=tiny,llm={make_tiny_chat_llm(str(tmp_path_factory.mktemp('llm')))}")
    batcher = Batcher(system, max_batch=8, wait_s=0.5)
    long = [{"role": "user", "content": "x" * 5000}]
    jobs = [batcher.submit(ChatRequest(messages=m, seed=1, max_tokens=4)) for m in (conversations[0], long,
                                                                                     conversations[1])]
    assert wait_for(jobs[0]).text == system.reply(conversations[0], seed=1, max_tokens=4).text
    with pytest.raises(BadRequest, match="over the model's 4096 positions"):
        wait_for(jobs[1])
    assert wait_for(jobs[2]).text == system.reply(conversations[1], seed=1, max_tokens=4).text


def test_fields_of_one_request_stay_its_own(inputs, tiny_blender_dir, conversations, one_torch_thread):
    """In one batch, a request with logprobs and a stop string and one without: each answer has what it asked."""
    from chat_systems.server import Answer
    system = load_system(f"name=pal,config=strat,checkpoint={inputs['strat']}", pretrained_model_path=tiny_blender_dir)
    batcher = Batcher(system, max_batch=8, wait_s=0.5)
    asking = ChatRequest(messages=conversations[0], temperature=0, max_tokens=8, logprobs=2, stop=["zzz"])
    plain = ChatRequest(messages=conversations[1], temperature=0, max_tokens=8)
    jobs = [batcher.submit(r) for r in (asking, plain)]
    answers = [Answer.of(wait_for(job), r, system) for job, r in zip(jobs, (asking, plain))]
    assert answers[0].logprobs and all(len(e["top_logprobs"]) == 2 for e in answers[0].logprobs)
    assert answers[1].logprobs is None
    assert answers[1].text == system.reply(conversations[1], temperature=0, max_tokens=8).text
