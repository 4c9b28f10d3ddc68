"""ESConv.json -> PESConv.json with the trained persona extractor (docs/reproduction.md#pesconv-annotation).

    RUN/python persona_extractor/annotate_esconv.py --model_dir runs/bart_persona_extractor/best \\
        --input_file ESConv.json --output_file PESConv.json [--resume]

Adds to every conversation `persona` (from all of the seeker's utterances) and `persona_list` (one entry per seeker
turn from the 3rd on), as filtered "<persona> ... <input>" strings. Generation: 10 beams, max length 128, inputs
cut to 512 tokens (the authors' infer settings). Progress is saved after every chunk to <output_file>.partial;
--resume continues from it (same arguments). --max_dialogues N annotates only the first N conversations. The
output is written atomically when all are done. Details: extractor_annotation.py.

Several processes (one per GPU, or CPU processes) share the conversations and give the same file as one process:
    torchrun --standalone --nproc_per_node N persona_extractor/annotate_esconv.py ... [--resume]
Each saves its chunks to <output_file>.partial-<rank>-of-<N>; a resumed run needs the same N.
"""
import os
import sys

try:
    import palkit.entry  # noqa: F401 -- first: outside the project's environment, one line saying how to run this
except ModuleNotFoundError:  # palkit is out of reach too (it lives in codes/): the line palkit.entry would say
    sys.exit("error: this is not the project's environment (no torch or pal here): run it as  " + os.path.normpath(
        os.path.join(os.path.dirname(sys.argv[0]), '..', 'RUN', 'python')) + ' ' + ' '.join(sys.argv))
import datetime

from palkit.argtypes import argument_type, float_range, non_negative_int, output_file, positive_int
from palkit.paths import require_file
from palkit.cli import ArgumentParser, UserError, run_main
from pal.completeness import partial_description, report_empty_personas
from persona_extractor.extractor import PersonaExtractor
from persona_extractor.extractor_annotation import annotate_file
from persona_extractor.modeling import MAX_GEN_LENGTH, MAX_INPUT_LENGTH, NUM_BEAMS, DecodingSettings
from palkit.options import add_device_argument


ESCONV_FILE_HINT = "give ESConv.json (thu-coai's Emotional-Support-Conversation repository) with --input_file"


def build_parser():
    p = ArgumentParser(description="Add inferred persona / persona_list to ESConv (-> PESConv).")
    p.add_argument("--model_dir", default="runs/bart_persona_extractor/best",
                   help="trained extractor (train_bart.py's <output_dir>/best) or any BART folder / hub name")
    p.add_argument("--input_file", default="ESConv.json", type=argument_type(require_file, ESCONV_FILE_HINT),
                   help="ESConv: JSON array or JSON lines (default: %(default)s)")
    p.add_argument("--output_file", default="PESConv.json", type=output_file, help="default: %(default)s")
    p.add_argument("--batch_size", type=positive_int, default=8, help="inputs per generate() call (authors: 8)")
    p.add_argument("--chunk_size", type=positive_int, default=100,
                   help="conversations per saved chunk; resuming needs the same value")
    p.add_argument("--num_beams", type=positive_int, default=NUM_BEAMS)
    p.add_argument("--max_length", type=positive_int, default=MAX_GEN_LENGTH)
    p.add_argument("--max_input_length", type=positive_int, default=MAX_INPUT_LENGTH)
    p.add_argument("--min_length", type=non_negative_int, default=None,
                   help="default: the checkpoint's generation config")
    p.add_argument("--no_repeat_ngram_size", type=non_negative_int, default=None, help="default: the checkpoint's")
    p.add_argument("--length_penalty", type=float_range(), default=None, help="default: the checkpoint's")
    p.add_argument("--filter", choices=("spec", "authors"), default="spec",
                   help="spec: drop every sentence that fails a filter, counting words by whitespace; authors: "
                        "their loop's quirks (skips the sentence after a dropped one; counts split(' ') pieces)")
    p.add_argument("--max_dialogues", type=positive_int, default=None,
                   help="annotate only the first N conversations (a partial PESConv, e.g. to try the pipeline)")
    p.add_argument("--resume", action="store_true", help="continue from <output_file>.partial")
    add_device_argument(p, None)
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


def process_group():
    """(rank, world size, barrier) under torchrun, (0, 1, None) in a single process. The processes meet only at
    barriers, so gloo serves on GPUs too; the long timeout covers processes that finish hours apart (a resumed
    run whose parts were unequally advanced)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return 0, 1, None
    import torch.distributed as dist  # lazy: torch takes a second to import; --help needs none of it
    dist.init_process_group("gloo", timeout=datetime.timedelta(days=2))
    return dist.get_rank(), world_size, dist.barrier


def process_device(device, world_size):
    """--device for this process: with several processes on CUDA, each takes the GPU of its LOCAL_RANK."""
    import torch  # lazy, as above
    wants_cuda = device in (None, "auto", "cuda") and (device == "cuda" or torch.cuda.is_available())
    if world_size > 1 and wants_cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if local_rank >= torch.cuda.device_count():
            raise UserError(f"process {local_rank} has no GPU of its own ({torch.cuda.device_count()} visible); "
                            f"start at most that many processes (NPROC), or pass --device cpu")
        return f"cuda:{local_rank}"
    return device


def main(argv=None):
    args = build_parser().parse_args(argv)
    decoding = DecodingSettings(num_beams=args.num_beams, max_length=args.max_length, min_length=args.min_length,
                                no_repeat_ngram_size=args.no_repeat_ngram_size, length_penalty=args.length_penalty)
    rank, world_size, barrier = process_group()
    try:
        extractor = PersonaExtractor.from_pretrained(args.model_dir, device=process_device(args.device, world_size),
                                                     decoding=decoding, max_input_length=args.max_input_length,
                                                     authors_quirks=args.filter == "authors")
        records = annotate_file(extractor, args.input_file, args.output_file, settings_of(args),
                                chunk_size=args.chunk_size, batch_size=args.batch_size, resume=args.resume,
                                progress=not args.no_progress and rank == 0, rank=rank, world_size=world_size,
                                barrier=barrier, max_dialogues=args.max_dialogues)
    finally:
        if world_size > 1:
            import torch.distributed as dist  # lazy, as in process_group
            dist.destroy_process_group()
    if records is not None:
        n_list = sum(len(r["persona_list"]) for r in records)
        partial = partial_description(args.output_file)  # (committed with the file: pal.completeness.marked_write)
        print(f"{len(records)} conversations{f' (partial: {partial})' if partial else ''}, {n_list} persona_list "
              f"entries -> {args.output_file}")
        report_empty_personas(records, args.output_file)


if __name__ == "__main__":
    run_main(main)
