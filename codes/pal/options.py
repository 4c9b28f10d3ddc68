"""PAL's model options, each declared once for every command line that takes it (prepare, train, infer, interact,
the human-evaluation server): the config and inputter, the pretrained folder, the input lengths and the persona."""
from palkit.argtypes import boolean_string, float_range, non_negative_int, positive_float, positive_int, probability
from palkit.cli import UserError
from pal.chat import DECODING_DEFAULTS
from pal.config import RELEASED

# The valid range of each decoding option (pal.generation.decoding_options), for entry points that add them by name.
DECODING_RANGES = {"max_length": positive_int, "min_length": non_negative_int, "temperature": positive_float,
                   "top_k": non_negative_int, "top_p": probability, "num_beams": positive_int,
                   "repetition_penalty": positive_float, "no_repeat_ngram_size": non_negative_int,
                   "length_penalty": float_range()}

FROM_RUN_FOLDER = "; default: the run folder's (args.json)"


def add_model_arguments(parser, from_run_folder=False):
    """--config_name and --inputter_name: required, or (from_run_folder) taken from a checkpoint's run folder."""
    given = {"default": None} if from_run_folder else {"required": True}
    suffix = FROM_RUN_FOLDER if from_run_folder else ""
    parser.add_argument("--config_name", help="strat (PAL), strat_no_persona (Blender-Joint), vanilla" + suffix,
                        **given)
    parser.add_argument("--inputter_name", help="strat or vanilla" + suffix, **given)


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


def add_chat_decoding_arguments(parser):
    """The chat front ends' decoding options (interact.py, the human-evaluation server), defaulting to the authors'
    interaction settings; returns their group, for more."""
    group = parser.add_argument_group("decoding (defaults: the authors' RUN/interact_strat.sh)")
    for name, value in DECODING_DEFAULTS.items():
        group.add_argument(f"--{name}", type=DECODING_RANGES[name], default=value)
    return group


def check_encode_context(value):
    """prepare.py / train.py --encode_context: only True (the released scripts') is implemented."""
    if not value:
        raise UserError("--encode_context False (pre-tokenized utterances joined by eos) is not supported; PAL's "
                        "released scripts use True")
