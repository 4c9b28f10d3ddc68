"""The decoding options, declared once: name, type, default, valid range and help (docs/reproduction.md#defaults).

`DecodingOptions` is what pal.generation.generate takes; each field's `cli` metadata is how a command line offers it
(pal.options.add_decoding_arguments). Defaults: the released RUN/infer_strat.sh; `CHAT_DECODING` holds the authors'
interaction settings (RUN/interact_strat.sh), the defaults of the chat front ends. Imports no torch, so command
lines and the result readers can use it.
"""
from dataclasses import dataclass, field, fields, replace

from palkit.argtypes import (boolean_string, float_range, int_range, non_negative_int, positive_float, positive_int,
                             probability)
from palkit.cli import UserError
from .config import STRATEGIES

NUM_STRATEGIES = len(STRATEGIES)
STRATEGY_CONTRAST = 0.075  # the authors' fixed contrast weight for the strategy step
CONTRASTIVE_IMPLS = ("stacked", "two_pass")  # docs/reproduction.md#contrastive-decoding
CONTRASTIVE_IMPL_HELP = ("PAL's contrastive decoder: stacked (default, faster) runs both streams as one decoder call, "
                         "one lm_head, and reuses the strategy step's cache; two_pass is the released computation, "
                         "exact (stacked logits differ at float rounding; same replies in our tests)")


def parse_alpha(value):
    """strategy_alpha: None (the checkpoint's), one number for every strategy, or 8 numbers in strategy-id order,
    given as a number, a list or the command line's text ("0", "0.5,0,..."); returns None, a float or 8 floats."""
    if value is None:
        return None
    try:
        numbers = [float(v) for v in value] if isinstance(value, (list, tuple)) else \
            [float(v) for v in str(value).split(",")]
    except ValueError:
        raise UserError(f"--strategy_alpha {value!r}: expected a number or {NUM_STRATEGIES} comma-separated numbers")
    if len(numbers) not in (1, NUM_STRATEGIES):
        raise UserError(f"strategy_alpha override needs 1 or {NUM_STRATEGIES} values, got {len(numbers)}")
    return numbers[0] if len(numbers) == 1 else numbers


def alpha_argument(text):
    """argparse type of --strategy_alpha: the text as given (it names result folders), checked by parse_alpha."""
    parse_alpha(text)
    return text


def _cli(type=None, help=None, **more):
    """How a command line offers the option (argparse keywords); the default comes from the dataclass."""
    return {"cli": {"type": type, "help": help, **more}}


@dataclass
class DecodingOptions:
    """Defaults: the released RUN/infer_strat.sh (docs/reproduction.md#defaults)."""
    max_length: int = field(default=50, metadata=_cli(positive_int, "reply tokens (prefix not counted)"))
    min_length: int = field(default=10, metadata=_cli(non_negative_int, "decoder tokens, prefix counted"))
    temperature: float = field(default=0.5, metadata=_cli(positive_float, "softmax temperature when sampling"))
    top_k: int = field(default=10, metadata=_cli(non_negative_int, "sample among the k likeliest tokens (0: all)"))
    top_p: float = field(default=0.9, metadata=_cli(probability,
                                                   "nucleus sampling: the likeliest tokens up to this mass"))
    num_beams: int = field(default=1, metadata=_cli(positive_int, "beam search with this many beams (1: none)"))
    length_penalty: float = field(default=1.0, metadata=_cli(float_range(), "beams: scores divided by length**this"))
    repetition_penalty: float = field(default=1.03, metadata=_cli(
        positive_float, "logits of tokens already in the reply are penalised by this factor"))
    no_repeat_ngram_size: int = field(default=0, metadata=_cli(non_negative_int,
                                                                "no n-gram of this size twice (0: off)"))
    num_return_sequences: int = field(default=1, metadata=_cli(int_range(1, 1), "only 1 is supported"))
    do_sample: bool | None = field(default=None, metadata=_cli(  # None: the authors' rule
        boolean_string, "default: the authors' rule, sample when top_k > 0 or top_p < 1"))
    use_gold_strategy: bool = field(default=False, metadata=_cli(
        boolean_string, "decode the reply after the gold strategy instead of the predicted one", nargs="?",
        const=True))
    strategy_alpha: float | list | None = field(default=None, metadata=_cli(  # None: the checkpoint's 8 values
        alpha_argument, "override the checkpoint's per-strategy alpha: one number (0 = 'PAL alpha=0') or 8 "
                        "comma-separated numbers in strategy-id order"))
    strategy_top3_k: int = field(default=5, metadata=_cli(  # the authors' "top3" is a top-5
        int_range(1, NUM_STRATEGIES), "ids kept in pred_strat_id_top3; the authors' code keeps 5 (topk k=5), 3 gives "
                                      "a true top-3"))
    use_cache: bool = field(default=True, metadata=_cli(boolean_string, "False: recompute the prefix every step"))
    contrastive_impl: str = field(default="stacked", metadata=_cli(  # see CONTRASTIVE_IMPLS
        None, CONTRASTIVE_IMPL_HELP, choices=CONTRASTIVE_IMPLS))
    early_stopping: bool = False
    encoder_no_repeat_ngram_size: int = 0  # accepted; bans nothing (docs/reproduction.md#contrastive-decoding)
    strategy_contrast: float = STRATEGY_CONTRAST

    def sampling(self):
        return bool(self.do_sample) if self.do_sample is not None else (self.top_k > 0 or self.top_p < 1)

    def check(self):
        if self.num_return_sequences != 1:
            raise UserError("num_return_sequences > 1 is not supported (the released scripts use 1)")
        if self.num_beams < 1 or self.max_length < 0:
            raise UserError(f"need num_beams >= 1 and max_length >= 0, got {self.num_beams} and {self.max_length}")
        if self.contrastive_impl not in CONTRASTIVE_IMPLS:
            raise UserError(f"contrastive_impl must be one of {', '.join(CONTRASTIVE_IMPLS)}, "
                            f"got {self.contrastive_impl!r}")
        if self.sampling() and self.temperature <= 0:
            raise UserError(f"temperature must be > 0 when sampling, got {self.temperature}")


# the options a command line offers (the others keep their defaults)
CLI_OPTIONS = tuple(f.name for f in fields(DecodingOptions) if "cli" in f.metadata)
# the chat front ends (interact.py, the human-evaluation apps, chat_systems' PAL): the authors' interaction settings
CHAT_DECODING = DecodingOptions(temperature=0.7, top_k=30, no_repeat_ngram_size=3)
CHAT_OPTIONS = ("max_length", "min_length", "temperature", "top_k", "top_p", "num_beams", "repetition_penalty",
                "no_repeat_ngram_size", "length_penalty")


def decoding_options(**options):
    """DecodingOptions from keyword arguments (strategy_alpha in any form parse_alpha takes); unknown names are a
    UserError listing the known ones."""
    known = {f.name for f in fields(DecodingOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise UserError(f"unknown decoding options {unknown}; known: {sorted(known)}")
    opts = DecodingOptions(**options)
    opts.strategy_alpha = parse_alpha(opts.strategy_alpha)
    opts.check()
    return opts


def decoding_from_values(values, defaults=None):
    """DecodingOptions from a parsed command line's values (a dict: vars(namespace)): the options it offers,
    the rest from `defaults`."""
    chosen = {name: values[name] for name in CLI_OPTIONS if name in values}
    return decoding_options(**{**vars(replace(defaults or DecodingOptions())), **chosen})
