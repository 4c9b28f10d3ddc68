"""The straightforward featurization (docs/reproduction.md#featurization), kept as an executable statement.

This is the authors' way: build each example's strings and tokenize the whole joined history again for every
example. pal.inputter does the same work tokenizing each utterance once; tests/test_inputter.py checks that both give
identical ids, and codes/bench.py measures the speed-up. Written from the documented rule, independently of
pal.inputter.
Each example is a dict of the Feature fields it defines, plus `turn_index`.
"""
from .config import RELEASED, STRATEGIES

MAX_IN, MAX_DEC = RELEASED["max_input_length"], RELEASED["max_decoder_input_length"]


def ids(toker, text):
    return toker(text)["input_ids"]


def reference_strat(data, toker, stage, max_in=MAX_IN, max_dec=MAX_DEC, use_all_persona=False):
    """The featurization rule, the straightforward way: build each example's strings, tokenize them whole."""
    examples, context, seeker_turns = [], [], 0
    dialog = data["dialog"]
    for i, turn in enumerate(dialog):
        text = " ".join(turn["text"].split())
        if turn["speaker"] == "usr":
            seeker_turns += 1
            context.append("Persona:" + text)
            continue
        if i > 0 and (stage == "training" or dialog[i - 1]["speaker"] == "usr"):
            if use_all_persona:
                persona = data.get("persona", "<input>")
            elif "persona_list" in data and seeker_turns >= 3:
                persona = data["persona_list"][seeker_turns - 3]
            else:
                persona = "<input>"
            labels = (ids(toker, "[" + turn["strategy"] + "]") + ids(toker, text) + [toker.eos_token_id])[:max_dec + 1]
            examples.append({"input_ids": ids(toker, "</s> <s>".join(context + ["System:"]))[-max_in:],
                             "persona_input_ids": ids(toker, persona), "labels": labels,
                             "decoder_input_ids": [toker.bos_token_id] + labels[:-1],
                             "strat_id": STRATEGIES.index(turn["strategy"]), "turn_index": i})
        context.append("System:" + "[" + turn["strategy"] + "]" + text)
    return examples


def reference_vanilla(data, toker, stage, max_in=MAX_IN, max_dec=MAX_DEC):
    """zcj's vanilla inputter: utterance ids joined by eos, no prefixes, labels response + eos."""
    examples, context, eos = [], [], toker.eos_token_id
    dialog = data["dialog"]
    for i, turn in enumerate(dialog):
        utterance = ids(toker, " ".join(turn["text"].split()))
        if i > 0 and turn["speaker"] == "sys" and (stage == "training" or dialog[i - 1]["speaker"] == "usr"):
            joined = [t for piece in context for t in piece + [eos]][:-1]
            labels = (utterance + [eos])[:max_dec]
            examples.append({"input_ids": joined[-max_in:], "labels": labels,
                             "decoder_input_ids": [toker.bos_token_id] + labels[:-1], "turn_index": i})
        context.append(utterance)
    return examples
