"""Paired significance tests of every Table 3 metric between systems decoded on the same test examples.

    RUN/python codes/compare_systems.py A B [C ...] [--select best_ppl] [--resamples 10000] [--seed 0]
                                    [--output FILE.json] [--plot FILE.png]

Each of A, B, ... is one system: a result folder, a folder holding result folders (e.g. DATA/table3/pal: every
training and decoding seed of PAL), or several of those joined by commas. Each system after the first is compared
with the first (delta = B - A): paired bootstrap interval of the difference (Distinct and EAD: the randomization
test inverted, an interval that always holds the observed difference) and approximate-randomization p-value for ACC,
PPL, BLEU-2/4, Distinct-1/2, EAD-1/2, ROUGE-L and Cos-Sim (when cos_similarity_list.json is there), corpus metrics
recomputed from per-example counts (metric/example_stats.py). PPL between systems with different tokenizers (PAL
and a chat LLM) is reported as not comparable instead of tested. A system with several folders is
scored as the mean over its folders; the spread table then says how much of their spread comes from decoding.
--output: JSON keyed by metric.json key ({a, b, delta, ci_low, ci_high, interval, p_value, se, spread, comparable,
why} in metric.json's scale; delta to se null where not comparable); with more than one B, each key holds one such
object per B, keyed by B's name.
"""
import palkit.entry  # noqa: F401 -- first: outside the project's environment, one line saying how to run this
import argparse
import sys

from palkit.argtypes import float_range, output_file, positive_int
from palkit.cli import ArgumentParser, UserError, run_main
from palkit.atomic import atomic_write, write_json

from metric.example_stats import TABLE3_METRICS, Tokenizer, folder_stats
from metric.result_folders import find_result_folders, parse_rule, read_infos, select, short_names
from metric.significance import System, compare
from palkit.options import add_seed_argument


def parse_args(argv=None):
    p = ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("systems", nargs="+", metavar="SYSTEM", help="result folder(s) of one system (comma-separated)")
    p.add_argument("--names", nargs="+", default=None, help="display names, one per system (default: from the folders)")
    p.add_argument("--select", default="given", help="checkpoint rule within each system: given (default), "
                   "best_ppl (per training run, the decoded epoch with the lowest validation PPL) or epoch:N")
    p.add_argument("--resamples", type=positive_int, default=10000, help="bootstrap and permutation resamples")
    add_seed_argument(p, 0, "seed of the resampling (same seed, same numbers)")
    p.add_argument("--confidence", type=float_range(0, 1, lo_open=True, hi_open=True), default=0.95,
                   help="level of the bootstrap interval")
    p.add_argument("--metrics", nargs="+", default=list(TABLE3_METRICS), choices=list(TABLE3_METRICS),
                   metavar="KEY", help="metric.json keys to test (default: all of Table 3)")
    p.add_argument("--output", default=None, type=output_file, help="write the results as JSON here")
    p.add_argument("--markdown", default=None, type=output_file, help="also write the Markdown printed here")
    p.add_argument("--plot", default=None, type=output_file, help="write a forest plot of the differences (PNG) here")
    args = p.parse_args(argv)
    if len(args.systems) < 2:
        p.error("give at least two systems (A B)")
    if args.names and len(args.names) != len(args.systems):
        p.error(f"--names gives {len(args.names)} names for {len(args.systems)} systems")
    if args.select == "every":
        p.error("--select every is for summarize_results.py; compare one epoch: best_ppl or epoch:N")
    parse_rule(args.select)
    return args


def _sort_key(info):
    return (str(info.train_seed), str(info.decode_seed), info.path)


def load_system(argument, name, rule, tokenizer, vocabularies):
    """A System from one command-line argument: its folders selected by `rule`, ordered by training and decoding
    seed (the randomization test pairs the j-th folders of two systems)."""
    paths = [p for p in argument.split(",") if p]
    folders = find_result_folders(paths)
    infos = read_infos(folders)
    chosen = sorted((i for group in select(infos, rule).values() for i in group), key=_sort_key)
    labels = {i.label for i in chosen}
    described = {i.label for i in chosen if i.described}
    if len(described) > 1:
        raise UserError(f"{argument} holds folders of several systems ({', '.join(sorted(described))}): give each "
                        "system as its own argument (e.g. DATA/table3/pal DATA/table3/pal_alpha0)")
    name = name or (labels.pop() if len(labels) == 1 else short_names(paths[:1])[0])
    replicates, references = [], None
    for info in chosen:
        stats, refs = folder_stats(info.path, tokenizer, vocabularies)
        if references is not None and refs != references:
            raise UserError(f"{info.path}: its references differ from {chosen[0].path}; paired tests need every "
                            "folder decoded on the same test file")
        references = refs
        replicates.append(stats)
    return System(name, replicates, [(i.train_seed, i.decode_seed) for i in chosen]), references, chosen


def load_systems(args):
    tokenizer, vocabularies = Tokenizer(), {}
    systems, first_refs = [], None
    for k, argument in enumerate(args.systems):
        system, refs, chosen = load_system(argument, args.names[k] if args.names else None, args.select,
                                           tokenizer, vocabularies)
        if first_refs is not None and refs != first_refs:
            raise UserError(f"{argument}: not decoded on the same test examples as {args.systems[0]}")
        first_refs = refs
        systems.append(system)
        print(f"{system.name}: {len(chosen)} result folder(s), {system.n} examples", file=sys.stderr)
    names = [s.name for s in systems]
    if len(set(names)) < len(names):  # e.g. PAL at two epochs: name them by their paths
        for s, short in zip(systems, short_names([a.split(",")[0] for a in args.systems])):
            s.name = f"{s.name} ({short})" if names.count(s.name) > 1 else s.name
    return systems


def _fmt(value, key, signed=False):
    column, scale = TABLE3_METRICS[key]
    digits = 3 if column == "Cos-Sim" else 2
    return f"{value * scale:{'+' if signed else ''}.{digits}f}"


def _p(p):
    return f"{p:.4f}" if p >= 1e-4 else "< 1e-4"


def _interval(r, key):
    ends = ["–" if v is None else _fmt(v, key, True) for v in (r["ci_low"], r["ci_high"])]  # –: too few resamples
    return f"[{ends[0]}, {ends[1]}]" + (" ᴿ" if r["interval"] == "randomization inversion" else "")


def mark_disagreements(comparisons, confidence):
    """Set each comparable metric's `interval_agrees_with_p`: whether its interval excludes 0 exactly when p <=
    1 - confidence. The inverted randomization interval always agrees; a bootstrap percentile interval and the
    randomization p-value are two different procedures and may disagree, mostly on small test sets."""
    for comparison in comparisons:
        for r in comparison["metrics"].values():
            if not r["comparable"] or r["ci_low"] is None or r["ci_high"] is None:
                r["interval_agrees_with_p"] = None
                continue
            excludes_zero = r["ci_low"] > 0 or r["ci_high"] < 0
            r["interval_agrees_with_p"] = excludes_zero == (r["p_value"] <= 1 - confidence)


def markdown(comparisons, n, args):
    level = round(100 * args.confidence)
    lines = [f"Paired tests on {n} test examples; {args.resamples} resamples (seed {args.seed}); {level}% percentile "
             "bootstrap interval of B − A (ᴿ, Distinct and EAD: the randomization test inverted, an interval that "
             "always holds B − A, as bootstrap resamples with repeated examples lower their diversity); p: "
             "approximate randomization (two-sided). Values in Table 3's scale.", ""]
    for comparison in comparisons:
        lines += [f"### B = {comparison['b']} vs A = {comparison['a']}", "",
                  f"| Metric | A | B | B − A | {level}% CI | p |", "|---|---|---|---|---|---|"]
        for key, r in comparison["metrics"].items():
            name = f"| {TABLE3_METRICS[key][0]} (`{key}`) | {_fmt(r['a'], key)} | {_fmt(r['b'], key)} |"
            if not r["comparable"]:
                lines.append(f"{name} not comparable ({r['why']}) | – | – |")
                continue
            mark = " ‡" if r.get("interval_agrees_with_p") is False else ""
            lines.append(f"{name} {_fmt(r['delta'], key, True)} | {_interval(r, key)} | {_p(r['p_value'])}{mark} |")
        lines.append("")
    if any(r.get("interval_agrees_with_p") is False for c in comparisons for r in c["metrics"].values()):
        lines += [f"‡ The bootstrap interval and the randomization p disagree on whether B − A is 0 at the "
                  f"{level}% level: two procedures that can part on few test examples; report the difference as "
                  "significant only where both agree.", ""]
    lines += spread_markdown(comparisons)
    return "\n".join(lines).rstrip() + "\n"


def spread_markdown(comparisons):
    """Per system with several folders: decoding-seed sd, training-seed sd, the decoding share of their variance,
    and the test-sample sd (bootstrap) for scale."""
    rows, seen = [], set()
    for comparison in comparisons:
        for role in ("a", "b"):
            name = comparison[role]
            for key, r in comparison["metrics"].items():
                s = r["spread"].get(role)
                if s is None or (name, key) in seen:
                    continue
                seen.add((name, key))
                share = "–" if s["decoding_share"] is None else f"{100 * s['decoding_share']:.0f}%"
                rows.append(f"| {name} | {TABLE3_METRICS[key][0]} | {s['n_replicates']} | "
                            f"{_sd(s['decoding_sd'], key)} | {_sd(s['training_sd'], key)} | {share} | "
                            f"{_sd(s['test_sample_sd'], key)} |")
    if not rows:
        return []
    return ["### Where the spread comes from (systems with several result folders)", "",
            "| System | Metric | folders | decoding sd | training-seed sd | decoding share | test-sample sd |",
            "|---|---|---|---|---|---|---|"] + rows + [""]


def _sd(value, key):
    return "–" if value is None else _fmt(value, key)


def json_output(comparisons):
    """Keyed by metric.json key; one B: the comparison's fields; several: {B name: fields}."""
    keys = list(comparisons[0]["metrics"])
    if len(comparisons) == 1:
        c = comparisons[0]
        return {k: {"a_system": c["a"], "b_system": c["b"], **c["metrics"][k]} for k in keys}
    return {k: {c["b"]: {"a_system": c["a"], "b_system": c["b"], **c["metrics"][k]} for c in comparisons}
            for k in keys}


def main(argv=None):
    args = parse_args(argv)
    systems = load_systems(args)
    keys, comparisons = compare(systems, args.metrics, args.resamples, args.seed, args.confidence)
    if not keys:
        raise UserError("no metric can be computed for every system (each folder needs gen.json)")
    mark_disagreements(comparisons, args.confidence)
    text = markdown(comparisons, systems[0].n, args)
    print(text, end="")
    if args.markdown:
        with atomic_write(args.markdown) as f:
            f.write(text)
        print(f"wrote {args.markdown}", file=sys.stderr)
    if args.output:
        write_json(args.output, json_output(comparisons))
        print(f"wrote {args.output}", file=sys.stderr)
    if args.plot:
        from metric.plots import plot_forest  # lazy: matplotlib, for --plot only
        plot_forest(comparisons, TABLE3_METRICS, args.plot, args.confidence)
        print(f"wrote {args.plot}", file=sys.stderr)


if __name__ == "__main__":
    run_main(main)
