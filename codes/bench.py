"""Side-by-side benchmarks of the PAL suite, measured in one run on the same batches and the same random weights.

    RUN/python codes/bench.py                     # full-size BlenderBot-small-90M config (random weights), CPU or CUDA
    RUN/python codes/bench.py --small             # a tiny config: seconds, for a smoke run
    RUN/python codes/bench.py --output bench.json --bf16   # also write JSON; bfloat16 autocast for the model passes

Each row is a ratio of two measurements taken here, now (PAL and vanilla interleaved, the median of the paired
ratios): featurization (pal.inputter vs per-example re-tokenization, target >= 8x with identical ids); train step,
greedy and sampled decoding (PAL vs vanilla, judged against the ratio of their multiply-adds counted by pal.flops
from each batch's shapes: within 15% / 10% / 10% of that floor, with the GFLOP/s each side achieved); PAL's stacked
vs two_pass decoder; peak memory of a training step (target <= 2x, a fresh subprocess per model). "Vanilla" is the
Blender-Joint network with PAL's 12 added tokens (variant blender_joint_12tok) fed the same batches. A row that
misses its target (or every row, with --profile) is followed by torch.profiler tables; README "Benchmarks" reads
the results.
"""
import palkit.entry  # noqa: F401 -- first: outside the project's environment, one line saying how to run this
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from palkit.cli import UserError, resolve_device, run_main
from palkit.atomic import write_json
from pal.config import RELEASED, build_tokenizer, load_config
from pal.dialogues import load_dialogues
from pal.flops import Shape, batch_shape, decoding_macs, encoder_side, train_step_macs
from pal.generation import generate
from pal.inputter import Featurizer, collate, settings_for
from pal.model import build_model
from pal.optim import HF4AdamW, parameter_groups
from pal.reference_featurization import reference_strat
from pal.reformat import DATA_HINT, convert_dialogue
from pal.tiny import make_tiny_blenderbot_dir
from pal.variants import by_name
from palkit.options import add_device_argument

REPO_ROOT = Path(__file__).resolve().parents[1]  # the checkout this script runs from
SHARED = REPO_ROOT.parent / "shared"
FULL_SIZE = dict(d_model=512, layers=8, heads=16, ffn=2048)  # facebook/blenderbot_small-90M
SMALL_SIZE = dict(d_model=32, layers=2, heads=2, ffn=64)
TARGETS = {"featurization": (">=", 8.0), "peak_memory": ("<=", 2.0)}  # ratios
FLOOR_TARGETS = {"train_step": 15.0, "greedy": 10.0, "sampled": 10.0}  # % above the arithmetic floor
PAL_VARIANT = by_name("pal")
# the configs of PAL and of Blender-Joint with PAL's tokens: one tokenizer, so both models take the same batches
PAL, VANILLA = PAL_VARIANT.config, by_name("blender_joint_12tok").config


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--small", action="store_true", help="tiny model config instead of the full-size one")
    p.add_argument("--dialogues", type=int, default=60, help="dialogues featurized (and source of the batches)")
    p.add_argument("--train_batch_size", type=int, default=4, help="the released training batch size")
    p.add_argument("--train_steps", type=int, default=4, help="timed steps per model and round")
    p.add_argument("--gen_batch_size", type=int, default=8)
    p.add_argument("--max_length", type=int, default=50, help="reply tokens generated (released max_length)")
    p.add_argument("--rounds", type=int, default=3, help="PAL and vanilla alternate this many times (median ratio)")
    p.add_argument("--max_input_length", type=int, default=RELEASED["max_input_length"])
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    add_device_argument(p)
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast for training steps and decoding")
    p.add_argument("--output", default=None, help="also write the results as JSON here")
    p.add_argument("--profile", action="store_true",
                   help="print the profiler tables of the training step and greedy decoding even when their targets "
                        "are met")
    p.add_argument("--memory_probe", choices=[PAL, VANILLA], help=argparse.SUPPRESS)  # internal: subprocess mode
    p.add_argument("--probe_dir", help=argparse.SUPPRESS)
    return p


# ---- inputs ---------------------------------------------------------------------------------------------------------
def sample_dialogues(n, source=None):
    """n reformatted dialogues (turns {text, speaker usr/sys, strategy}) and where they came from.

    source: an ESConv.json; default: ../shared's, else DATA/ESConv.json, else the bundled demo sample."""
    candidates = [SHARED / "data" / "esconv" / "ESConv.json", REPO_ROOT / "DATA" / "ESConv.json",
                  REPO_ROOT / "RUN" / "demo_data" / "ESConv_sample.json"]
    source = source or next(p for p in candidates if p.is_file())
    raw = load_dialogues(str(source), DATA_HINT).dialogues  # as the reformat (codes/_reformat/process.py) reads it
    records = [convert_dialogue(d, f"{source}: dialogue {i}", False, "inferred") for i, d in enumerate(raw)]
    return records[:n], source


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
    """Both forms timed with the tokenizer's word cache warm (one untimed pass first): otherwise whichever runs
    first pays for filling it and the ratio depends on the order. The two forms alternate dialogue by dialogue (which
    goes first alternates too), and each is timed in CPU seconds of this thread (both are single-threaded Python), which
other processes on a loaded machine do not inflate as they do wall-clock seconds."""
    settings = settings_for(load_config(PAL), PAL_VARIANT.inputter, max_input_length=max_input_length)
    for d in dialogues:
        Featurizer(toker, settings).dialogue_features(d, "training")
    fast = Featurizer(toker, settings)  # its own word cache starts empty, as in a real run
    forms = (lambda d: fast.dialogue_features(d, "training"),
             lambda d: reference_strat(d, toker, "training", max_in=max_input_length))
    outputs, seconds = ([], []), [0.0, 0.0]
    for i, d in enumerate(dialogues):
        for k in ((0, 1) if i % 2 else (1, 0)):
            t0 = time.thread_time()
            outputs[k].append(forms[k](d))
            seconds[k] += time.thread_time() - t0
    (ours, reference), (t_ours, t_ref) = outputs, seconds
    identical = all(len(a) == len(b) and all(f.input_ids == r["input_ids"] and f.labels == r["labels"]
                                              and f.persona_input_ids == r["persona_input_ids"] for f, r in zip(a, b))
                    for a, b in zip(ours, reference))
    n = sum(len(a) for a in ours)
    return {"examples": n, "ours_examples_per_s": n / t_ours, "reference_examples_per_s": n / t_ref,
            "ratio": t_ref / t_ours, "identical_ids": identical}, [f for a in ours for f in a]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def autocast(device, bf16):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def on_device(batch, device):
    return {k: v.to(device) for k, v in batch.items() if torch.is_tensor(v)}


def bench_optimizer(model):
    """The authors' AdamW with train.py's parameter groups."""
    model.train()
    return HF4AdamW(parameter_groups(model, 0.01, "spec"), lr=1e-5)


def train_step(model, optimizer, batch, device, bf16=False):
    """Seconds of one full optimizer step (forward, backward, clip, optimizer step)."""
    batch = on_device(batch, device)
    sync(device)
    t0 = time.perf_counter()
    with autocast(device, bf16):
        loss = model(**batch).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    sync(device)
    return time.perf_counter() - t0


def train_step_seconds(model, train_batches, steps, device, bf16=False):
    """Median seconds of a training step after one warm-up step."""
    optimizer = bench_optimizer(model)
    times = [train_step(model, optimizer, train_batches[i % len(train_batches)], device, bf16)
             for i in range(steps + 1)]
    return statistics.median(times[1:])


def timed_train_batches(train_batches, steps):
    """The batches of the timed steps (step 0, the warm-up, is not timed)."""
    return [train_batches[i % len(train_batches)] for i in range(1, steps + 1)]


def paired_train_steps(models, data, steps, device, bf16=False):
    """[(PAL seconds, vanilla seconds)] per timed step: both models take the same batch back to back (which goes
    first alternates), so load from other processes hits both sides of a pair alike."""
    optimizers = [bench_optimizer(m) for m in models]
    pairs = []
    for i in range(steps + 1):
        order = (0, 1) if i % 2 else (1, 0)
        seconds = [0.0, 0.0]
        for k in order:
            seconds[k] = train_step(models[k], optimizers[k], data[k][i % len(data[k])], device, bf16)
        if i:
            pairs.append(tuple(seconds))
    return pairs


GREEDY = dict(do_sample=False, top_k=0, top_p=1.0)
SAMPLED = dict(do_sample=True, top_k=10, top_p=0.9, temperature=0.5)  # the released decoding


def generation_run(model, toker, gen_batches, max_length, device, bf16=False, seed=0, **options):
    """(seconds per batch, outputs) of decoding exactly max_length reply tokens per example.

    eos is banned until the end (min_length counts the [bos, strategy] prefix), so both models decode the same number
    of steps: random weights would otherwise stop at different, arbitrary lengths.
    """
    model.eval()
    torch.manual_seed(seed)
    outputs = []
    sync(device)
    t0 = time.perf_counter()
    with autocast(device, bf16):
        for batch in gen_batches:
            outputs.append(generate(model, batch, toker, num_beams=1, max_length=max_length, min_length=max_length + 2,
                                    repetition_penalty=1.0, **options))
    sync(device)
    return (time.perf_counter() - t0) / len(gen_batches), outputs


def same_replies(a, b):
    """Share of examples whose reply and strategy are identical in two PAL generation_run outputs."""
    rows = lambda outs: [r for o in outs for r in zip(o["sequences"], o["pred_strat_id"])]
    pairs = list(zip(rows(a), rows(b)))
    return sum(x == y for x, y in pairs) / len(pairs)


def profile_table(fn, device, rows=12):
    """torch.profiler's top operators by self time of one call of fn (shown when a target is not met)."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        fn()
        sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


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
        train_step_seconds(model, train_batches, 2, device, args.bf16)
        peak = torch.cuda.max_memory_allocated() - base
    else:
        reset_peak_rss()
        base = peak_rss_kib() * 1024
        train_step_seconds(model, train_batches, 2, device, args.bf16)
        peak = peak_rss_kib() * 1024 - base
    print(json.dumps({"peak_bytes_over_loaded_model": peak}))


def measure_memory(config_name, probe_dir, args):
    cmd = [sys.executable, __file__, "--memory_probe", config_name, "--probe_dir", probe_dir, "--device", args.device]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.bf16:
        cmd.append("--bf16")
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"memory probe for {config_name} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_bytes_over_loaded_model"]


# ---- report ---------------------------------------------------------------------------------------------------------
def verdict(name, row):
    """The target's line for a result row: a plain ratio target, or within X% of the arithmetic floor."""
    if name in FLOOR_TARGETS:
        limit, over = FLOOR_TARGETS[name], row["over_floor_pct"]
        if over <= limit:
            return f"target within {limit:g}% of the floor: met"
        return f"target within {limit:g}% of the floor: NOT met (by {over - limit:.0f} points)"
    op, target = TARGETS[name]
    ratio = row["ratio"]
    ok = ratio >= target if op == ">=" else ratio <= target
    if ok:
        return f"target {op} {target:g}x: met"
    return f"target {op} {target:g}x: NOT met (by {abs(ratio / target - 1) * 100:.0f}%)"


def met(name, row):
    return verdict(name, row).endswith(": met")


def floor_line(name, row):
    return (f"{'':16} floor {row['floor_ratio']:5.2f}x | over floor {row['over_floor_pct']:+6.1f}% | GFLOP/s PAL "
            f"{row['pal_gflops']:6.1f}, vanilla {row['vanilla_gflops']:6.1f} | {verdict(name, row)}")


def report(results):
    f, t, m, d = (results[k] for k in ("featurization", "train_step", "peak_memory", "pal_decoder"))
    gen_row = lambda name, g: (
        f"{name:<16} PAL {g['pal_s']:8.3f} s/batch ({g['pal_tokens_per_s']:7.1f} tok/s) | vanilla {g['vanilla_s']:8.3f}"
        f" s/batch ({g['vanilla_tokens_per_s']:7.1f} tok/s) | ratio {g['ratio']:5.2f}x")
    lines = [
        f"device {results['device']}, threads {results['threads']}, bf16 {results['bf16']}, model {results['model']}, "
        f"data {results['data']}, load average before/after {results['load_average']}",
        f"featurization    ours {f['ours_examples_per_s']:9.1f} ex/s | per-example re-tokenization "
        f"{f['reference_examples_per_s']:9.1f} ex/s | speed-up {f['ratio']:5.2f}x | identical ids: "
        f"{f['identical_ids']} | {verdict('featurization', f)}",
        f"train step       PAL {t['pal_s']:8.3f} s ({t['pal_tokens_per_s']:7.1f} tok/s) | vanilla {t['vanilla_s']:8.3f} s "
        f"({t['vanilla_tokens_per_s']:7.1f} tok/s) | ratio {t['ratio']:5.2f}x",
        floor_line("train_step", t),
        gen_row("greedy", results["greedy"]),
        floor_line("greedy", results["greedy"]),
        gen_row("sampled", results["sampled"]),
        floor_line("sampled", results["sampled"]),
        f"PAL decoder      stacked {d['stacked_s']:8.3f} s/batch | two_pass {d['two_pass_s']:8.3f} s/batch | speed-up "
        f"{d['speedup']:5.2f}x | identical greedy replies and strategies: {d['identical'] * 100:.1f}%",
        f"peak memory      PAL {m['pal_mib']:8.1f} MiB | vanilla {m['vanilla_mib']:8.1f} MiB (training step, over "
        f"the loaded model) | ratio {m['ratio']:5.2f}x | {verdict('peak_memory', m)}",
    ]
    for name, table in results.get("profiles", {}).items():
        lines += [f"\nprofile ({name}):", table]
    return "\n".join(lines)


def load_average():
    return round(os.getloadavg()[0], 2)


def timed_rounds(models, train_batches, gen_batches, toker, args, device):
    """Seconds of every measurement per round (training: per step) and the outputs of the last round. PAL and
    vanilla alternate (training steps: interleaved step by step) so machine noise hits both. Each decoder is run
    once untimed first: the first call of a new batch shape pays one-off allocations and kernel set-up (seconds on
    a CPU)."""
    pal, vanilla = models
    plain_train = [without_persona(b) for b in train_batches]
    plain_gen = [without_persona(b) for b in gen_batches]
    runs = {k: [] for k in ("train_pal", "train_vanilla", "greedy_pal", "greedy_vanilla", "two_pass_pal",
                            "sampled_pal", "sampled_vanilla")}
    outputs = {}
    warm_ups = ((pal, gen_batches, "stacked"), (pal, gen_batches, "two_pass"), (vanilla, plain_gen, "stacked"))
    for model, data, impl in warm_ups:
        generation_run(model, toker, data[:1], args.max_length, device, args.bf16, contrastive_impl=impl, **GREEDY)
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}: training steps, greedy and sampled generation ...", flush=True)
        for p, v in paired_train_steps(models, (train_batches, plain_train), args.train_steps, device, args.bf16):
            runs["train_pal"].append(p)
            runs["train_vanilla"].append(v)
        for kind, options in (("greedy", GREEDY), ("sampled", SAMPLED)):
            for name, model, data in (("pal", pal, gen_batches), ("vanilla", vanilla, plain_gen)):
                sec, outputs[f"{kind}_{name}"] = generation_run(model, toker, data, args.max_length, device,
                                                                args.bf16, **options)
                runs[f"{kind}_{name}"].append(sec)
        sec, outputs["two_pass_pal"] = generation_run(pal, toker, gen_batches, args.max_length, device, args.bf16,
                                                      contrastive_impl="two_pass", **GREEDY)
        runs["two_pass_pal"].append(sec)
    return runs, outputs


def against_floor(pal_runs, vanilla_runs, pal_macs, vanilla_macs):
    """Medians of paired runs (seconds; the same work on both sides) against the multiply-adds of one run."""
    p, v = statistics.median(pal_runs), statistics.median(vanilla_runs)
    ratio = statistics.median(a / b for a, b in zip(pal_runs, vanilla_runs))
    floor = pal_macs / vanilla_macs
    return {"pal_s": p, "vanilla_s": v, "ratio": ratio, "floor_ratio": floor, "over_floor_pct": (ratio / floor - 1) * 100,
            "pal_macs": pal_macs, "vanilla_macs": vanilla_macs,
            "pal_gflops": 2 * pal_macs / p / 1e9, "vanilla_gflops": 2 * vanilla_macs / v / 1e9}


def summarize(runs, outputs, shape, train_batches, gen_batches, args):
    timed = timed_train_batches(train_batches, args.train_steps)
    label_tokens = statistics.mean(int(b["labels"].ne(-100).sum()) for b in timed)
    train_macs = [statistics.mean(train_step_macs(shape, persona, *batch_shape(b)).total for b in timed)
                  for persona in (True, False)]
    train = against_floor(runs["train_pal"], runs["train_vanilla"], *train_macs)
    train.update(pal_tokens_per_s=label_tokens / train["pal_s"], vanilla_tokens_per_s=label_tokens / train["vanilla_s"],
                 batch_size=args.train_batch_size)
    gen_tokens = args.gen_batch_size * args.max_length
    gen_macs = [statistics.mean(decoding_macs(shape, persona, *batch_shape(b)[:2], steps=args.max_length + 1).total
                                for b in gen_batches) for persona in (True, False)]
    # The decoder's share alone (without the encoder side): the floor per decoded token.
    decoder_macs = [m - statistics.mean(encoder_side(shape, persona, *batch_shape(b)[:2]).total for b in gen_batches)
                    for m, persona in zip(gen_macs, (True, False))]

    def pair(kind):
        row = against_floor(runs[f"{kind}_pal"], runs[f"{kind}_vanilla"], *gen_macs)
        row.update(pal_tokens_per_s=gen_tokens / row["pal_s"], vanilla_tokens_per_s=gen_tokens / row["vanilla_s"],
                   batch_size=args.gen_batch_size, reply_tokens=args.max_length,
                   decoder_floor_ratio=decoder_macs[0] / decoder_macs[1])
        return row
    stacked, two_pass = statistics.median(runs["greedy_pal"]), statistics.median(runs["two_pass_pal"])
    return {
        "train_step": train, "greedy": pair("greedy"), "sampled": pair("sampled"),
        "pal_decoder": {"stacked_s": stacked, "two_pass_s": two_pass, "speedup": two_pass / stacked,
                        "identical": same_replies(outputs["greedy_pal"], outputs["two_pass_pal"])},
    }


def profiles(results, models, train_batches, gen_batches, toker, args, device):
    """torch.profiler tables for the rows whose target was not met (every row with --profile)."""
    pal, vanilla = models
    out = {}
    if args.profile or not met("train_step", results["train_step"]):
        for name, model, data in (("PAL", pal, train_batches), ("vanilla", vanilla,
                                                                [without_persona(b) for b in train_batches])):
            out[f"train step, {name}"] = profile_table(lambda: train_step_seconds(model, data[:2], 1, device,
                                                                                  args.bf16), device)
    if args.profile or not met("greedy", results["greedy"]):
        for name, model, data in (("PAL", pal, gen_batches[:1]), ("vanilla", vanilla,
                                                                  [without_persona(gen_batches[0])])):
            out[f"greedy, {name}"] = profile_table(lambda: generation_run(model, toker, data, args.max_length,
                                                                          device, args.bf16, **GREEDY), device)
    return out


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
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="pal-bench-") as workdir:
        path = model_dir(workdir, args.small)
        dialogues, source = sample_dialogues(args.dialogues)
        toker = build_tokenizer(load_config(PAL), path)
        print(f"featurizing {len(dialogues)} dialogues from {source} ...", flush=True)
        feat, features = bench_featurization(toker, dialogues, args.max_input_length)
        train_batches = batches(features[:args.train_batch_size * (args.train_steps + 1)], args.train_batch_size,
                                toker.pad_token_id)
        torch.save(train_batches, Path(workdir) / "batches.pt")
        gen_batches = batches(features[:args.gen_batch_size * 2], args.gen_batch_size, toker.pad_token_id)
        models = [build_model(name, pretrained_model_path=path, device=device)[1] for name in (PAL, VANILLA)]
        runs, outputs = timed_rounds(models, train_batches, gen_batches, toker, args, device)
        results = {"device": str(device), "threads": torch.get_num_threads(), "bf16": args.bf16, "data": str(source),
                   "model": "tiny config" if args.small else "BlenderBot-small-90M config (random weights)",
                   "featurization": feat,
                   **summarize(runs, outputs, Shape.of(models[0]), train_batches, gen_batches, args)}
        results["profiles"] = profiles(results, models, train_batches, gen_batches, toker, args, device)
        del models
        print("peak memory (one subprocess per model) ...", flush=True)
        mem = {name: measure_memory(name, workdir, args) for name in (PAL, VANILLA)}
    results["peak_memory"] = {"pal_mib": mem[PAL] / 2**20, "vanilla_mib": mem[VANILLA] / 2**20,
                              "ratio": mem[PAL] / max(mem[VANILLA], 1)}
    results["load_average"] = [load_before, load_average()]
    results["targets"] = {name: verdict(name, results[name]) for name in
                          ("featurization", "train_step", "greedy", "sampled", "peak_memory")}
    print(report(results))
    if args.output:
        write_json(args.output, results)
        print(f"wrote {args.output}")


if __name__ == "__main__":
    run_main(main)
