"""ESConv -> PESConv: add the inferred `persona` and `persona_list` to every conversation (SPEC "Data").

For a conversation whose seeker speaks n times (u1..un, whitespace-normalised):
  persona         = persona inferred from u1..un ("<input>" when n == 0)
  persona_list[i] = persona inferred from u1..u(i+3), for i = 0 .. n-3   (so len == max(0, n - 2))
Each conversation is copied unchanged otherwise, so the result feeds codes/_reformat/process.py --add_persona True.
Both ESConv schemas are accepted (a JSON array with seeker/supporter turns and `content`, or JSON lines with
usr/sys turns and `text`); the output keeps the input's container and schema.

Work goes in chunks of consecutive conversations. Within a chunk every distinct input text is generated once,
longest first, in batches. After each chunk its annotations are appended (flushed, fsynced) to
`<output>.partial`; `resume=True` reuses them after checking that they belong to the same conversations and
settings, so an interrupted run finishes with the same file as an uninterrupted one (the batches of a chunk do
not depend on where a run started). The output itself is written atomically at the end and the partial file
removed.
"""
import hashlib
import json
import os

from extractor import INPUT_TOKEN, UserError, dialogue_inputs, normalise
from pal.cli import atomic_write

SEEKER_SPEAKERS = {"seeker": "content", "usr": "text"}  # speaker -> key of the utterance text
OTHER_SPEAKERS = {"supporter", "sys"}


# ---------------------------------------------------------------------------------------------- reading

def load_esconv(path):
    """(conversations, container) where container is 'array' (one JSON array) or 'lines' (JSON lines)."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            text = f.read()
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror or e}); give the ESConv.json file with --input_file")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start})")
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}")
        container = "array"
    else:
        data, container = [], "lines"
        for line_number, line in enumerate(text.split("\n"), start=1):
            if line.strip():
                try:
                    data.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise UserError(f"{path}:{line_number}: invalid JSON (column {e.colno}): {e.msg}")
    if not data:
        raise UserError(f"{path}: contains no conversations")
    return data, container


def seeker_utterances(conversation, where):
    """The seeker's utterances of one conversation, in order, whitespace-normalised."""
    if not isinstance(conversation, dict) or not isinstance(conversation.get("dialog"), list):
        raise UserError(f"{where}: expected a conversation object with a 'dialog' list of turns")
    utterances = []
    for j, turn in enumerate(conversation["dialog"]):
        speaker = turn.get("speaker") if isinstance(turn, dict) else None
        if speaker in SEEKER_SPEAKERS:
            text = turn.get(SEEKER_SPEAKERS[speaker])
            if not isinstance(text, str):
                raise UserError(f"{where}: turn {j}: seeker turn without a string "
                                f"{SEEKER_SPEAKERS[speaker]!r}")
            utterances.append(normalise(text))
        elif speaker not in OTHER_SPEAKERS:
            raise UserError(f"{where}: turn {j}: unknown speaker {speaker!r}; expected seeker/supporter "
                            f"(ESConv) or usr/sys (reformatted)")
    return utterances


def utterances_digest(utterances):
    """Identifies a conversation's seeker side, to check that a partial output belongs to the same input."""
    return hashlib.sha1(json.dumps(utterances, ensure_ascii=False).encode("utf-8")).hexdigest()


# ------------------------------------------------------------------------------------------ partial output

def partial_path(output_path):
    return output_path + ".partial"


def read_partial(path, settings, digests, chunk_size):
    """Annotations saved by an interrupted run: {index: (persona, persona_list)} for a prefix of conversations.

    Only whole chunks are kept: a run killed mid-chunk may have flushed part of that chunk, and redoing the chunk
    whole keeps the chunking, de-duplication and batching (hence the output) of an uninterrupted run.
    """
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
    saved = records[0]["settings"]
    if saved != settings:
        changed = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
        raise UserError(f"{path}: was made with other settings ({', '.join(changed)}); rerun with the same "
                        f"arguments, or delete it / drop --resume to start over")
    done = {}
    for record in records[1:]:
        i = record["index"]
        if i != len(done) or i >= len(digests) or record["seeker_digest"] != digests[i]:
            raise UserError(f"{path}: conversation {i} does not match the input file (different or reordered "
                            f"data); delete it or drop --resume to start over")
        done[i] = (record["persona"], record["persona_list"])
    whole = len(done) // chunk_size * chunk_size
    return {i: done[i] for i in range(whole)}


def start_partial(path, settings, done, digests):
    """(Re)write the partial file: its settings header and the complete entries kept from a previous run."""
    with atomic_write(path) as f:
        f.write(json.dumps({"settings": settings}, ensure_ascii=False) + "\n")
        for i in sorted(done):
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


def write_output(path, records, container):
    with atomic_write(path) as f:
        if container == "array":
            json.dump(records, f, ensure_ascii=False, indent=2)
            f.write("\n")
        else:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")


def annotate_file(extractor, input_path, output_path, settings, chunk_size=100, batch_size=16, resume=False,
                  progress=True, on_chunk_done=None, max_dialogues=None):
    """Annotate `input_path` into `output_path` (see the module docstring). `settings` (a dict) is stored in the
    partial file and must match on resume. `on_chunk_done(n_done)` is called after each saved chunk.
    `max_dialogues` N: only the first N conversations (the output then holds those N)."""
    from tqdm import tqdm
    conversations, container = load_esconv(input_path)
    if max_dialogues is not None and max_dialogues < len(conversations):
        print(f"note: annotating the first {max_dialogues} of {len(conversations)} conversations (--max_dialogues): "
              f"{output_path} will be partial")
        conversations = conversations[:max_dialogues]
    utterances = [seeker_utterances(c, f"{input_path}: conversation {i}") for i, c in enumerate(conversations)]
    digests = [utterances_digest(u) for u in utterances]
    part = partial_path(output_path)
    done = {}
    if resume and os.path.exists(part):
        done = read_partial(part, settings, digests, chunk_size)
        print(f"resuming: {len(done)} of {len(conversations)} conversations already annotated in {part}")
    elif resume:
        print(f"note: no {part} to resume from; annotating from the start")
    elif os.path.exists(part):
        raise UserError(f"{part} holds an interrupted annotation: pass --resume to continue it, or delete it")
    start_partial(part, settings, done, digests)
    remaining = [i for i in range(len(conversations)) if i not in done]
    chunks = [remaining[k:k + chunk_size] for k in range(0, len(remaining), chunk_size)]
    total = sum(len(chunk_inputs([utterances[i] for i in chunk])) for chunk in chunks)
    with tqdm(total=total, desc="inferring personas", unit="input", disable=not progress) as bar, \
            open(part, "a", encoding="utf-8") as log:
        for chunk in chunks:
            for i, result in zip(chunk, annotate_chunk(extractor, [utterances[i] for i in chunk], batch_size, bar)):
                done[i] = result
                log.write(_partial_line(i, digests[i], *result))
            log.flush()
            os.fsync(log.fileno())
            if on_chunk_done is not None:
                on_chunk_done(len(done))
    records = [with_persona(c, *done[i]) for i, c in enumerate(conversations)]
    write_output(output_path, records, container)
    os.remove(part)
    return records

