"""Side-by-side benchmarks of the PAL suite, measured in one run on the same batches and the same random weights.

    python codes/bench.py            # full-size BlenderBot-small-90M config (random weights), CPU or CUDA
    python codes/bench.py --small    # a tiny config: seconds, for a smoke run

Each row is a ratio of two measurements taken here, now, on this machine: absolute times vary between machines and
runs, the ratios much less. Rows and targets (full-size config):
  featurization  examples/s, pal.inputter vs the authors' per-example re-tokenization  target >= 5x, identical ids
  train step     seconds per optimizer step, PAL vs vanilla BlenderBot-small           target <= 2.2x
  generation     seconds per batch of greedy replies, PAL vs vanilla                    target <= 2.2x
  peak memory    peak memory of a training step over the loaded model, PAL vs vanilla   target <= 2x
"Vanilla" is plain BlenderBot-small fed the same batches (the Blender-Joint model: the same network with the 12
added tokens and no persona fusion); its decoding runs one decoder pass per step where PAL's contrastive rule
runs two. Data: ESConv from ../shared (or DATA/ESConv.json) when present, else the bundled demo sample.
Peak memory on CPU is the process's peak resident set (VmHWM, reset before the step), measured in a fresh
subprocess per model so that one model's freed memory cannot hide the other's; on CUDA, max_memory_allocated.
"""
import argparse
import importlib.util
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from pal.cli import UserError, resolve_device, run_main, write_json
from pal.config import REPO_ROOT, load_config, build_tokenizer
from pal.generation import generate
from pal.inputter import Featurizer, collate, settings_for
from pal.model import build_model
from pal.reference_featurization import reference_strat
from pal.tiny import make_tiny_blenderbot_dir

SHARED = REPO_ROOT.parent / "shared"
FULL_SIZE = dict(d_model=512, layers=8, heads=16, ffn=2048)  # facebook/blenderbot_small-90M
SMALL_SIZE = dict(d_model=32, layers=2, heads=2, ffn=64)
TARGETS = {"featurization": (">=", 5.0), "train_step": ("<=", 2.2), "generation": ("<=", 2.2),
           "peak_memory": ("<=", 2.0)}
PAL, VANILLA = "strat", "strat_no_persona"


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--small", action="store_true", help="tiny model config instead of the full-size one")
    p.add_argument("--dialogues", type=int, default=60, help="dialogues featurized (and source of the batches)")
    p.add_argument("--train_batch_size", type=int, default=4, help="the released training batch size")
    p.add_argument("--train_steps", type=int, default=4, help="timed steps per model and round")
    p.add_argument("--gen_batch_size", type=int, default=8)
    p.add_argument("--max_length", type=int, default=50, help="reply tokens generated (released max_length)")
    p.add_argument("--rounds", type=int, default=2, help="PAL and vanilla alternate this many times; median kept")
    p.add_argument("--max_input_length", type=int, default=512)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--output", default=None, help="also write the results as JSON here")
    p.add_argument("--memory_probe", choices=[PAL, VANILLA], help=argparse.SUPPRESS)  # internal: subprocess mode
    p.add_argument("--probe_dir", help=argparse.SUPPRESS)
    return p


# ---- inputs ---------------------------------------------------------------------------------------------------------
def load_dialogues(n, source=None):
    """n reformatted dialogues (turns {text, speaker usr/sys, strategy}) and where they came from.

    source: an ESConv.json; default: ../shared's, else DATA/ESConv.json, else the bundled demo sample."""
    candidates = [SHARED / "data" / "esconv" / "ESConv.json", REPO_ROOT / "DATA" / "ESConv.json",
                  REPO_ROOT / "RUN" / "demo_data" / "ESConv_sample.json"]
    source = source or next(p for p in candidates if p.is_file())
    process = _load_reformat_module()
    raw = process.load_dialogues(str(source))[0]
    records = [process.convert_dialogue(d, f"{source}: dialogue {i}", False, "inferred") for i, d in enumerate(raw)]
    return records[:n], source


def _load_reformat_module():
    path = Path(__file__).resolve().parent / "_reformat" / "process.py"
    spec = importlib.util.spec_from_file_location("reformat_process", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def model_dir(workdir, small):
    """Random weights in the real folder layout, with the real tokenizer when ../shared has it."""
    tok = SHARED / "models" / "Blenderbot_small-90M"
    size = SMALL_SIZE if small else FULL_SIZE
    return make_tiny_blenderbot_dir(str(Path(workdir) / "blenderbot"), tokenizer_dir=str(tok) if tok.is_dir() else None,
                                    seed=0, **size)


def batches(features, size, pad_id):
    return [collate(features[i:i + size], pad_id, persona_in_batches=True) for i in range(0, len(features), size)]


def without_persona(batch):
    return {k: v for k, v in batch.items() if not k.startswith("persona_")}


# ---- measurements ---------------------------------------------------------------------------------------------------
def bench_featurization(toker, dialogues, max_input_length):
    settings = settings_for(load_config(PAL), "strat", max_input_length=max_input_length)
    fast = Featurizer(toker, settings)
    t0 = time.perf_counter()
    ours = [fast.dialogue_features(d, "training") for d in dialogues]
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    reference = [reference_strat(d, toker, "training", max_in=max_input_length) for d in dialogues]
    t_ref = time.perf_counter() - t0
    identical = all(len(a) == len(b) and all(f.input_ids == r["input_ids"] and f.labels == r["labels"]
                                              and f.persona_input_ids == r["persona_input_ids"] for f, r in zip(a, b))
                    for a, b in zip(ours, reference))
    n = sum(len(a) for a in ours)
    return {"examples": n, "ours_examples_per_s": n / t_ours, "reference_examples_per_s": n / t_ref,
            "ratio": t_ref / t_ours, "identical_ids": identical}, [f for a in ours for f in a]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_step_seconds(model, train_batches, steps, device):
    """Median seconds of a full optimizer step (forward, backward, clip, AdamW) after one warm-up step."""
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    times = []
    for i in range(steps + 1):
        batch = {k: v.to(device) for k, v in train_batches[i % len(train_batches)].items() if torch.is_tensor(v)}
        sync(device)
        t0 = time.perf_counter()
        model(**batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync(device)
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def generation_seconds(model, toker, gen_batches, max_length, device):
    """Seconds per batch of greedy decoding of exactly max_length reply tokens.

    eos is banned until the end (min_length counts the [bos, strategy] prefix), so both models decode the same number
    of steps: random weights would otherwise stop at different, arbitrary lengths.
    """
    model.eval()
    sync(device)
    t0 = time.perf_counter()
    for batch in gen_batches:
        generate(model, batch, toker, do_sample=False, top_k=0, top_p=1.0, num_beams=1, max_length=max_length,
                 min_length=max_length + 2, repetition_penalty=1.0)
    sync(device)
    return (time.perf_counter() - t0) / len(gen_batches)


def peak_rss_kib():
    return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def reset_peak_rss():
    Path("/proc/self/clear_refs").write_text("5")  # Linux: resets VmHWM to the current resident set


def memory_probe(args):
    """Subprocess mode: load one model, then report the peak memory of training steps over the loaded state."""
    with open(Path(args.probe_dir) / "batches.pt", "rb") as f:
        train_batches = torch.load(f)
    device = resolve_device(args.device)
    _, model = build_model(args.memory_probe, pretrained_model_path=str(Path(args.probe_dir) / "blenderbot"),
                           device=device)
    if args.memory_probe == VANILLA:
        train_batches = [without_persona(b) for b in train_batches]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        train_step_seconds(model, train_batches, 2, device)
        peak = torch.cuda.max_memory_allocated() - base
    else:
        reset_peak_rss()
        base = peak_rss_kib() * 1024
        train_step_seconds(model, train_batches, 2, device)
        peak = peak_rss_kib() * 1024 - base
    print(json.dumps({"peak_bytes_over_loaded_model": peak}))


def measure_memory(config_name, probe_dir, args):
    cmd = [sys.executable, __file__, "--memory_probe", config_name, "--probe_dir", probe_dir, "--device", args.device]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"memory probe for {config_name} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_bytes_over_loaded_model"]


# ---- report ---------------------------------------------------------------------------------------------------------
def verdict(name, ratio):
    op, target = TARGETS[name]
    ok = ratio >= target if op == ">=" else ratio <= target
    return f"target {op} {target:g}x: {'met' if ok else 'NOT met'}"


def report(results):
    f, t, g, m = (results[k] for k in ("featurization", "train_step", "generation", "peak_memory"))
    lines = [
        f"device {results['device']}, threads {results['threads']}, model {results['model']}, data {results['data']}",
        f"featurization  ours {f['ours_examples_per_s']:9.1f} ex/s | per-example re-tokenization "
        f"{f['reference_examples_per_s']:9.1f} ex/s | speed-up {f['ratio']:5.2f}x | identical ids: "
        f"{f['identical_ids']} | {verdict('featurization', f['ratio'])}",
        f"train step     PAL {t['pal_s']:8.3f} s | vanilla {t['vanilla_s']:8.3f} s | ratio {t['ratio']:5.2f}x | "
        f"{verdict('train_step', t['ratio'])}",
        f"generation     PAL {g['pal_s']:8.3f} s/batch ({g['pal_replies_per_s']:.2f} replies/s) | vanilla "
        f"{g['vanilla_s']:8.3f} s/batch ({g['vanilla_replies_per_s']:.2f} replies/s) | ratio {g['ratio']:5.2f}x | "
        f"{verdict('generation', g['ratio'])}",
        f"peak memory    PAL {m['pal_mib']:8.1f} MiB | vanilla {m['vanilla_mib']:8.1f} MiB (training step, over the "
        f"loaded model) | ratio {m['ratio']:5.2f}x | {verdict('peak_memory', m['ratio'])}",
    ]
    return "\n".join(lines)


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_probe:
        return memory_probe(args)
    if args.dialogues < 1 or args.rounds < 1 or args.train_steps < 1:
        raise UserError("--dialogues, --rounds and --train_steps must be >= 1")
    device = resolve_device(args.device)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="pal-bench-") as workdir:
        path = model_dir(workdir, args.small)
        dialogues, source = load_dialogues(args.dialogues)
        toker = build_tokenizer(load_config(PAL), path)
        print(f"featurizing {len(dialogues)} dialogues from {source} ...", flush=True)
        feat, features = bench_featurization(toker, dialogues, args.max_input_length)
        train_batches = batches(features[:args.train_batch_size * (args.train_steps + 1)], args.train_batch_size,
                                toker.pad_token_id)
        torch.save(train_batches, Path(workdir) / "batches.pt")
        gen_batches = batches(features[:args.gen_batch_size * 2], args.gen_batch_size, toker.pad_token_id)
        _, pal = build_model(PAL, pretrained_model_path=path, device=device)
        _, vanilla = build_model(VANILLA, pretrained_model_path=path, device=device)
        train = {PAL: [], VANILLA: []}
        gen = {PAL: [], VANILLA: []}
        for r in range(args.rounds):  # alternate so that machine noise hits both models alike
            print(f"round {r + 1}/{args.rounds}: training steps and greedy generation ...", flush=True)
            train[PAL].append(train_step_seconds(pal, train_batches, args.train_steps, device))
            train[VANILLA].append(train_step_seconds(vanilla, [without_persona(b) for b in train_batches],
                                                     args.train_steps, device))
            gen[PAL].append(generation_seconds(pal, toker, gen_batches, args.max_length, device))
            gen[VANILLA].append(generation_seconds(vanilla, toker, [without_persona(b) for b in gen_batches],
                                                   args.max_length, device))
        del pal, vanilla
        print("peak memory (one subprocess per model) ...", flush=True)
        mem = {name: measure_memory(name, workdir, args) for name in (PAL, VANILLA)}
    t = {k: statistics.median(v) for k, v in train.items()}
    g = {k: statistics.median(v) for k, v in gen.items()}
    results = {
        "device": str(device), "threads": torch.get_num_threads(), "data": str(source),
        "model": "tiny config" if args.small else "BlenderBot-small-90M config (random weights)",
        "featurization": feat,
        "train_step": {"pal_s": t[PAL], "vanilla_s": t[VANILLA], "ratio": t[PAL] / t[VANILLA],
                       "batch_size": args.train_batch_size},
        "generation": {"pal_s": g[PAL], "vanilla_s": g[VANILLA], "ratio": g[PAL] / g[VANILLA],
                       "pal_replies_per_s": args.gen_batch_size / g[PAL],
                       "vanilla_replies_per_s": args.gen_batch_size / g[VANILLA], "batch_size": args.gen_batch_size},
        "peak_memory": {"pal_mib": mem[PAL] / 2**20, "vanilla_mib": mem[VANILLA] / 2**20,
                        "ratio": mem[PAL] / max(mem[VANILLA], 1)},
    }
    print(report(results))
    if args.output:
        write_json(args.output, results)
        print(f"wrote {args.output}")


if __name__ == "__main__":
    run_main(main)
