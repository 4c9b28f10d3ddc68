"""A tiny randomly initialised Llama chat model written to disk like a real one (tests, quick runs): a
character-level tokenizer with ChatML-style turn markers and, unless asked not to, a chat template."""
import os
import string

CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
SPECIAL = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"]


def make_tiny_chat_llm(out_dir, chat_template=True, seed=0):
    import torch  # lazy: torch loads in seconds; --help and the spec checks run without it
    from tokenizers import Tokenizer, decoders, models
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    os.makedirs(out_dir, exist_ok=True)
    vocab = {tok: i for i, tok in enumerate(SPECIAL + list(" \n" + string.ascii_letters + string.digits
                                                         + string.punctuation))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.decoder = decoders.Fuse()
    toker = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", unk_token="<unk>",
                                    eos_token="<|im_end|>", additional_special_tokens=SPECIAL[2:])
    if chat_template:
        toker.chat_template = CHAT_TEMPLATE
    toker.save_pretrained(out_dir)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         pad_token_id=vocab["<pad>"], eos_token_id=vocab["<|im_end|>"], bos_token_id=None)
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(out_dir)
    return out_dir
