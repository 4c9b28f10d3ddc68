"""Serve a PAL-family checkpoint as an OpenAI-compatible chat endpoint (chat_systems.server, on waitress).

    RUN/python codes/serve.py RUN_DIR|epoch-N.bin [--port 8000] [--host 127.0.0.1] [--persona_extractor DIR]
    curl -d '{"messages":[{"role":"user","content":"I lost my job"}]}' http://127.0.0.1:8000/v1/chat/completions

user = help-seeker, assistant = supporter (an assistant message may carry its "strategy"); every field of OpenAI's
chat completions is honoured or refused by name (README "PAL as a service"), stream=true included; the decoding
defaults are the released interaction settings (pal.chat.DECODING_DEFAULTS). The reply is
choices[0].message.content; the strategy and the persona used are in the extra field "pal". Requests that arrive
together are decoded as one batch (--max_batch, --batch_wait_ms), each reply what the request gets alone. One
access-log line per request goes to stderr. Any other system can be served with --system SPEC (e.g.
name=smol,llm=smollm2).
"""
import palkit.entry  # noqa: F401 -- first: outside the project's environment, one line saying how to run this
import logging
import sys

from palkit.argtypes import boolean_string, existing_dir, existing_path, int_range, non_negative_int, positive_int
from palkit.options import add_device_argument
from palkit.cli import ArgumentParser, DefaultsHelpFormatter, UserError, resolve_device, run_main

from chat_systems import BACKENDS, load_system, parse_system_spec, spec_help
from chat_systems.server import BATCH_WAIT_MS, MAX_BATCH, MAX_BODY_BYTES, create_app, serve


def build_parser():
    p = ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=DefaultsHelpFormatter)
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
    p.add_argument("--max_batch", type=positive_int, default=MAX_BATCH,
                   help="requests decoded together at most (1: one at a time)")
    p.add_argument("--batch_wait_ms", type=non_negative_int, default=BATCH_WAIT_MS,
                   help="how long the first request of a batch waits for others")
    p.add_argument("--fusion_mask_padding", type=boolean_string, default=False,
                   help="PAL: mask all padding in the fusion (a deviation from the authors' outputs, for checkpoints "
                        "trained with it; batches are exact either way)")
    p.add_argument("--threads", type=positive_int, default=64,
                   help="requests inside the server at once (waitress threads; keep it above --max_batch)")
    p.add_argument("--max_body_bytes", type=positive_int, default=MAX_BODY_BYTES,
                   help="a larger request body is refused with 413")
    add_device_argument(p)
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
    for option in ("persona_extractor", "fusion_mask_padding"):  # (--pretrained_model_path: RUN/serve.sh's default)
        if getattr(args, option) and option not in spec.backend.options:
            takers = ", ".join(b.name for b in BACKENDS.values() if option in b.options)
            raise UserError(f"--{option} does not apply to system {spec.name} ({spec.kind}); it applies to "
                            f"{takers} systems")
    system = load_system(spec, resolve_device(args.device), persona_extractor=args.persona_extractor,
                         pretrained_model_path=args.pretrained_model_path,
                         fusion_mask_padding=args.fusion_mask_padding)
    app = create_app(system, args.max_body_bytes, args.max_batch, args.batch_wait_ms)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("waitress").setLevel(logging.WARNING)  # its "Serving on" line; ours says where to go
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host}: anyone who can reach this machine can use the model",
              file=sys.stderr)

    def ready(base_url):
        print(f"ready: {base_url} serves {spec.name!r} ({spec.kind}); POST {base_url}/chat/completions, "
              f"GET {base_url}/models; Ctrl-C stops", flush=True)

    serve(app, args.host, args.port, args.threads, args.max_body_bytes, on_ready=ready)


if __name__ == "__main__":
    run_main(main)
