"""Persona-response similarity (the paper's Cos-Sim): cosine between sentence embeddings of the persona and of the
generation (and, for reference, of the persona and the gold response).

As the authors do: the encoder's `pooler_output` (SimCSE `princeton-nlp/sup-simcse-bert-base-uncased` by default),
inputs truncated to the encoder's maximum length, the persona text as gen.json stores it (the extractor's special
tokens already stripped), and the score averaged over examples. The authors encode each example's three texts as one
padded batch; we batch several examples together. With the attention mask, padding does not change an embedding
beyond floating-point rounding (the tests check this).
"""
from pal.cli import UserError

DEFAULT_ENCODER = "princeton-nlp/sup-simcse-bert-base-uncased"


def load_encoder(name_or_dir, device):
    """(tokenizer, model) from a local directory or a hub name; a UserError saying how to get it otherwise."""
    from transformers import AutoModel, AutoTokenizer
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_dir)
        model = AutoModel.from_pretrained(name_or_dir)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot load the sentence encoder {name_or_dir!r} ({str(e).splitlines()[0]}): download "
                        f"{DEFAULT_ENCODER} (config, tokenizer files and weights) into a folder and pass --model DIR")
    return tokenizer, model.to(device).eval()


def _max_length(tokenizer, model):
    limits = [tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", None)]
    limits = [x for x in limits if isinstance(x, int) and 0 < x < 100_000]
    return min(limits) if limits else 512


def embed(texts, tokenizer, model, batch_size=64):
    """Pooler-output embeddings (float32 tensor, one row per text)."""
    import torch
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
    import torch
    a, b = a.double(), b.double()
    return (torch.sum(a * b, dim=1) / (a.norm(dim=1) * b.norm(dim=1))).tolist()


def persona_similarities(records, tokenizer, model, batch_size=64):
    """Per-example {'response': cos(persona, response), 'generation': cos(persona, generation)}."""
    from tqdm import tqdm
    from .records import first_text
    results = []
    for start in tqdm(range(0, len(records), batch_size), desc="cos-sim", unit="batch"):
        chunk = records[start:start + batch_size]
        personas = embed([str(r["persona"]) for r in chunk], tokenizer, model, batch_size)
        responses = embed([first_text(r["response"]) for r in chunk], tokenizer, model, batch_size)
        generations = embed([first_text(r["generation"]) for r in chunk], tokenizer, model, batch_size)
        for sim_r, sim_g in zip(cosine_rows(personas, responses), cosine_rows(personas, generations)):
            results.append({"response": sim_r, "generation": sim_g})
    return results
