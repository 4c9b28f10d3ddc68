"""ESConv -> PESConv: add the inferred `persona` and `persona_list` to every conversation
(docs/reproduction.md#pesconv-annotation).

For a seeker who speaks n times (u1..un, whitespace-normalised): persona is inferred from u1..un ("<input>" when
n == 0) and persona_list[i] from u1..u(i+3), i = 0 .. n-3. Everything else is copied unchanged, in the input's
container and schema, so the result feeds codes/_reformat/process.py --add_persona True.

Work goes in chunks of consecutive conversations; within a chunk each distinct input is generated once, longest
first, in batches. Each finished chunk is appended (flushed, fsynced) to `<output>.partial`; `resume=True` reuses
it after checking conversations and settings. Several processes (torchrun) take chunks round-robin (rank r: r,
r + N, ...), each into `<output>.partial-<r>-of-<N>`, and process 0 merges them in conversation order. A chunk is
batched the same whichever run or process takes it, so every way gives the byte-identical output of one
uninterrupted process; the output is written atomically at the end.
"""
import glob
import hashlib
import json
import os

from tqdm import tqdm

from palkit.cli import UserError
from palkit.atomic import atomic_write
from pal.completeness import marked_write
from pal.dialogues import INPUT_TOKEN, JSON_ARRAY, load_dialogues, normalise, turn_fields
from persona_extractor.persona_text import dialogue_inputs

ESCONV_HINT = "give the ESConv.json file with --input_file"


# ---------------------------------------------------------------------------------------------- reading

def load_esconv(path):
    """(conversations, container) of an ESConv/PESConv file; container is pal.dialogues' JSON_ARRAY or JSON_LINES."""
    found = load_dialogues(path, ESCONV_HINT)
    return found.dialogues, found.container


def seeker_utterances(conversation, where):
    """The seeker's utterances of one conversation, in order, whitespace-normalised."""
    if not isinstance(conversation, dict) or not isinstance(conversation.get("dialog"), list):
        raise UserError(f"{where}: expected a conversation object with a 'dialog' list of turns")
    utterances = []
    for j, turn in enumerate(conversation["dialog"]):
        role, text, _ = turn_fields(turn, f"{where}: turn {j}")
        if role == "usr":
            utterances.append(normalise(text))
    return utterances


def utterances_digest(utterances):
    """Identifies a conversation's seeker side, to check that a partial output belongs to the same input."""
    return hashlib.sha1(json.dumps(utterances, ensure_ascii=False).encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------------------ partial output

def partial_path(output_path, rank=0, world_size=1):
    """Where process `rank` of `world_size` saves its chunks (one process: `<output>.partial`)."""
    return output_path + ".partial" if world_size == 1 else f"{output_path}.partial-{rank}-of-{world_size}"


def conversation_chunks(n_conversations, chunk_size):
    """Chunks of consecutive conversation indices, as a one-process run works through them."""
    return [list(range(k, min(k + chunk_size, n_conversations))) for k in range(0, n_conversations, chunk_size)]


def check_no_foreign_parts(output_path, world_size):
    """A partial file left by a run with another number of processes must be resumed with that number."""
    mine = {partial_path(output_path, r, world_size) for r in range(world_size)}
    for path in sorted(glob.glob(glob.escape(output_path) + ".partial*")):
        if path not in mine:
            raise UserError(f"{path}: holds an interrupted annotation made with another number of processes; "
                            f"resume it with that number (NPROC), or delete it")


def _read_records(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break  # the line being written when the run was killed; everything before it is complete
    if not records or records[0].get("settings") is None:
        raise UserError(f"{path}: not a partial annotation file; delete it or run without --resume")
    return records


def read_partial(path, settings, digests, chunks):
    """Annotations saved by an interrupted run of `chunks`: {index: (persona, persona_list)} for its first chunks.

    Only whole chunks are kept: a run killed mid-chunk may have flushed part of that chunk, and redoing the chunk
    whole keeps the chunking, de-duplication and batching (hence the output) of an uninterrupted run.
    """
    records = _read_records(path)
    saved = records[0]["settings"]
    if saved != settings:
        changed = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
        raise UserError(f"{path}: was made with other settings ({', '.join(changed)}); rerun with the same "
                        f"arguments, or delete it / drop --resume to start over")
    expected = [i for chunk in chunks for i in chunk]
    done = {}
    for record in records[1:]:
        i = record["index"]
        if len(done) >= len(expected) or i != expected[len(done)] or record["seeker_digest"] != digests[i]:
            raise UserError(f"{path}: conversation {i} does not match the input file (different or reordered "
                            f"data); delete it or drop --resume to start over")
        done[i] = (record["persona"], record["persona_list"])
    kept = {}
    for chunk in chunks:
        if not all(i in done for i in chunk):
            break
        kept.update((i, done[i]) for i in chunk)
    return kept


def start_partial(path, settings, done, digests):
    """(Re)write the partial file: its settings header and the complete entries kept from a previous run."""
    with atomic_write(path) as f:
        f.write(json.dumps({"settings": settings}, ensure_ascii=False) + "\n")
        for i in done:
            f.write(_partial_line(i, digests[i], *done[i]))


def _partial_line(index, digest, persona, persona_list):
    return json.dumps({"index": index, "seeker_digest": digest, "persona": persona, "persona_list": persona_list},
                      ensure_ascii=False) + "\n"


# ------------------------------------------------------------------------------------------------ annotation

def chunk_inputs(utterance_lists):
    """The distinct extractor inputs of a chunk of conversations, in first-seen order."""
    texts = {}
    for utterances in utterance_lists:
        whole, prefixes = dialogue_inputs(utterances)
        for text in ([whole] if whole else []) + prefixes:
            texts.setdefault(text, None)
    return list(texts)


def annotate_chunk(extractor, utterance_lists, batch_size, progress=None):
    """(persona, persona_list) for each conversation of a chunk."""
    texts = chunk_inputs(utterance_lists)
    personas = dict(zip(texts, extractor.personas_for_inputs(texts, batch_size=batch_size, progress=progress)))
    results = []
    for utterances in utterance_lists:
        whole, prefixes = dialogue_inputs(utterances)
        results.append((personas[whole] if whole else INPUT_TOKEN, [personas[t] for t in prefixes]))
    return results


def with_persona(conversation, persona, persona_list):
    record = dict(conversation)
    record["persona"] = persona
    record["persona_list"] = persona_list
    return record


def write_output(path, records, container, partial=None):
    """The annotated file, committed with its subset mark (`partial`: what it holds, None when complete)."""
    with marked_write(path, partial, label="pesconv") as f:
        if container == JSON_ARRAY:
            json.dump(records, f, ensure_ascii=False, indent=2)
            f.write("\n")
        else:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")


def annotate_part(extractor, part, chunks, utterances, digests, settings, batch_size, resume, progress,
                  on_chunk_done):
    """Annotate `chunks` (lists of conversation indices), saving each to the partial file `part`; returns
    {index: (persona, persona_list)} for every conversation of the chunks."""
    done = {}
    if resume and os.path.exists(part):
        done = read_partial(part, settings, digests, chunks)
        print(f"resuming: {len(done)} of {sum(map(len, chunks))} conversations already annotated in {part}")
    elif resume:
        print(f"note: no {part} to resume from; annotating from the start")
    elif os.path.exists(part):
        raise UserError(f"{part} holds an interrupted annotation: pass --resume to continue it, or delete it")
    start_partial(part, settings, done, digests)
    remaining = [chunk for chunk in chunks if chunk[0] not in done]
    total = sum(len(chunk_inputs([utterances[i] for i in chunk])) for chunk in remaining)
    with tqdm(total=total, desc="inferring personas", unit="input", disable=not progress) as bar, \
            open(part, "a", encoding="utf-8") as log:
        for chunk in remaining:
            for i, result in zip(chunk, annotate_chunk(extractor, [utterances[i] for i in chunk], batch_size, bar)):
                done[i] = result
                log.write(_partial_line(i, digests[i], *result))
            log.flush()
            os.fsync(log.fileno())
            if on_chunk_done is not None:
                on_chunk_done(len(done))
    return done


def merge_parts(output_path, world_size, settings, digests, all_chunks):
    """{index: (persona, persona_list)} for every conversation, from the complete parts of all processes."""
    done = {}
    for rank in range(world_size):
        part = partial_path(output_path, rank, world_size)
        chunks = all_chunks[rank::world_size]
        found = read_partial(part, settings, digests, chunks)
        if len(found) != sum(map(len, chunks)):
            raise UserError(f"{part}: incomplete ({len(found)} conversations annotated); rerun with --resume")
        done.update(found)
    return done


def annotate_file(extractor, input_path, output_path, settings, chunk_size=100, batch_size=16, resume=False,
                  progress=True, on_chunk_done=None, rank=0, world_size=1, barrier=None, max_dialogues=None):
    """Annotate `input_path` into `output_path` (see the module docstring). `settings` (a dict) is stored in the
    partial file and must match on resume. `on_chunk_done(n_done)` is called after each saved chunk.
    `max_dialogues` N: only the first N conversations (the output then holds those N).

    With `world_size` > 1 every process calls this with its `rank` and a `barrier()` that returns once all
    processes reached it; process 0 writes the output and returns the records, the others return None."""
    conversations, container = load_esconv(input_path)
    partial = None
    if max_dialogues is not None and max_dialogues < len(conversations):
        partial = (f"the first {max_dialogues} of {len(conversations)} dialogues of {input_path} "
                   f"(annotate_esconv.py --max_dialogues {max_dialogues})")
        if rank == 0:
            print(f"note: annotating the first {max_dialogues} of {len(conversations)} conversations "
                  f"(--max_dialogues): {output_path} will be partial")
        conversations = conversations[:max_dialogues]
    utterances = [seeker_utterances(c, f"{input_path}: conversation {i}") for i, c in enumerate(conversations)]
    digests = [utterances_digest(u) for u in utterances]
    settings = dict(settings, processes=world_size)
    check_no_foreign_parts(output_path, world_size)
    all_chunks = conversation_chunks(len(conversations), chunk_size)
    done = annotate_part(extractor, partial_path(output_path, rank, world_size), all_chunks[rank::world_size],
                         utterances, digests, settings, batch_size, resume, progress, on_chunk_done)
    records = None
    if world_size > 1:
        barrier()  # every part is complete
        if rank == 0:
            done = merge_parts(output_path, world_size, settings, digests, all_chunks)
    if rank == 0:
        records = [with_persona(c, *done[i]) for i, c in enumerate(conversations)]
        write_output(output_path, records, container, partial)
        for r in range(world_size):
            os.remove(partial_path(output_path, r, world_size))
    if world_size > 1:
        barrier()  # the output is written before any process reports success
    return records
