"""PAL's model options, each declared once for every command line that takes it (prepare, train, infer, interact,
the human-evaluation server): the config and inputter, the pretrained folder, the input lengths and the persona."""
from palkit.checks import boolean_string, positive_int
from pal.config import RELEASED

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
