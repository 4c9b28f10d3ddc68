"""Featurization and batching (docs/reproduction.md#featurization): dialogues -> token ids -> batches.

Two inputters, as in the authors' code (each variant names its own: pal.variants): `strat` (PAL, Blender-Joint) walks
a dialogue with "Persona:"/"System:[strategy]" context strings and emits one example per supporter turn
(input_ids: the last max_input_length ids of the joined context; persona_input_ids: the persona known at that
turn; labels: strategy token, reply, eos); `vanilla` joins the utterances' ids by eos, without strategy token.
Each distinct utterance of a dialogue is tokenized once (PAL's vocabulary reuses the reply ids in the history;
Blender-Joint's splits the history into pieces between strategy tokens) and each example's ids are assembled from
those pieces: exactly the ids of re-tokenizing the joined history per example (the authors' way,
pal.reference_featurization), for every config; why that holds: docs/reproduction.md#featurization.

Batching is part of faithfulness, since PAL's unmasked fusion makes outputs depend on padding
(docs/reproduction.md#batching): training batches come from `BucketBatchSampler` (the authors' bucketing),
validation batches hold whole dialogues in file order, inference batches are exactly `batch_size` consecutive
examples.
"""
import math
import os
import random
import re
import sys
from dataclasses import dataclass, field, replace
from typing import List, Optional

import torch
from tqdm import tqdm
from transformers import BlenderbotSmallTokenizer

from palkit.cli import UserError
from .config import RELEASED, STRATEGIES, STRATEGY_TOKENS
from .dialogues import EMPTY_PERSONA, JSON_LINES, load_dialogues, normalise
from .variants import INPUTTERS, trained_variants, variant

STAGES = ("training", "validation", "inference")
SEEKER_PREFIX = "Persona:"  # the authors' prefix for the seeker (sic)
SUPPORTER_PREFIX = "System:"
CONTEXT_JOINER = "</s> <s>"
FIRST_PERSONA_SEEKER_TURN = 3  # persona_list[0] is inferred from the seeker's first 3 utterances
REFORMAT_HINT = "write it with codes/_reformat/process.py (one JSON dialogue per line)"
WORDS = re.compile(r"\S+\n?")  # how BlenderbotSmallTokenizer._tokenize splits a text into words


# ------------------------------------------------------------------------------------------------ settings

@dataclass(frozen=True)
class InputterSettings:
    inputter_name: str
    max_input_length: int = RELEASED["max_input_length"]
    max_decoder_input_length: int = RELEASED["max_decoder_input_length"]
    use_all_persona: bool = RELEASED["use_all_persona"]
    persona_in_batches: bool = True  # persona tensors in batches: only for a variant that reads a persona (PAL)

    def __post_init__(self):
        if self.inputter_name not in INPUTTERS:
            raise UserError(f"unknown --inputter_name {self.inputter_name!r}; available: {', '.join(INPUTTERS)}")
        for name in ("max_input_length", "max_decoder_input_length"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name} must be at least 1, got {getattr(self, name)}")

    @property
    def uses_strategy(self):
        """The strat inputter: strategy tokens in contexts and labels, a persona per example."""
        return self.inputter_name == "strat"


def settings_for(config, inputter_name, max_input_length=RELEASED["max_input_length"],
                 max_decoder_input_length=RELEASED["max_decoder_input_length"],
                 use_all_persona=RELEASED["use_all_persona"]):
    """InputterSettings for a loaded config (pal.config.load_config) and inputter name, checking they fit together;
    the persona tensors go into batches when the config's variant reads a persona."""
    settings = InputterSettings(inputter_name, max_input_length, max_decoder_input_length, use_all_persona)
    if settings.uses_strategy and not set(STRATEGY_TOKENS) <= set(config.get("expanded_vocab") or []):
        with_tokens = [v.config for v in trained_variants() if v.inputter == inputter_name]
        raise UserError(f"--inputter_name strat needs the strategy tokens, which config {config['config_name']!r} "
                        f"does not add; use --config_name {' or '.join(with_tokens)}")
    persona = settings.uses_strategy and variant(config["config_name"]).reads_persona
    return replace(settings, persona_in_batches=persona)


# ------------------------------------------------------------------------------------------------ reading

def read_dialogues(path):
    """The dialogues of a reformatted JSON-lines file as (line number, dict); bad input raises a one-line UserError."""
    found = load_dialogues(path, REFORMAT_HINT, containers=(JSON_LINES,))
    return list(zip(found.line_numbers, found.dialogues))


def checked_turns(data, where, need_strategy):
    """The dialogue's turns as (speaker 'usr'/'sys', normalised text, strategy or None)."""
    if not isinstance(data, dict) or not isinstance(data.get("dialog"), list):
        raise UserError(f"{where}: no 'dialog' list of turns; {REFORMAT_HINT}")
    turns = []
    for j, turn in enumerate(data["dialog"]):
        if not isinstance(turn, dict) or turn.get("speaker") not in ("usr", "sys"):
            got = turn.get("speaker") if isinstance(turn, dict) else turn
            raise UserError(f"{where}: turn {j}: expected a turn with speaker 'usr' or 'sys', got {got!r}; "
                            f"{REFORMAT_HINT}")
        if not isinstance(turn.get("text"), str):
            raise UserError(f"{where}: turn {j}: no string 'text'")
        strategy = turn.get("strategy")
        if turn["speaker"] == "sys" and need_strategy and strategy not in STRATEGIES:
            raise UserError(f"{where}: turn {j}: supporter strategy {strategy!r} is not one of: {', '.join(STRATEGIES)}")
        turns.append((turn["speaker"], normalise(turn["text"]), strategy))
    return turns


# ------------------------------------------------------------------------------------------------ features

@dataclass
class Feature:
    """One example's ids. `persona_input_ids` and `strat_id` (0-7) are None for the vanilla inputter."""
    input_ids: List[int]
    decoder_input_ids: List[int]
    labels: List[int]
    persona_input_ids: Optional[List[int]] = None
    strat_id: Optional[int] = None
    dialogue_index: int = 0  # position of the dialogue in its file (gen.json's sample_id)
    turn_index: int = 0  # position of the response turn in the dialogue
    meta: dict = field(default_factory=dict)  # inference only: post, response, persona text

    @property
    def bucket_length(self):
        """The length the authors' training bucketing sorts by (context + decoder input, persona not counted)."""
        return len(self.input_ids) + len(self.decoder_input_ids)


class Featurizer:
    """Turns dialogues into Features, tokenizing each dialogue's history once (see the module docstring)."""

    def __init__(self, toker, settings):
        self.toker = toker
        self.settings = settings
        self.bos, self.eos, self.pad = toker.bos_token_id, toker.eos_token_id, toker.pad_token_id
        if None in (self.bos, self.eos, self.pad):
            raise UserError("the tokenizer lacks a bos, eos or pad token (BlenderBot-small's has all three)")
        self._word_ids = {}
        # Word by word only for BlenderBot-small's own word splitting, and only for texts without added tokens.
        self._by_word = type(toker)._tokenize is BlenderbotSmallTokenizer._tokenize
        self._added = sorted(getattr(toker, "added_tokens_encoder", {}), key=len, reverse=True)
        if settings.uses_strategy:
            self.strategy_ids = [self.single_token_id(tok) for tok in STRATEGY_TOKENS]
            self.supporter_prefix_ids = self.encode(SUPPORTER_PREFIX)
            added = set(getattr(toker, "added_tokens_encoder", {}))
            # The joiner's ids when it is made of added tokens (nothing merges across it), else None.
            self.joiner_ids = self.encode(CONTEXT_JOINER) if set(CONTEXT_JOINER.split()) <= added else None
        self._persona_cache = {}

    def encode(self, text):
        """The authors' `toker(text).input_ids` (BlenderBot-small's tokenizer adds no bos/eos)."""
        if not self._by_word or any(token in text for token in self._added):
            return self.toker(text, add_special_tokens=False)["input_ids"]
        ids = []
        for word in WORDS.findall(text):
            if word not in self._word_ids:
                self._word_ids[word] = self.toker(word, add_special_tokens=False)["input_ids"]
            ids += self._word_ids[word]
        return ids

    def single_token_id(self, token):
        ids = self.encode(token)
        if len(ids) != 1 or ids[0] == self.toker.unk_token_id:
            raise UserError(f"the tokenizer does not have {token!r} as one token; use a config whose expanded_vocab "
                            f"adds it")
        return ids[0]

    def persona_ids(self, text):
        if text not in self._persona_cache:
            self._persona_cache[text] = self.encode(text)
        return self._persona_cache[text]

    # -- one dialogue

    def dialogue_features(self, data, stage, where="dialogue", dialogue_index=0, with_meta=False):
        """The Features of one reformatted dialogue (a dict with 'dialog' and, for persona, persona/persona_list)."""
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        strat = self.settings.uses_strategy
        turns = checked_turns(data, where, need_strategy=strat)
        personas = self.persona_source(data, where) if strat else None

        def emitted(i):  # never a dialogue's first turn; outside training only right after a seeker turn
            return i > 0 and (stage == "training" or turns[i - 1][0] != "sys")

        cache = {}

        def utterance_ids(text):  # each distinct string of the dialogue tokenized once
            if text not in cache:
                cache[text] = self.encode(text)
            return cache[text]

        if not strat:
            contexts = self.vanilla_contexts(turns, emitted, utterance_ids)
        elif self.joiner_ids is not None:
            contexts = self.strat_contexts_by_utterance(turns, emitted, utterance_ids)
        else:
            contexts = self.strat_contexts(turns, emitted)
        features = []
        for i, seeker_turns, context in contexts:
            text, strategy = turns[i][1], turns[i][2]
            strat_index = STRATEGIES.index(strategy) if strat else None
            persona = self.persona_ids(personas(seeker_turns)) if strat else None
            feature = self.example(context, utterance_ids(text), strat_index, persona)
            feature.dialogue_index, feature.turn_index = dialogue_index, i
            if with_meta:
                feature.meta = self.example_meta(feature, turns[i - 1][1], text)
            features.append(feature)
        return features

    def strat_contexts(self, turns, emitted):
        """(turn index, seeker turns so far, context ids) at each emitted supporter turn.

        `closed` holds the ids up to and including the last strategy token; `parts` the context strings since then
        (the previous supporter turn's text, then whole turns), tokenized as one piece when the next supporter turn
        closes it."""
        closed, parts, seeker_turns = [], [], 0
        for i, (speaker, text, strategy) in enumerate(turns):
            if speaker == "usr":
                seeker_turns += 1
                parts.append(SEEKER_PREFIX + text)
                continue
            piece = self.encode(CONTEXT_JOINER.join(parts + [SUPPORTER_PREFIX]))
            if emitted(i):
                yield i, seeker_turns, closed + piece
            closed += piece + [self.strategy_ids[STRATEGIES.index(strategy)]]
            parts = [text]

    def strat_contexts_by_utterance(self, turns, emitted, utterance_ids):
        """strat_contexts for a joiner of added tokens: the history is its context strings' ids joined by the
        joiner's ids, and a supporter turn's text ids are those of its reply."""
        history, seeker_turns = [], 0
        for i, (speaker, text, strategy) in enumerate(turns):
            if speaker == "usr":
                seeker_turns += 1
                piece = utterance_ids(SEEKER_PREFIX + text)
            else:
                if emitted(i):
                    yield i, seeker_turns, history + self.supporter_prefix_ids
                piece = self.supporter_prefix_ids + [self.strategy_ids[STRATEGIES.index(strategy)]] + utterance_ids(text)
            history += piece + self.joiner_ids

    def vanilla_contexts(self, turns, emitted, utterance_ids):
        """(turn index, None, context ids) at each emitted supporter turn: zcj's utterance ids joined by eos."""
        joined = []
        for i, (speaker, text, _) in enumerate(turns):
            if speaker == "sys" and emitted(i):
                yield i, None, joined[:-1]
            joined += utterance_ids(text) + [self.eos]

    def example(self, context, response, strat_index, persona):
        s = self.settings
        if strat_index is not None:
            labels = ([self.strategy_ids[strat_index]] + response + [self.eos])[:s.max_decoder_input_length + 1]
        else:
            labels = (response + [self.eos])[:s.max_decoder_input_length]
        return Feature(input_ids=context[-s.max_input_length:], decoder_input_ids=[self.bos] + labels[:-1],
                       labels=labels, persona_input_ids=persona, strat_id=strat_index)

    def persona_source(self, data, where):
        """A function: number of seeker turns so far -> persona text (docs/reproduction.md#featurization)."""
        if self.settings.use_all_persona:
            persona = data.get("persona")
            if persona is None:
                return lambda k: EMPTY_PERSONA
            if not isinstance(persona, str):
                raise UserError(f"{where}: 'persona' must be a string")
            return lambda k: persona
        persona_list = data.get("persona_list")
        if persona_list is None:
            return lambda k: EMPTY_PERSONA
        if not isinstance(persona_list, list) or not all(isinstance(p, str) for p in persona_list):
            raise UserError(f"{where}: 'persona_list' must be a list of strings")

        def from_list(k):
            if k < FIRST_PERSONA_SEEKER_TURN:
                return EMPTY_PERSONA
            if k - FIRST_PERSONA_SEEKER_TURN >= len(persona_list):
                raise UserError(f"{where}: persona_list has {len(persona_list)} entries, too few for a supporter turn "
                                f"after the seeker's turn {k} (it needs one entry per seeker turn from the 3rd on)")
            return persona_list[k - FIRST_PERSONA_SEEKER_TURN]
        return from_list

    def example_meta(self, feature, previous_text, response_text):
        """gen.json's post/response/persona as the authors write them."""
        if self.settings.uses_strategy:
            # PAL: the previous turn's normalised text, the raw reference, the persona decoded without added tokens
            persona = self.decode(feature.persona_input_ids, skip_special_tokens=True)
            return {"post": previous_text, "response": response_text, "persona": persona}
        # zcj vanilla: the decoded (lower-cased, tokenized) previous utterance and reference
        return {"post": self.decode(self.encode(previous_text)), "response": self.decode(self.encode(response_text)),
                "persona": ""}

    def decode(self, ids, **kwargs):
        # transformers 4.x cleaned tokenization spaces by default ("kids ." -> "kids."); 5.x does not.
        return self.toker.decode(ids, clean_up_tokenization_spaces=True, **kwargs)

    # -- one file

    def file_features(self, path, stage, with_meta=False, progress=False):
        """Features of every dialogue of a file, as one list per dialogue (in file order)."""
        dialogues = read_dialogues(path)
        if self.settings.persona_in_batches:
            key = "persona" if self.settings.use_all_persona else "persona_list"
            missing = sum(1 for _, d in dialogues if isinstance(d, dict) and key not in d)
            if missing:
                print(f"warning: {path}: {missing} of {len(dialogues)} dialogues have no {key!r}; their persona is "
                      f"{EMPTY_PERSONA!r} (reformat PESConv with --add_persona True to use personas)", file=sys.stderr)
        iterator = dialogues
        if progress:
            iterator = tqdm(dialogues, desc=f"featurizing {os.path.basename(path)}", unit="dialogue")
        return [self.dialogue_features(data, stage, f"{path}: line {line}", index, with_meta)
                for index, (line, data) in enumerate(iterator)]


# ------------------------------------------------------------------------------------------------ batches

def pad_right(sequences, length, value):
    out = torch.full((len(sequences), length), value, dtype=torch.long)
    for row, seq in enumerate(sequences):
        out[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
    return out


def collate(features, pad_id, persona_in_batches):
    """The batch dict of the contract. With persona, context and persona share one length: the longest of either.

    Without persona tensors (Blender-Joint, vanilla) the context is padded to the longest context. (The authors' strat
    inputter padded to the longest of context and persona for every config; for models without the fusion the extra
    padding is masked out, so only float rounding can differ.)
    """
    lengths = [len(f.input_ids) for f in features]
    if persona_in_batches:
        lengths += [len(f.persona_input_ids) for f in features]
    width = max(lengths)
    batch = {
        "input_ids": pad_right([f.input_ids for f in features], width, pad_id),
        "attention_mask": pad_right([[1] * len(f.input_ids) for f in features], width, 0),
    }
    if persona_in_batches:
        batch["persona_input_ids"] = pad_right([f.persona_input_ids for f in features], width, pad_id)
        batch["persona_attention_mask"] = pad_right([[1] * len(f.persona_input_ids) for f in features], width, 0)
    target = max(len(f.labels) for f in features)
    batch["decoder_input_ids"] = pad_right([f.decoder_input_ids for f in features], target, pad_id)
    batch["labels"] = pad_right([f.labels for f in features], target, -100)
    if features[0].strat_id is not None:
        batch["strat_id"] = torch.tensor([f.strat_id for f in features], dtype=torch.long)
    return batch


def inference_collate(features, pad_id, persona_in_batches):
    """A batch plus "meta": lists of sample_id, post, response and persona text (for gen.json)."""
    batch = collate(features, pad_id, persona_in_batches)
    batch["meta"] = {"sample_id": [f.dialogue_index for f in features],
                     **{key: [f.meta.get(key, "") for f in features] for key in ("post", "response", "persona")}}
    return batch


def validation_batches(dialogue_features, batch_size, pad_id, persona_in_batches):
    """Whole dialogues in file order; a batch is emitted as soon as >= batch_size examples are pending (the authors')."""
    pending = []
    for features in dialogue_features:
        pending.extend(features)
        if len(pending) >= batch_size:
            yield collate(pending, pad_id, persona_in_batches)
            pending = []
    if pending:
        yield collate(pending, pad_id, persona_in_batches)


def inference_batches(dialogue_features, batch_size, pad_id, persona_in_batches):
    """Exactly batch_size consecutive examples in file order (the last batch shorter), with meta."""
    flat = [f for features in dialogue_features for f in features]
    for start in range(0, len(flat), batch_size):
        yield inference_collate(flat[start:start + batch_size], pad_id, persona_in_batches)


class BucketBatchSampler:
    """The authors' training order: shuffle, sort buckets of bucket_factor * batch_size by length, cut full batches.

    Each epoch: shuffle all indices, cut them into buckets of `bucket_factor * batch_size`, sort each bucket by
    length (longest first; equal lengths keep their shuffled order), cut each bucket into batches of `batch_size`,
    drop incomplete batches, shuffle the batches. The randomness comes from `random.Random(seed)`, whose state
    carries over from epoch to epoch: the same sequence as the authors' global `random` after `set_seed(seed)`.
    """

    def __init__(self, lengths, batch_size, seed, bucket_factor=100):
        if batch_size < 1:
            raise UserError(f"batch size must be at least 1, got {batch_size}")
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.bucket_size = bucket_factor * batch_size
        self.rng = random.Random(seed)

    def epoch_batches(self):
        ids = list(range(len(self.lengths)))
        self.rng.shuffle(ids)
        batches = []
        for start in range(0, len(ids), self.bucket_size):
            bucket = sorted(ids[start:start + self.bucket_size], key=lambda i: self.lengths[i], reverse=True)
            batches += [bucket[b:b + self.batch_size] for b in range(0, len(bucket), self.batch_size)]
        batches = [b for b in batches if len(b) == self.batch_size]
        self.rng.shuffle(batches)
        return batches

    def batches_per_epoch(self):
        # bucket_size is a multiple of batch_size, so only the last bucket can leave an incomplete batch
        return len(self.lengths) // self.batch_size

    def nominal_batches_per_epoch(self):
        """ceil(examples / batch size): what the authors' schedule counts per epoch (no batch dropped)."""
        return math.ceil(len(self.lengths) / self.batch_size)
