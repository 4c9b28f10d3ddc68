"""PAL's command-line options, each declared once for every command line that takes it (prepare, train, infer,
interact, the human-evaluation server): the config and inputter, the checkpoint, the pretrained folder, the input
lengths, the persona, the fusion options, the decoding options (from pal.decoding.DecodingOptions) and the
authors' flags that are accepted for their scripts."""
import argparse
from dataclasses import fields

from palkit.argtypes import boolean_string, existing_file, existing_path, positive_int
from palkit.cli import UserError
from .config import RELEASED
from .decoding import CHAT_DECODING, CHAT_OPTIONS, CLI_OPTIONS, DecodingOptions
from .variants import trained_variants

FROM_RUN_FOLDER = "; default: the run folder's (args.json)"


def add_model_arguments(parser, from_run_folder=False):
    """--config_name and --inputter_name: required, or (from_run_folder) taken from a checkpoint's run folder."""
    given = {"default": None} if from_run_folder else {"required": True}
    suffix = FROM_RUN_FOLDER if from_run_folder else ""
    configs = ", ".join(f"{v.config} ({v.label})" for v in trained_variants())
    parser.add_argument("--config_name", help=configs + suffix, **given)
    parser.add_argument("--inputter_name", help="strat or vanilla" + suffix, **given)


def add_checkpoint_argument(parser, from_run_folder):
    """--load_checkpoint: where training starts from (train.py), or the model to run (infer.py, interact.py: a file
    or a run folder, whose args.json then gives the model's arguments)."""
    if not from_run_folder:
        parser.add_argument("--load_checkpoint", default=None, type=existing_file,
                            help="start from this epoch-N.bin instead of pretrained")
        return
    parser.add_argument("--load_checkpoint", "-c", default=None, type=existing_path,
                        help="an epoch-N.bin (ours or the authors'), or a run folder (then its last epoch); the model's "
                             "arguments (config, inputter, pretrained path, max input length, persona and fusion "
                             "options) default to the run folder's args.json")


def add_pretrained_argument(parser):
    parser.add_argument("--pretrained_model_path", default=None,
                        help="overrides the config's pretrained folder (a directory or hub name): its tokenizer files "
                             "(and, without a checkpoint, its weights)")


def add_length_arguments(parser, max_decoder_input_length=RELEASED["max_decoder_input_length"],
                         decoder_help="reply ids kept"):
    parser.add_argument("--max_input_length", type=positive_int, default=RELEASED["max_input_length"],
                        help="context ids kept (the last ones)")
    parser.add_argument("--max_decoder_input_length", type=positive_int, default=max_decoder_input_length,
                        help=decoder_help)


def add_persona_argument(parser):
    parser.add_argument("--use_all_persona", type=boolean_string, default=RELEASED["use_all_persona"],
                        help="True: every example uses the dialogue's overall persona instead of persona_list[k-3]")


def add_fusion_arguments(parser):
    """PAL's fusion options (train, infer, interact); both are recorded in a run's args.json."""
    parser.add_argument("--fusion_mask_padding", type=boolean_string, default=False,
                        help="PAL: mask padding in the fusion attentions, so outputs no longer depend on how examples "
                             "are batched (not the authors' behaviour)")
    parser.add_argument("--flush_subnormal_fusion", type=boolean_string, default=True,
                        help="PAL: set the fusion's probabilities and score gradients below float's smallest normal "
                             "number to zero (the same results, up to 100x faster CPU products; "
                             "docs/reproduction.md#model); False: leave them")


def add_fp16_argument(parser, effect):
    """The authors' --fp16 flag; `effect`: what it does in this script."""
    parser.add_argument("--fp16", type=boolean_string, default=False, help=effect)


def add_decoding_arguments(parser, defaults=None, names=CLI_OPTIONS,
                           title="decoding (defaults: the released RUN/infer_strat.sh; "
                                 "docs/reproduction.md#contrastive-decoding)"):
    """The decoding options `names` (pal.decoding.DecodingOptions: type, range and help as declared there), with
    `defaults`' values (default: DecodingOptions()); returns their group, for more."""
    defaults = defaults or DecodingOptions()
    group = parser.add_argument_group(title)
    for option in fields(DecodingOptions):
        if option.name in names:
            cli = {k: v for k, v in option.metadata["cli"].items() if v is not None}
            group.add_argument(f"--{option.name}", default=getattr(defaults, option.name), **cli)
    return group


def add_chat_decoding_arguments(parser, more=()):
    """The chat front ends' decoding options (interact.py, the human-evaluation server), defaulting to the authors'
    interaction settings (pal.decoding.CHAT_DECODING), plus `more` of DecodingOptions; returns their group."""
    return add_decoding_arguments(parser, CHAT_DECODING, CHAT_OPTIONS + tuple(more),
                                  "decoding (defaults: the authors' RUN/interact_strat.sh)")


def add_authors_arguments(parser, *names):
    """Options of the authors' scripts that PAL's code path never reads: accepted (hidden), so their command lines
    run; --encode_context is shown, since only its released value True is supported (check_encode_context)."""
    group = parser.add_argument_group("accepted for the authors' scripts")
    for name in names:
        if name == "encode_context":
            group.add_argument("--encode_context", type=boolean_string, default=True, help="only True is supported")
        elif name in ("only_encode", "single_processing", "multi_knl", "chinese"):
            group.add_argument(f"--{name}", action="store_true", help=argparse.SUPPRESS)
        else:
            group.add_argument(f"--{name}", type=int, default=None, help=argparse.SUPPRESS)
    return group


def check_encode_context(value):
    """prepare.py / train.py --encode_context: only True (the released scripts') is implemented."""
    if not value:
        raise UserError("--encode_context False (pre-tokenized utterances joined by eos) is not supported; PAL's "
                        "released scripts use True")
