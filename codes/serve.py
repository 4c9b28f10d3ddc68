"""Serve a PAL-family checkpoint as an OpenAI-compatible chat endpoint (chat_systems.server, on waitress).

    RUN/python codes/serve.py RUN_DIR|epoch-N.bin [--port 8000] [--host 127.0.0.1] [--persona_extractor DIR]
    curl -d '{"messages":[{"role":"user","content":"I lost my job"}]}' http://127.0.0.1:8000/v1/chat/completions

user = help-seeker, assistant = supporter (an assistant message may carry its "strategy"); temperature, top_p,
max_tokens and seed are honoured, the defaults are the released interaction settings (pal.chat.DECODING_DEFAULTS).
The reply is choices[0].message.content; the strategy and the persona used are in the extra field "pal".
Any other system can be served with --system SPEC (e.g. name=smol,llm=smollm2).
"""
import importlib.util  # a plain `python` outside the project's environment: one line saying how to run this script
if importlib.util.find_spec("torch") is None or importlib.util.find_spec("pal") is None:
    import os, sys
    launcher = os.path.relpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "RUN", "python"))
    launcher = launcher if os.sep in launcher else os.path.join(os.curdir, launcher)  # a path, not a command name
    sys.exit(f"error: this is not the project's environment (no torch or pal here): run it as  {launcher} "
             f"{' '.join(sys.argv)}")
import argparse
import sys

from palkit.checks import existing_dir, existing_path, int_range, positive_int
from palkit.cli import ArgumentParser, UserError, resolve_device, run_main

from chat_systems import load_system, parse_system_spec, spec_help
from chat_systems.server import MAX_BODY_BYTES, create_app, serve


def build_parser():
    p = ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("checkpoint", nargs="?", default=None, type=existing_path,
                   help="a run folder (its last epoch) or an epoch-N.bin")
    p.add_argument("--system", default=None, type=parse_system_spec, metavar="SPEC",
                   help=f"serve this system instead of a checkpoint: {spec_help()}")
    p.add_argument("--name", default="pal", help="the model name clients send and GET /v1/models lists")
    p.add_argument("--config", default=None, help="the checkpoint's config (default: its run folder's args.json)")
    p.add_argument("--alpha", default=None, help="PAL's contrastive alpha (default: the checkpoint's)")
    p.add_argument("--host", default="127.0.0.1", help="127.0.0.1: this machine only")
    p.add_argument("--port", type=int_range(0, 65535), default=8000, help="0: any free port")
    p.add_argument("--persona_extractor", default=None, type=existing_dir, help="live persona from this extractor")
    p.add_argument("--pretrained_model_path", default=None, help="default: the run's args.json")
    p.add_argument("--threads", type=positive_int, default=8, help="waitress worker threads")
    p.add_argument("--max_body_bytes", type=positive_int, default=MAX_BODY_BYTES)
    p.add_argument("--device", default="auto")
    return p


def spec_of(args):
    if (args.system is None) == (args.checkpoint is None):
        raise UserError("give a checkpoint (RUN_DIR or epoch-N.bin) or --system SPEC, not both")
    if args.system is not None:
        return args.system
    fields = {"name": args.name, "checkpoint": args.checkpoint, "config": args.config, "alpha": args.alpha}
    return parse_system_spec(",".join(f"{k}={v}" for k, v in fields.items() if v is not None))


def main(argv=None):
    args = build_parser().parse_args(argv)
    spec = spec_of(args)
    system = load_system(spec, resolve_device(args.device), persona_extractor=args.persona_extractor,
                         pretrained_model_path=args.pretrained_model_path)
    app = create_app(system, args.max_body_bytes)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host}: anyone who can reach this machine can use the model",
              file=sys.stderr)

    def ready(base_url):
        print(f"ready: {base_url} serves {spec.name!r} ({spec.kind}); POST {base_url}/chat/completions, "
              f"GET {base_url}/models; Ctrl-C stops", flush=True)

    serve(app, args.host, args.port, args.threads, args.max_body_bytes, on_ready=ready)


if __name__ == "__main__":
    run_main(main)
