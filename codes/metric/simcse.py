"""Persona-response similarity (the paper's Cos-Sim): cosine between sentence embeddings of the persona and of the
generation (and, for reference, of the persona and the gold response).

As the authors do: the encoder's `pooler_output` (SimCSE `princeton-nlp/sup-simcse-bert-base-uncased` by default),
inputs truncated to the encoder's maximum length, the persona text as gen.json stores it (the extractor's special
tokens already stripped), and the score averaged over examples. The authors encode each example's three texts as one
padded batch; we batch several examples together. With the attention mask, padding does not change an embedding
beyond floating-point rounding (the tests check this).

Records whose persona is empty (gen.json stores "" for the seeker's first two turns, whose persona is "<input>")
compare the generation with an empty text. The authors' mean includes them (the default, Table 3's number);
`summarize_similarities(..., exclude_empty=True)` leaves them out. Either way a warning gives their count and
cos_similarity.json reports it (num_empty_persona) beside the mean over the non-empty ones.
"""
import sys

from tqdm import tqdm

from palkit.hub import from_folder_or_hub
from palkit.cli import UserError
from pal.dialogues import INPUT_TOKEN, PERSONA_TOKEN
from .records import first_text

DEFAULT_ENCODER = "princeton-nlp/sup-simcse-bert-base-uncased"
GET_IT = (f"download {DEFAULT_ENCODER} (config, tokenizer files and weights) into a folder and pass --model DIR")


def load_encoder(name_or_dir, device):
    """(tokenizer, model) from a local directory, the local hub cache, or the hub (only when it answers at once:
    palkit.hub.from_folder_or_hub); a UserError saying how to get it."""
    from transformers import AutoModel, AutoTokenizer  # lazy: seconds to import; --help needs none of it
    try:
        return from_folder_or_hub(lambda **kw: _from_pretrained(AutoTokenizer, AutoModel, name_or_dir, device, **kw),
                                  name_or_dir, GET_IT, known=(DEFAULT_ENCODER,))
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load the sentence encoder {name_or_dir!r} ({str(e).splitlines()[0]}): {GET_IT}")


def _from_pretrained(tokenizer_cls, model_cls, name_or_dir, device, **kwargs):
    tokenizer = tokenizer_cls.from_pretrained(name_or_dir, **kwargs)
    model = model_cls.from_pretrained(name_or_dir, **kwargs)
    return tokenizer, model.to(device).eval()


def _max_length(tokenizer, model):
    limits = [tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", None)]
    limits = [x for x in limits if isinstance(x, int) and 0 < x < 100_000]
    return min(limits) if limits else 512


def embed(texts, tokenizer, model, batch_size=64):
    """Pooler-output embeddings (float32 tensor, one row per text)."""
    import torch  # lazy, as transformers above
    max_length = _max_length(tokenizer, model)
    device = next(model.parameters()).device
    chunks = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            inputs = tokenizer(texts[start:start + batch_size], padding=True, truncation=True, max_length=max_length,
                               return_tensors="pt").to(device)
            output = model(**inputs)
            if getattr(output, "pooler_output", None) is None:
                raise UserError("the encoder has no pooler output (Cos-Sim uses pooler_output, as the authors do): "
                                "use a BERT-style encoder with a pooler such as " + DEFAULT_ENCODER)
            chunks.append(output.pooler_output.float().cpu())
    return torch.cat(chunks)


def cosine_rows(a, b):
    """Row-wise cosine similarity, computed in float64: 1 - scipy.spatial.distance.cosine, row by row."""
    import torch  # lazy, as transformers above
    a, b = a.double(), b.double()
    return (torch.sum(a * b, dim=1) / (a.norm(dim=1) * b.norm(dim=1))).tolist()


def persona_similarities(records, tokenizer, model, batch_size=64):
    """Per-example {'response': cos(persona, response), 'generation': cos(persona, generation)}."""
    results = []
    for start in tqdm(range(0, len(records), batch_size), desc="cos-sim", unit="batch"):
        chunk = records[start:start + batch_size]
        personas = embed([str(r["persona"]) for r in chunk], tokenizer, model, batch_size)
        responses = embed([first_text(r["response"]) for r in chunk], tokenizer, model, batch_size)
        generations = embed([first_text(r["generation"]) for r in chunk], tokenizer, model, batch_size)
        for sim_r, sim_g in zip(cosine_rows(personas, responses), cosine_rows(personas, generations)):
            results.append({"response": sim_r, "generation": sim_g})
    return results


def is_empty_persona(persona):
    """True for "" and for a persona of nothing but the extractor's tokens ("<input>")."""
    return not str(persona).replace(PERSONA_TOKEN, " ").replace(INPUT_TOKEN, " ").strip()


def _means(scores):
    return {"cos-sim-generation": sum(s["generation"] for s in scores) / len(scores),
            "cos-sim-response": sum(s["response"] for s in scores) / len(scores), "num_examples": len(scores)}


def summarize_similarities(records, scores, exclude_empty=False, source="gen.json"):
    """cos_similarity.json's numbers: the means over the records (the authors', empty personas included) or over the
    non-empty ones (`exclude_empty`), the count of empty personas, and the non-empty means for reference."""
    empty = [is_empty_persona(r["persona"]) for r in records]
    nonempty = [s for s, e in zip(scores, empty) if not e]
    n_empty = len(scores) - len(nonempty)
    if n_empty:
        print(f"warning: {source}: {n_empty} of {len(scores)} records have an empty persona; a record is one "
              f"supporter reply, and the replies before the seeker's 3rd turn have no persona (persona_list starts "
              f"there), beside those whose persona_list entry is empty; their cosine compares the generation with an "
              f"empty text, " + ("excluded from the mean" if exclude_empty else
              "included in the mean, as the authors' (--exclude_empty_persona True leaves them out)"),
              file=sys.stderr)
    kept = nonempty if exclude_empty else scores
    if not kept:
        raise UserError(f"{source}: every record's persona is empty: no Cos-Sim to average (use a gen.json of a "
                        "persona model on PESConv data, or --exclude_empty_persona False)")
    summary = _means(kept)
    summary.update(num_empty_persona=n_empty, empty_persona="excluded" if exclude_empty else "included",
                   nonempty=_means(nonempty) if nonempty else None)
    return summary
