"""Reading and checking gen.json records before any metric is computed (so bad input writes nothing)."""
import math
import os

from pal.checks import load_json, require_path
from pal.cli import UserError

GEN_JSON_HINT = "pass a result folder written by codes/infer.py (it holds gen.json) or the gen.json file itself"


def load_gen_json(path):
    """The list of records in a gen.json file; a UserError naming the file and problem otherwise."""
    if os.path.isdir(require_path(path, GEN_JSON_HINT)):
        path = os.path.join(path, "gen.json")
    return load_json(path, expect=list, nonempty=True, hint=GEN_JSON_HINT)


def first_text(value):
    """gen.json holds a list of strings when several sequences were returned; the metrics use the first
    (as the authors' nlg-eval step does)."""
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return str(value)


def check_records(records, source="gen.json"):
    """Every record must be an object with `response` and `generation`; report the first that is not."""
    if not isinstance(records, list) or not records:
        raise UserError(f"{source}: no records to evaluate")
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise UserError(f"{source}: record {i} is not a JSON object")
        for key in ("response", "generation"):
            if key not in record or record[key] is None:
                raise UserError(f"{source}: record {i} (sample_id {record.get('sample_id', '?')}) has no {key!r}; "
                                "metrics need the reference `response` and the model's `generation`")


def all_or_none(records, keys, source="gen.json"):
    """True when every record has all `keys`, False when none has any; a UserError for a mixture."""
    having = [all(k in r for k in keys) for r in records]
    if all(having):
        return True
    if any(having) or any(any(k in r for k in keys) for r in records):
        missing = having.index(False)
        raise UserError(f"{source}: record {missing} lacks {' / '.join(keys)} while other records have them")
    return False


def corpus_perplexity(records):
    """exp(total loss / total tokens) over the per-example `loss` (mean token loss) and `token_num` fields:
    the same number as the authors' corpus-level perplexity."""
    total_loss = total_tokens = 0.0
    for i, r in enumerate(records):
        try:
            loss, tokens = float(r["loss"]), float(r["token_num"])
        except (TypeError, ValueError):
            raise UserError(f"gen.json: record {i}: loss and token_num must be numbers")
        total_loss += loss * tokens
        total_tokens += tokens
    if total_tokens <= 0:
        raise UserError("gen.json: token_num sums to 0; cannot compute perplexity")
    return math.exp(total_loss / total_tokens)
