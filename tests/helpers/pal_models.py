"""Tiny dialogues, randomly initialised PAL-family models and hand-made batches."""
import json

import torch

from pal.config import STRATEGIES
from pal.model import build_model


DIALOGUES = [
    {"dialog": [
        {"text": "hi, i have been really worried lately.", "speaker": "usr"},
        {"text": "hello, how are you doing today?", "speaker": "sys", "strategy": "Others"},
        {"text": "can you tell me more about it?", "speaker": "sys", "strategy": "Question"},
        {"text": "my company is laying people off.", "speaker": "usr"},
        {"text": "that sounds really stressful.", "speaker": "sys", "strategy": "Reflection of feelings"},
        {"text": "i have two kids and i am scared.", "speaker": "usr"},
        {"text": "it is normal to feel scared.", "speaker": "sys", "strategy": "Affirmation and Reassurance"},
        {"text": "what should i do now?", "speaker": "usr"},
        {"text": "maybe you could update your resume.", "speaker": "sys", "strategy": "Providing Suggestions"}],
     "persona": "<persona> i have two kids. <persona> i work at a company. <input>",
     "persona_list": ["<persona> i have two kids. <input>",
                      "<persona> i have two kids. <persona> i work at a company. <input>"]},
    {"dialog": [
        {"text": "hello", "speaker": "usr"},
        {"text": "hi! what brings you here?", "speaker": "sys", "strategy": "Question"},
        {"text": "my friend stopped talking to me.", "speaker": "usr"},
        {"text": "i am sorry to hear that.", "speaker": "sys", "strategy": "Others"},
        {"text": "i feel so alone.", "speaker": "usr"},
        {"text": "i once lost a friend too.", "speaker": "sys", "strategy": "Self-disclosure"}],
     "persona": "<persona> i feel alone. <input>",
     "persona_list": ["<persona> i feel alone. <input>"]},
    {"dialog": [
        {"text": "i can not sleep at night.", "speaker": "usr"},
        {"text": "so you have trouble sleeping?", "speaker": "sys", "strategy": "Restatement or Paraphrasing"},
        {"text": "yes, for weeks.", "speaker": "usr"},
        {"text": "sleep problems are common under stress.", "speaker": "sys", "strategy": "Information"}],
     "persona_list": []},
]


def write_dialogues(path, dialogues=DIALOGUES):
    with open(path, "w", encoding="utf-8") as f:
        for d in dialogues:
            f.write(json.dumps(d) + "\n")
    return str(path)


def randomize(model, std=0.2, seed=0):
    """Redraw the matrices with a larger std: the stock init (0.02) gives near-constant outputs that would make
    equality tests vacuous."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=g) * std)
    return model


def padded(rows, length, value):
    out = torch.full((len(rows), length), value, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, :len(r)] = torch.tensor(r)
    return out


def make_batch(toker, contexts, personas=None, responses=None, strategies=None):
    """A contract batch built by hand from strings (context and persona padded to one length).
    With `strategies` (ids) the labels start with the strategy token and strat_id is set (vanilla: None)."""
    enc = lambda t: toker(t, add_special_tokens=False)["input_ids"]
    ctx = [enc(c) for c in contexts]
    per = [enc(p) for p in personas] if personas else None
    width = max(len(x) for x in ctx + (per or []))
    batch = {"input_ids": padded(ctx, width, toker.pad_token_id),
             "attention_mask": padded([[1] * len(x) for x in ctx], width, 0)}
    if per:
        batch["persona_input_ids"] = padded(per, width, toker.pad_token_id)
        batch["persona_attention_mask"] = padded([[1] * len(x) for x in per], width, 0)
    if responses:
        first = [[toker.convert_tokens_to_ids(f"[{STRATEGIES[s]}]")] for s in strategies] if strategies \
            else [[] for _ in responses]
        labels = [f + enc(r) + [toker.eos_token_id] for f, r in zip(first, responses)]
        t = max(len(x) for x in labels)
        batch["labels"] = padded(labels, t, -100)
        batch["decoder_input_ids"] = padded([[toker.bos_token_id] + x[:-1] for x in labels], t, toker.pad_token_id)
    if strategies:
        batch["strat_id"] = torch.tensor(strategies)
    return batch


CONTEXTS = ["Persona:i feel sad about my job</s> <s>System:", "Persona:hello</s> <s>System:",
            "Persona:my friend left me and i do not know what to do</s> <s>System:"]


PERSONAS = ["<persona> i am a teacher. <input>", "<input>", "<persona> i like dogs. <persona> i am old. <input>"]


RESPONSES = ["i am sorry to hear that.", "hi, how are you?", "that must be hard."]


def tiny_model(tiny_blender_dir, config="strat", std=0.5, **options):
    toker, model = build_model(config, pretrained_model_path=tiny_blender_dir, **options)
    return toker, randomize(model, std=std).eval()


GREEDY = dict(top_k=0, top_p=1.0, repetition_penalty=1.0, min_length=0, max_length=10)


def batch_for(toker, config, contexts=CONTEXTS, personas=PERSONAS, strategies=(0, 4, 2)):
    return make_batch(toker, contexts, personas if config == "strat" else None, None,
                      list(strategies) if config != "vanilla" else None) | (
        {"strat_id": torch.tensor(strategies)} if config != "vanilla" else {})
