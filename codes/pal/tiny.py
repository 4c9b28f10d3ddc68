"""Tiny stand-ins for the real tokenizer and weights: used by tests, the demo and `bench.py --small`.

Everything here is written to disk in the same layout as the real `facebook/blenderbot_small-90M`
folder, so the real loading code (`from_pretrained` on a directory) is what gets exercised.
"""
import argparse
import json
import os
import string

import torch
from transformers import (BertConfig, BertModel, BertTokenizer, BlenderbotSmallConfig,
                          BlenderbotSmallForConditionalGeneration)

from palkit.options import add_seed_argument

SPECIAL_TOKENS = ["__null__", "__start__", "__end__", "__unk__"]  # pad, bos, eos, unk: ids 0-3 as in the real vocab
# A few whole words so that tiny models see multi-character tokens too; everything else falls back to characters.
COMMON_WORDS = ["i", "you", "the", "a", "to", "and", "my", "is", "it", "that", "feel", "am", "are", "do", "have",
                "job", "friend", "sad", "happy", "help", "what", "how", "why", "sorry", "hear", "can", "not", "so"]


def make_tiny_blenderbot_tokenizer(out_dir):
    """Write a character-level BlenderBot-small style BPE vocabulary (vocab.json + merges.txt) to out_dir."""
    os.makedirs(out_dir, exist_ok=True)
    symbols = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for piece in symbols + [s + "@@" for s in symbols] + COMMON_WORDS:
        vocab.setdefault(piece, len(vocab))
    merges = ["#version: 0.2"]
    for word in COMMON_WORDS:  # merge characters left to right until the whole word is one token
        if len(word) < 2:
            continue
        prefix = word[0]
        for ch in word[1:-1]:
            merges.append(f"{prefix} {ch}")
            prefix += ch
            vocab.setdefault(prefix, len(vocab))
            vocab.setdefault(prefix + "@@", len(vocab))  # a merged prefix may end up mid-word too
        merges.append(f"{prefix} {word[-1]}</w>")
    with open(os.path.join(out_dir, "vocab.json"), "w") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(out_dir, "merges.txt"), "w") as f:
        f.write("\n".join(merges) + "\n")
    with open(os.path.join(out_dir, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": "__start__", "eos_token": "__end__", "unk_token": "__unk__", "pad_token": "__null__"}, f)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "BlenderbotSmallTokenizer", "unk_token": "__unk__", "bos_token": "__start__",
                   "eos_token": "__end__", "pad_token": "__null__"}, f)
    return out_dir


def tiny_blenderbot_config(vocab_size, d_model=32, layers=2, heads=2, ffn=64, max_positions=512):
    """A BlenderBot-small config with the real model's special ids and layer-norm variant, shrunk."""
    return BlenderbotSmallConfig(
        vocab_size=vocab_size, d_model=d_model, encoder_layers=layers, decoder_layers=layers,
        encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=ffn, decoder_ffn_dim=ffn,
        max_position_embeddings=max_positions, pad_token_id=0, bos_token_id=1, eos_token_id=2,
        decoder_start_token_id=1, scale_embedding=True, dropout=0.1, attention_dropout=0.0, activation_dropout=0.0,
    )


def make_tiny_blenderbot_dir(out_dir, tokenizer_dir=None, seed=0, **config_kwargs):
    """Write a randomly initialised tiny BlenderBot-small (weights + config + tokenizer files) to out_dir.

    tokenizer_dir: copy the tokenizer files from there (e.g. the real ../shared/models/Blenderbot_small-90M);
    a tiny character-level tokenizer is written when it is None.
    """
    os.makedirs(out_dir, exist_ok=True)
    if tokenizer_dir is None:
        make_tiny_blenderbot_tokenizer(out_dir)
    else:
        for name in ("vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"):
            src = os.path.join(tokenizer_dir, name)
            if os.path.exists(src):
                with open(src, "rb") as fin, open(os.path.join(out_dir, name), "wb") as fout:
                    fout.write(fin.read())
    with open(os.path.join(out_dir, "vocab.json")) as f:
        vocab_size = len(json.load(f))
    torch.manual_seed(seed)
    model = BlenderbotSmallForConditionalGeneration(tiny_blenderbot_config(vocab_size, **config_kwargs))
    model.save_pretrained(out_dir)
    return out_dir


def make_tiny_bert_dir(out_dir, words=None, seed=0, hidden_size=16):
    """A random tiny BERT encoder with a word-level vocabulary: a stand-in for SimCSE in Cos-Sim tests and the demo.

    `words` extends the vocabulary (lower-cased whole words; anything else maps to [UNK]). The initializer is wide
    so that different texts get clearly different pooler outputs.
    """
    os.makedirs(out_dir, exist_ok=True)
    words = list(dict.fromkeys(words if words is not None else COMMON_WORDS + list(string.punctuation)))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [w for w in words if w not in ("[PAD]", "[UNK]")]
    with open(os.path.join(out_dir, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden_size, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=2 * hidden_size, max_position_embeddings=512, initializer_range=0.5)
    BertModel(config).save_pretrained(out_dir)
    BertTokenizer(os.path.join(out_dir, "vocab.txt")).save_pretrained(out_dir)
    return out_dir


def main(argv=None):
    """RUN/python -m pal.tiny {blenderbot,bert} OUT_DIR [--tokenizer_dir DIR]: write a tiny random model."""
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("family", choices=["blenderbot", "bert"])
    p.add_argument("out_dir")
    p.add_argument("--tokenizer_dir", default=None,
                   help="blenderbot: copy the tokenizer files from here (default: a tiny character-level one)")
    add_seed_argument(p, 0)
    args = p.parse_args(argv)
    if args.family == "blenderbot":
        make_tiny_blenderbot_dir(args.out_dir, tokenizer_dir=args.tokenizer_dir, seed=args.seed)
    else:
        make_tiny_bert_dir(args.out_dir, seed=args.seed)
    print(f"wrote a tiny random {args.family} to {args.out_dir}")


if __name__ == "__main__":
    main()
