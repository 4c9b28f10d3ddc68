"""A PAL-family checkpoint (PAL, PAL alpha=0, Blender-Joint, vanilla) as a system, decoding conversations in
batches.

A batch gives each conversation the reply it gets alone: every row samples from its own generator seeded with its
seed, and, because PAL's fusion attends over padding (as the authors'; docs/reproduction.md#batching), each row is
encoded and fused at the length it is padded to alone (`own_length`: pal.generation.encoder_streams), the longer
padding of the batch zero and masked. The logits then differ from the row's alone at float rounding only, as those
of any batch do (rows of one length included). `fusion_mask_padding` masks all padding in the fusion: a deviation from the authors' outputs, for
checkpoints trained with it.
"""
import dataclasses
import os
import threading

from pal.chat import DECODING_DEFAULTS, DUMMY_STRATEGY, PersonaSource, reply_feature
from persona_extractor.extractor import PersonaExtractor
from pal.config import STRATEGIES, load_config
from pal.generation import decode_text, decoding_options, generate
from pal.inputter import Featurizer, collate, settings_for
from palkit.cli import UserError
from palkit.run_folder import MODEL_CONFIG_FILE, read_run_args

from chat_systems.reply import Reply, TokenRecord, check_messages, is_greedy, per_conversation

DEFAULT_SEED = 0  # seed=None decodes as seed 0: every system's reply is a function of its inputs


def turns_of(messages):
    """pal.chat turns from OpenAI-style messages: system messages are not PAL's input; an assistant turn without a
    "strategy" gets pal.chat.DUMMY_STRATEGY (the strat inputter needs one per supporter turn)."""
    turns = []
    for m in messages:
        if m["role"] == "user":
            turns.append({"speaker": "usr", "text": m["content"]})
        elif m["role"] == "assistant":
            turns.append({"speaker": "sys", "text": m["content"], "strategy": m.get("strategy") or DUMMY_STRATEGY})
    return turns


class PalSystem:
    """chat_systems.system.System of a PAL-family checkpoint."""

    def __init__(self, spec, device="cpu", persona_extractor=None, pretrained_model_path=None, decoding=None,
                 persona_source=None, fusion_mask_padding=False):
        import torch  # noqa: F401 (fail early when torch is missing)
        from pal.model import build_model
        self.spec, self.name, self.kind, self.device = spec, spec.name, spec.kind, device
        self.lock = threading.Lock()
        run_dir = os.path.dirname(os.path.abspath(spec.checkpoint))
        recorded = read_run_args(run_dir) or {}
        pretrained = pretrained_model_path or recorded.get("pretrained_model_path")
        config_dir = run_dir if os.path.isfile(os.path.join(run_dir, MODEL_CONFIG_FILE)) else None
        self.toker, self.model = build_model(spec.config, pretrained, spec.checkpoint, device=device,
                                             model_config_dir=config_dir, fusion_mask_padding=fusion_mask_padding)
        self.model.eval()
        settings = settings_for(load_config(spec.config), spec.inputter, use_all_persona=True)
        self.featurizer = Featurizer(self.toker, settings)
        self.decoding = decoding_options(**{**DECODING_DEFAULTS, **(decoding or {})}, strategy_alpha=spec.alpha)
        if persona_source is None:
            extractor = PersonaExtractor.from_pretrained(persona_extractor, device=device) if persona_extractor else None
            persona_source = PersonaSource(extractor=extractor)
        self.persona_source = persona_source
        self.capabilities = dataclasses.replace(spec.capabilities, persona=spec.uses_persona,
                                                strategies=self.model.predicts_strategy)
        # PAL's fusion over unmasked padding: each row of a batch is encoded and fused at its own padded length
        self.fuses_own_length = getattr(self.model, "fusion_mask_padding", True) is False
        self.prefix_length = 2 if self.model.predicts_strategy else 1  # [bos, strategy] or [bos]
        self.forced_eos = self.model.config.forced_eos_token_id is not None  # the last position is always eos

    def identity(self):
        return self.spec.identity()

    @property
    def live_persona(self):
        return self.persona_source.extractor is not None

    def decoding_for(self, temperature=None, top_p=None, max_tokens=None):
        """The released decoding with a request's overrides; a temperature below GREEDY_BELOW means greedy.
        max_tokens=N allows N reply tokens (the forced end-of-reply token takes one more position) and keeps the
        released minimum length where it fits."""
        changes = {}
        if temperature is not None and is_greedy(temperature):
            changes["do_sample"] = False
        elif temperature is not None:
            changes["temperature"] = temperature
        if top_p is not None:
            changes["top_p"] = top_p
        if max_tokens is not None:
            changes.update(max_length=max_tokens + self.forced_eos,
                           min_length=min(self.decoding.min_length, max_tokens + self.prefix_length))
        options = dataclasses.replace(self.decoding, **changes)
        options.check()
        return options

    def prepare(self, messages):
        """(persona, feature) of a conversation (a live persona is inferred from the seeker's turns)."""
        turns = turns_of(check_messages(messages))
        persona = self.persona_source.for_turn([t["text"] for t in turns if t["speaker"] == "usr"])
        return persona, reply_feature(self.featurizer, turns, persona)

    def reply(self, messages, *, seed=None, temperature=None, top_p=None, max_tokens=None, **more):
        return self.reply_batch([messages], seed=seed, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                                **more)[0]

    def reply_batch(self, conversations, *, seed=None, temperature=None, top_p=None, max_tokens=None, logprobs=None,
                    text_by_token=False, on_token=None, **more):
        """Each conversation's reply, as it gets it alone, decoded as one batch. `seed`: one for all or one per
        conversation; logprobs=K, text_by_token, on_token(row, final_text): chat_systems.reply.TokenRecord."""
        decoding = self.decoding_for(temperature, top_p, max_tokens)
        seeds = [DEFAULT_SEED if s is None else s for s in per_conversation(seed, len(conversations))]
        if decoding.num_beams > 1:  # beam search decodes one conversation at a time
            return [self.decode([m], [s], decoding, logprobs, text_by_token, on_token)[0]
                    for m, s in zip(conversations, seeds)]
        return self.decode(conversations, seeds, decoding, logprobs, text_by_token, on_token)

    def decode(self, conversations, seeds, decoding, logprobs, text_by_token, on_token):
        """One batch, under the system's lock (one model call, live persona included, at a time)."""
        import torch  # lazy: torch loads in seconds; --help and the spec checks run without it
        if decoding.num_beams > 1 and (logprobs is not None or text_by_token or on_token):
            raise UserError(f"system {self.name}: beam search (num_beams {decoding.num_beams}) gives no logprobs "
                            f"and no stream")
        record = TokenRecord(len(conversations), [self.toker.eos_token_id], self.token_text, self.reply_text,
                             logprobs, text_by_token, on_token)
        with self.lock:
            prepared = [self.prepare(m) for m in conversations]
            features = [feature for _, feature in prepared]
            batch = collate(features, self.toker.pad_token_id, self.featurizer.settings.persona_in_batches)
            if self.fuses_own_length:
                batch["own_length"] = torch.tensor([max(len(f.input_ids), len(f.persona_input_ids))
                                                    for f in features])
            if decoding.num_beams > 1:  # beam sampling draws from the global generator, as the authors'
                torch.manual_seed(seeds[0])
                out = generate(self.model, batch, self.toker, **vars(decoding))
            else:
                generators = [torch.Generator().manual_seed(s) for s in seeds] if decoding.sampling() else None
                out = generate(self.model, batch, self.toker, generators=generators, on_step=record.step,
                               **vars(decoding))
        limit = decoding.max_length - self.forced_eos  # reply tokens at most
        shown = self.spec.uses_persona or self.live_persona  # Blender-Joint/vanilla see no persona
        prompt_tokens = sum(batch[k].sum(dim=1) for k in ("attention_mask", "persona_attention_mask") if k in batch)
        replies = []
        for row, ((persona, _), ids) in enumerate(zip(prepared, out["sequences"])):
            reply = Reply(text=self.reply_text(ids),
                          strategy=STRATEGIES[out["pred_strat_id"][row]] if "pred_strat_id" in out else None,
                          persona=persona if shown else None, finish_reason="length" if len(ids) >= limit else "stop",
                          usage={"prompt_tokens": int(prompt_tokens[row]), "completion_tokens": len(ids)})
            replies.append(record.annotate(row, reply))
        return replies

    def reply_text(self, ids):
        return decode_text(self.toker, ids)

    def token_text(self, token_id):
        return self.toker.convert_ids_to_tokens(token_id)
