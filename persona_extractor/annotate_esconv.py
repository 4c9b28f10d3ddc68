"""ESConv.json -> PESConv.json with the trained persona extractor (SPEC "Data" and "Stage 1").

    python persona_extractor/annotate_esconv.py --model_dir runs/bart_persona_extractor/best \\
        --input_file ESConv.json --output_file PESConv.json [--resume]

Adds to every conversation `persona` (inferred from all of the seeker's utterances) and `persona_list` (one entry
per seeker turn from the 3rd on, each inferred from the seeker's utterances up to that turn), as
"<persona> ... <persona> ... <input>" strings with the SPEC's filters. Generation: 10 beams, max length 128,
inputs cut to 512 tokens (the authors' infer settings). Progress is saved after every chunk of conversations to
<output_file>.partial; --resume continues from it (with the same arguments). --max_dialogues N annotates only the
first N conversations (a partial PESConv; the settings recorded for --resume include N). The output is written atomically when all are done and feeds
`codes/_reformat/process.py --add_persona True` unchanged. Details: extractor_annotation.py.
"""
import argparse
import os

from extractor import MAX_GEN_LENGTH, MAX_INPUT_LENGTH, NUM_BEAMS, DecodingSettings, PersonaExtractor
from extractor_annotation import annotate_file

from pal.cli import UserError, run_main


def build_parser():
    p = argparse.ArgumentParser(description="Add inferred persona / persona_list to ESConv (-> PESConv).")
    p.add_argument("--model_dir", default="runs/bart_persona_extractor/best",
                   help="trained extractor (train_bart.py's <output_dir>/best) or any BART folder / hub name")
    p.add_argument("--input_file", default="ESConv.json", help="ESConv: JSON array or JSON lines (default: %(default)s)")
    p.add_argument("--output_file", default="PESConv.json", help="default: %(default)s")
    p.add_argument("--batch_size", type=int, default=8, help="inputs per generate() call (authors: 8)")
    p.add_argument("--chunk_size", type=int, default=100,
                   help="conversations per saved chunk; resuming needs the same value")
    p.add_argument("--num_beams", type=int, default=NUM_BEAMS)
    p.add_argument("--max_length", type=int, default=MAX_GEN_LENGTH)
    p.add_argument("--max_input_length", type=int, default=MAX_INPUT_LENGTH)
    p.add_argument("--min_length", type=int, default=None, help="default: the checkpoint's generation config")
    p.add_argument("--no_repeat_ngram_size", type=int, default=None, help="default: the checkpoint's")
    p.add_argument("--length_penalty", type=float, default=None, help="default: the checkpoint's")
    p.add_argument("--filter", choices=("spec", "authors"), default="spec",
                   help="spec: drop every sentence that fails a filter, counting words by whitespace; authors: "
                        "their loop's quirks (skips the sentence after a dropped one; counts split(' ') pieces)")
    p.add_argument("--max_dialogues", type=int, default=None,
                   help="annotate only the first N conversations (a partial PESConv, e.g. to try the pipeline)")
    p.add_argument("--resume", action="store_true", help="continue from <output_file>.partial")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA when available)")
    p.add_argument("--no_progress", action="store_true")
    return p


def settings_of(args):
    """What decides the output; a resumed run must use the same."""
    model = os.path.abspath(args.model_dir) if os.path.isdir(args.model_dir) else args.model_dir
    return {"model": model, "num_beams": args.num_beams, "max_length": args.max_length,
            "max_input_length": args.max_input_length, "min_length": args.min_length,
            "no_repeat_ngram_size": args.no_repeat_ngram_size, "length_penalty": args.length_penalty,
            "filter": args.filter, "chunk_size": args.chunk_size, "batch_size": args.batch_size,
            "max_dialogues": args.max_dialogues}


def main(argv=None):
    args = build_parser().parse_args(argv)
    for name in ("batch_size", "chunk_size", "num_beams", "max_length", "max_input_length", "max_dialogues"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise UserError(f"--{name} must be at least 1")
    if not os.path.isfile(args.input_file):
        raise UserError(f"--input_file {args.input_file}: no such file (ESConv.json from thu-coai's "
                        f"Emotional-Support-Conversation repository)")
    decoding = DecodingSettings(num_beams=args.num_beams, max_length=args.max_length, min_length=args.min_length,
                                no_repeat_ngram_size=args.no_repeat_ngram_size, length_penalty=args.length_penalty)
    extractor = PersonaExtractor.from_pretrained(args.model_dir, device=args.device, decoding=decoding,
                                                 max_input_length=args.max_input_length,
                                                 authors_quirks=args.filter == "authors")
    records = annotate_file(extractor, args.input_file, args.output_file, settings_of(args),
                            chunk_size=args.chunk_size, batch_size=args.batch_size, resume=args.resume,
                            progress=not args.no_progress, max_dialogues=args.max_dialogues)
    n_list = sum(len(r["persona_list"]) for r in records)
    partial = f" (partial: the first {len(records)}, --max_dialogues)" if args.max_dialogues else ""
    print(f"{len(records)} conversations{partial}, {n_list} persona_list entries -> {args.output_file}")


if __name__ == "__main__":
    run_main(main)
