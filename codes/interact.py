"""Chat with a trained model in the terminal; every reply shows the strategy it was decoded after.

    RUN/python codes/interact.py --config_name strat --inputter_name strat --load_checkpoint RUN_DIR/epoch-4.bin \
        [--persona "i am a teacher. i have two kids." | --persona_file FILE | --persona_extractor DIR]

Type the seeker's turns; an empty line is ignored, "/reset" starts a new conversation, end of input (Ctrl-D, or the
end of piped input) saves the conversation as JSON (the file is named, interact_args.json beside it) and quits.
A checkpoint in a run folder (or the folder itself: its last epoch) brings the model's arguments from its args.json
(palkit.run_folder), so `RUN/python codes/interact.py -c RUN_DIR` is enough. Lines are read from stdin, so the chat also
runs non-interactively: `printf 'hi\\ni lost my job\\n' | RUN/python codes/interact.py ...`.

Persona (config strat only; docs/reproduction.md#featurization): "<input>" (none) by default; --persona /
--persona_file a fixed one, in PESConv form ("<persona> ... <input>") or plain sentences (one per line, or split
at . ! ?); --persona_extractor DIR infers it live from the seeker's turns (from the 3rd on) and prints it.
"""
import palkit.entry  # noqa: F401 -- first: outside the project's environment, one line saying how to run this
import argparse
import datetime
import os
import sys

from palkit.argtypes import boolean_string, existing_dir, existing_file, output_dir
from palkit.paths import require_output_dir
from palkit.cli import ArgumentParser, DefaultsHelpFormatter, resolve_device, run_main
from palkit.atomic import write_json
from pal.chat import Chat, PersonaSource
from pal.config import load_config
from pal.decoding import CHAT_DECODING, decoding_from_values
from pal.dialogues import EMPTY_PERSONA, PERSONA_TOKEN, normalise
from pal.inputter import Featurizer, settings_for
from pal.model import build_model
from palkit.engine import seed_everything
from palkit.run_folder import model_config_dir, parse_with_run_folder
from persona_extractor.extractor import PersonaExtractor
from pal.options import (add_chat_decoding_arguments, add_checkpoint_argument, add_fp16_argument,
                         add_fusion_arguments, add_length_arguments, add_model_arguments, add_pretrained_argument)
from palkit.options import add_device_argument, add_seed_argument

# What describes the trained model, read from the checkpoint's run folder unless given (palkit.run_folder).
RUN_FOLDER_KEYS = ("config_name", "inputter_name", "pretrained_model_path", "max_input_length",
                   "max_decoder_input_length", "fusion_mask_padding", "flush_subnormal_fusion")


def build_parser():
    p = ArgumentParser(description=__doc__.split("\n\n")[0],
                       formatter_class=DefaultsHelpFormatter)
    add_model_arguments(p, from_run_folder=True)
    add_checkpoint_argument(p, from_run_folder=True)
    add_pretrained_argument(p)
    add_seed_argument(p, 0)
    add_fp16_argument(p, "accepted; interaction runs in float32")
    add_device_argument(p)
    p.add_argument("--use_gpu", action="store_true", help="the authors' flag; --device auto already prefers CUDA")
    add_length_arguments(p)
    p.add_argument("--single_turn", action="store_true", help="one seeker turn per conversation")
    p.add_argument("--output_dir", default=None, type=output_dir,
                   help="where conversations are saved (default: <checkpoint>_interact_dialogs, as the authors)")
    persona = p.add_mutually_exclusive_group()
    persona.add_argument("--persona", default=None, help="a fixed persona (PESConv form or plain sentences)")
    persona.add_argument("--persona_file", default=None, type=existing_file, help="a file holding the fixed persona")
    persona.add_argument("--persona_extractor", default=None, type=existing_dir,
                         help="a persona extractor directory (train_bart.py output): live persona inference")
    add_chat_decoding_arguments(p, more=("strategy_alpha", "contrastive_impl"))
    add_fusion_arguments(p)
    # the authors' interact.py options that only their extractor wrapper used
    p.add_argument("--prepare_persona_ahead", type=boolean_string, default=False, help=argparse.SUPPRESS)
    p.add_argument("--persona_model_dir_or_name", default=None, help=argparse.SUPPRESS)
    p.add_argument("--persona_ckpt", default=None, help=argparse.SUPPRESS)
    return p


def default_output_dir(args):
    """The authors' <checkpoint>_interact_dialogs, or DATA/DEMO/<config> without a checkpoint."""
    if args.load_checkpoint:
        return args.load_checkpoint + "_interact_dialogs"
    return os.path.abspath(os.path.join("DATA", "DEMO", args.config_name))


def save_conversation(output_dir, record, args=None):
    """Write the conversation (when it has turns) and say where; `args` also go to interact_args.json there."""
    if not record["dialog"]:
        return
    name = datetime.datetime.now().strftime("%Y-%m-%d%H%M%S%f") + ".json"
    write_json(os.path.join(output_dir, name), record)
    if args is not None:
        write_json(os.path.join(output_dir, "interact_args.json"), vars(args))
    print(f"(conversation saved to {os.path.join(output_dir, name)})")


def shown_persona(persona):
    """The persona as a reader wants it: its sentences, or (none) for the empty persona token."""
    sentences = [s.strip() for s in persona.replace(EMPTY_PERSONA, "").split(PERSONA_TOKEN) if s.strip()]
    return " ".join(sentences) if sentences else "(none)"


def read_turns(interactive):
    """Seeker lines from stdin (prompted when it is a terminal, echoed when piped)."""
    while True:
        try:
            line = input("Human: ") if interactive else sys.stdin.readline()
        except EOFError:
            return
        if not interactive and line == "":
            return
        if not interactive:
            print(f"Human: {line.rstrip()}")
        yield normalise(line)


QUIT_COMMANDS = ("quit", "exit", "/quit", "/exit")  # commands, never sent to the model as an utterance


def chat_loop(chat, args, output_dir):
    unused = "" if chat.featurizer.settings.persona_in_batches else " (this config does not use a persona)"
    if chat.persona_source.extractor is None:
        print(f"Persona: {shown_persona(chat.persona_source.fixed)}{unused}")
    else:
        print(f"Persona: inferred from what you say, shown before each reply{unused}")
    print(f"Conversations are saved to {output_dir}/")
    print("\nA new conversation starts! (/reset starts over; quit, exit or end of input (Ctrl-D) saves and quits)")
    for text in read_turns(sys.stdin.isatty()):
        if text.strip().lower() in QUIT_COMMANDS:
            break
        if not text:
            print("Prompt should not be empty!")
            continue
        if text == "/reset" or (args.single_turn and chat.turns):
            save_conversation(output_dir, chat.record(), args)
            chat.reset()
            print("\nA new conversation starts!")
            if text == "/reset":
                continue
        reply, strategy, persona = chat.reply(text)
        if chat.persona_source.extractor is not None:
            print(f"   persona: {shown_persona(persona)}")
        label = f" [{strategy}]" if strategy else ""
        print(f"   AI{label}: {reply}", flush=True)
    print("\nquitting")
    save_conversation(output_dir, chat.record(), args)


def main(argv=None):
    args = parse_with_run_folder(build_parser(), argv, RUN_FOLDER_KEYS)
    output_dir = require_output_dir(args.output_dir or default_output_dir(args))
    device = resolve_device(args.device)
    decoding = decoding_from_values(vars(args), CHAT_DECODING)
    config = load_config(args.config_name)
    settings = settings_for(config, args.inputter_name, args.max_input_length, args.max_decoder_input_length,
                            use_all_persona=True)  # the persona of the current turn, supplied per reply
    seed_everything(args.seed)
    toker, model = build_model(args.config_name, args.pretrained_model_path, args.load_checkpoint,
                               fusion_mask_padding=args.fusion_mask_padding, device=device,
                               model_config_dir=model_config_dir(args.run_folder),
                               flush_subnormal_fusion=args.flush_subnormal_fusion)
    model.eval()
    live_persona = (PersonaExtractor.from_pretrained(args.persona_extractor, device=device)
                    if args.persona_extractor is not None else None)
    persona_source = PersonaSource.chosen(args.persona, args.persona_file, live_persona)
    if persona_source.extractor is not None and not settings.persona_in_batches:
        print(f"note: config {args.config_name} does not use a persona; the inferred persona is only shown",
              file=sys.stderr)
    chat = Chat(toker, model, Featurizer(toker, settings), decoding, persona_source, device)
    chat_loop(chat, args, output_dir)


if __name__ == "__main__":
    run_main(main)
