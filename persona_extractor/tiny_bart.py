"""A tiny random-weight BART saved like a real checkpoint: for tests, the demo and CPU smoke runs of the extractor.

    RUN/python -m persona_extractor.tiny_bart OUT_DIR [--tokenizer_dir ../shared/models/bart-base]

With --tokenizer_dir the real BART vocabulary is used (bart-large-cnn shares bart-base's); without it a tiny
byte-level BPE (every byte plus a few whole words) is written, so nothing outside the repository is needed.
Either way <persona> and <sep> are added and the model is saved with save_pretrained, so the real loading code
(`persona_extractor.modeling.load_tokenizer_and_model`) is what gets exercised.
"""
import argparse
import json
import os
import sys
import tempfile

import torch
from transformers import BartConfig, BartForConditionalGeneration, BartTokenizer

from persona_extractor.modeling import add_extractor_tokens
from palkit.options import add_seed_argument

COMMON_WORDS = ["i", "am", "a", "the", "my", "have", "like", "to", "and", "is", "job", "feel", "you", "it", "do",
                "not", "so", "love", "work", "kids", "dog", "sad", "friend", "persona", "sep"]


def byte_symbols():
    """Byte -> printable symbol table of byte-level BPE: printable Latin-1 bytes stand for themselves, the
    others are moved to code points from 256 on (so a space is 'Ġ', a newline 'Ċ')."""
    printable = [b for b in range(256) if (33 <= b <= 126) or (161 <= b <= 172) or (174 <= b <= 255)]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def make_tiny_bart_tokenizer(out_dir):
    """Write vocab.json + merges.txt of a tiny byte-level BPE that BartTokenizer loads; returns out_dir."""
    os.makedirs(out_dir, exist_ok=True)
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for symbol in byte_symbols().values():
        vocab.setdefault(symbol, len(vocab))
    space = byte_symbols()[ord(" ")]
    merges = []
    # After-a-space forms first: BPE applies lower-ranked merges first, so " am" becomes "Ġam", not "Ġ" + "am".
    forms = [space + w for w in COMMON_WORDS] + COMMON_WORDS
    for form in forms:
        if len(form) > 1:
            prefix = form[0]
            for ch in form[1:]:
                merge = f"{prefix} {ch}"
                prefix += ch
                if merge not in merges:
                    merges.append(merge)
                vocab.setdefault(prefix, len(vocab))
    vocab["<mask>"] = len(vocab)
    with open(os.path.join(out_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(out_dir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    return out_dir


def tiny_bart_config(vocab_size, d_model=32, layers=1, heads=2, ffn=64, max_positions=1024, dropout=0.1):
    """A BART config with BART's special ids (bos 0, pad 1, eos 2), shrunk."""
    return BartConfig(
        vocab_size=vocab_size, d_model=d_model, encoder_layers=layers, decoder_layers=layers,
        encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=ffn, decoder_ffn_dim=ffn,
        max_position_embeddings=max_positions, dropout=dropout, attention_dropout=0.0, activation_dropout=0.0,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=2,
    )


def load_base_tokenizer(tokenizer_dir=None):
    """The tokenizer of `tokenizer_dir` (e.g. ../shared/models/bart-base), or the tiny self-made one."""
    if tokenizer_dir is not None:
        return BartTokenizer.from_pretrained(tokenizer_dir)
    with tempfile.TemporaryDirectory() as tmp:
        return BartTokenizer.from_pretrained(make_tiny_bart_tokenizer(tmp))


def make_tiny_bart_dir(out_dir, tokenizer_dir=None, seed=0, add_tokens=True, **config_kwargs):
    """Save a randomly initialised tiny BART (+ tokenizer, with <persona>/<sep> unless add_tokens=False)."""
    tokenizer = load_base_tokenizer(tokenizer_dir)
    if add_tokens:
        add_extractor_tokens(tokenizer)
    torch.manual_seed(seed)
    model = BartForConditionalGeneration(tiny_bart_config(len(tokenizer), **config_kwargs))
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write a tiny random-weight BART (for CPU smoke runs and tests).")
    parser.add_argument("out_dir")
    parser.add_argument("--tokenizer_dir", default=None,
                        help="copy the vocabulary from this BART tokenizer folder (default: a tiny byte-level BPE)")
    parser.add_argument("--d_model", type=int, default=32)
    parser.add_argument("--layers", type=int, default=1)
    add_seed_argument(parser, 0)
    args = parser.parse_args(argv)
    make_tiny_bart_dir(args.out_dir, args.tokenizer_dir, seed=args.seed, d_model=args.d_model, layers=args.layers)
    print(f"tiny BART written to {args.out_dir}")


if __name__ == "__main__":
    sys.exit(main())
