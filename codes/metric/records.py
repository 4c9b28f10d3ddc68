"""Reading and checking gen.json records before any metric is computed (so bad input writes nothing)."""
import math
import os

from palkit.loaders import load_json
from palkit.paths import require_path
from palkit.cli import UserError
from pal.config import STRATEGIES

GOLD_KEY, PRED_KEY = "cls_strat_id", "pred_strat_id"

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


# ---- gold strategies from the test file ------------------------------------------------------------------------------
# The authors' infer.py (chengjl19/PAL, thu-coai codes_zcj) keeps the gold strategy out of gen.json. Their records are
# the test file's examples in file order, with sample_id = the dialogue's position in the file. Which supporter turns
# are examples differs: PAL (and codes/infer.py) emit a supporter turn right after a seeker turn, codes_zcj every
# supporter turn but a dialogue's first turn. The PAL examples are a subset of the zcj ones, so the two lists have
# equal lengths only when they are identical, and the record count says which one a gen.json holds.
EMISSION_RULES = {
    "PAL (supporter turns right after a seeker turn)": lambda turns, i: turns[i - 1][0] != "sys",
    "codes_zcj (every supporter turn)": lambda turns, i: True,
}


def gold_file_examples(gold_file):
    """{rule name: [(dialogue index, line number, gold strategy id)] in file order} of a reformatted test file."""
    from pal.inputter import checked_turns, read_dialogues  # lazy: imports torch and transformers' tokenizers
    examples = {name: [] for name in EMISSION_RULES}
    for index, (line, data) in enumerate(read_dialogues(gold_file)):
        turns = checked_turns(data, f"{gold_file}: line {line}", need_strategy=True)
        for i in range(1, len(turns)):
            if turns[i][0] != "sys":
                continue
            for name, emits in EMISSION_RULES.items():
                if emits(turns, i):
                    examples[name].append((index, line, STRATEGIES.index(turns[i][2])))
    return examples


def with_gold_strategies(records, gold_file, source="gen.json"):
    """Copies of the records with `cls_strat_id` read from `gold_file` (see EMISSION_RULES); records that already
    have one must agree with it."""
    if not all_or_none(records, (PRED_KEY,), source):
        raise UserError(f"{source}: no record has {PRED_KEY} (a model without strategy prediction): "
                        f"--gold_file has nothing to be compared with; drop it")
    candidates = gold_file_examples(gold_file)
    examples = next((ex for ex in candidates.values() if len(ex) == len(records)), None)
    if examples is None:
        counts = ", ".join(f"{len(ex)} under {name}" for name, ex in candidates.items())
        raise UserError(f"{gold_file}: {counts} examples, but {source} has {len(records)} records; pass the "
                        f"reformatted test file the records were generated from")
    out = []
    for k, (record, (index, line, gold)) in enumerate(zip(records, examples)):
        if "sample_id" in record and str(record["sample_id"]) != str(index):
            raise UserError(f"{source}: record {k} has sample_id {record['sample_id']} but example {k} of "
                            f"{gold_file} comes from dialogue {index} (line {line}); pass the file the records were "
                            f"generated from")
        if GOLD_KEY in record and str(record[GOLD_KEY]) != str(gold):
            raise UserError(f"{source}: record {k} has {GOLD_KEY} {record[GOLD_KEY]} but {gold_file} line {line} "
                            f"says {gold} ({STRATEGIES[gold]})")
        out.append({**record, GOLD_KEY: gold})
    return out
