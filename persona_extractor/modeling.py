"""The extractor's BART: loading, and token ids / decoded text exactly as the authors' transformers 4.x made them.

Fidelity notes (what the authors' code did, reproduced here on transformers 5):
- Token ids: their slow BartTokenizer, called with add_prefix_space=True and with <persona>/<sep> added as plain
  special tokens, put one space before the text and stripped the whitespace on both sides of every special token.
  transformers 5 does neither, so `encode_texts` rebuilds those ids (tests check them against ids produced by
  transformers 4.24 and 4.30).
- Decoding: their `decode(..., clean_up_tokenization_spaces=True)` joined added tokens with spaces and removed
  the space before punctuation ("kids ." -> "kids."); transformers 5 no longer cleans BPE output, so
  `decode_like_authors` does both.
- Generation: 10 beams, max length 128, early stopping; every other decoding setting comes from the checkpoint's
  generation config, as their generate() call took it from the model config (for bart-large-cnn: min_length 56,
  no_repeat_ngram_size 3, length_penalty 2.0, forced_bos_token_id 0).
- New embedding rows for <persona>/<sep> are drawn from N(0, init_std) as 4.x did (5.x defaults to mean-resizing).
"""
import os
import re
from dataclasses import dataclass

from palkit.hub import did_you_mean, from_folder_or_hub
from palkit.model_files import check_model_dir, check_tokenizer_dir
from palkit.cli import UserError
from persona_extractor.persona_text import EXTRA_TOKENS

DEFAULT_MODEL = "facebook/bart-large-cnn"
# Generation settings of the authors' infer step; everything else comes from the checkpoint's generation config.
NUM_BEAMS = 10
MAX_GEN_LENGTH = 128
MAX_INPUT_LENGTH = 512  # the authors' infer step truncates inputs to 512 tokens (training uses 128)
MODEL_HINT = ("give a local directory holding a BART checkpoint saved with save_pretrained (config.json, "
              "model weights, tokenizer files) or a hub name such as facebook/bart-large-cnn")

_CLEANUPS = [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
             (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")]


def clean_up_spaces(text):
    """The space clean-up transformers 4.x applied when decoding (removed for BPE tokenizers in 5.x)."""
    for before, after in _CLEANUPS:
        text = text.replace(before, after)
    return text


# ------------------------------------------------------------------------------------------- tokenization

def add_extractor_tokens(tokenizer):
    """Add <persona> and <sep> (as the authors did) unless the tokenizer already has them."""
    missing = [t for t in EXTRA_TOKENS if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_special_tokens({"additional_special_tokens": missing})
    return tokenizer


def _special_token_pattern(tokenizer):
    specials = set(tokenizer.all_special_tokens) | set(EXTRA_TOKENS)
    ordered = sorted(specials, key=len, reverse=True)  # longest first so "</s>" is not read as "<s>"
    return re.compile("(" + "|".join(re.escape(t) for t in ordered) + ")")


def _segments(pattern, text):
    """Alternating (plain text, special token, plain text, ...) pieces with the authors' whitespace handling."""
    parts = pattern.split(" " + text)  # add_prefix_space=True: one space before the whole text
    for i in range(0, len(parts), 2):  # even indices are plain text, odd ones special tokens
        if i > 0:
            parts[i] = parts[i].lstrip()  # a special token eats the whitespace on its right ...
        if i < len(parts) - 1:
            parts[i] = parts[i].rstrip()  # ... and on its left
    return parts


def encode_texts(tokenizer, texts, max_length):
    """Token ids as the authors' tokenizer call made them: <s> + ids (cut to max_length - 2) + </s>."""
    pattern = _special_token_pattern(tokenizer)
    split_texts = [_segments(pattern, t) for t in texts]
    plain = [p for parts in split_texts for p in parts[0::2] if p]
    plain_ids = iter(tokenizer(plain, add_special_tokens=False)["input_ids"] if plain else [])
    encoded = []
    for parts in split_texts:
        ids = []
        for i, part in enumerate(parts):
            if i % 2:
                ids.append(tokenizer.convert_tokens_to_ids(part))
            elif part:
                ids.extend(next(plain_ids))
        encoded.append([tokenizer.bos_token_id] + ids[:max_length - 2] + [tokenizer.eos_token_id])
    return encoded


def decode_like_authors(tokenizer, ids):
    """The text their decode(ids, clean_up_tokenization_spaces=True) returned, special tokens included."""
    added = {tokenizer.convert_tokens_to_ids(t): t for t in EXTRA_TOKENS}
    pieces, run = [], []
    for token_id in ids:
        if token_id in added:
            if run:
                pieces.append(tokenizer.convert_tokens_to_string(tokenizer.convert_ids_to_tokens(run)))
                run = []
            pieces.append(added[token_id])
        else:
            run.append(token_id)
    if run:
        pieces.append(tokenizer.convert_tokens_to_string(tokenizer.convert_ids_to_tokens(run)))
    return clean_up_spaces(" ".join(pieces))


def pad_batch(sequences, pad_id):
    """Right-padded id tensor and attention mask for a list of id lists."""
    import torch  # lazy: a second to import; the scripts' --help reads this module
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, :len(seq)] = 1
    return ids, mask


# ------------------------------------------------------------------------------------------------- model

# Where a trained extractor comes from (annotation, interact, the human-evaluation app): not the untrained base model.
EXTRACTOR_HINT = ("train the persona extractor first (bash RUN/prepare_persona_data.sh, then bash "
                  "RUN/train_persona_extractor.sh: its best/ folder is the extractor), or give such a folder")


def _check_model_location(path, hint=MODEL_HINT):
    looks_like_hub_name = path.count("/") == 1 and not path.startswith((".", "/", "~")) and not os.path.exists(path)
    if os.path.isdir(path) or looks_like_hub_name:
        return
    raise UserError(f"model {path!r} not found: {hint}{did_you_mean(path, (DEFAULT_MODEL,))}")


def checkpoint_dir(path):
    """`path` itself, or its best/ checkpoint when `path` is a train_bart.py output folder."""
    path = str(path)
    best = os.path.join(path, "best")
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "config.json")) and os.path.isdir(best):
        return best
    return path


def load_tokenizer_and_model(path, hint=MODEL_HINT):
    """BART tokenizer (with <persona>, <sep>) and model (embeddings resized to the tokenizer) from `path`
    (a save_pretrained folder, a train_bart.py output folder, whose best/ is used, or a hub name)."""
    from transformers import BartForConditionalGeneration, BartTokenizer  # lazy: seconds to import
    path = checkpoint_dir(path)
    _check_model_location(path, hint)
    check_tokenizer_dir(path, hint=hint)  # no silent substitute for missing tokenizer files
    check_model_dir(path, hint=hint)
    try:
        tokenizer, model = from_folder_or_hub(lambda **kw: (BartTokenizer.from_pretrained(path, **kw),
                                                            BartForConditionalGeneration.from_pretrained(path, **kw)),
                                              path, hint, known=(DEFAULT_MODEL,))
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load a BART checkpoint from {path!r} ({str(e).splitlines()[0]}): {hint}")
    add_extractor_tokens(tokenizer)
    if model.get_input_embeddings().num_embeddings != len(tokenizer):
        # transformers 4.x (the authors') drew new rows from N(0, init_std); 5.x defaults to mean-resizing.
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    return tokenizer, model


@dataclass
class DecodingSettings:
    """The authors' infer settings; None means 'as the checkpoint's generation config says'."""
    num_beams: int = NUM_BEAMS
    max_length: int = MAX_GEN_LENGTH
    early_stopping: bool = True
    min_length: int = None
    no_repeat_ngram_size: int = None
    length_penalty: float = None

    def generate_kwargs(self, tokenizer):
        kwargs = {"num_beams": self.num_beams, "max_length": self.max_length, "early_stopping": self.early_stopping,
                  "decoder_start_token_id": tokenizer.eos_token_id, "eos_token_id": tokenizer.eos_token_id,
                  "pad_token_id": tokenizer.pad_token_id}
        for name in ("min_length", "no_repeat_ngram_size", "length_penalty"):
            if getattr(self, name) is not None:
                kwargs[name] = getattr(self, name)
        return kwargs
