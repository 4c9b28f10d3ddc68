"""Paired tests (metric.significance, codes/compare_systems.py): corpus metrics from counts equal the text metrics on
resampled texts, and the tests give the known answers."""
import json
import math
import random

import numpy as np
import pytest

from helpers.paths import load_script

from metric import evaluate_records
from metric.example_stats import ExampleStats, Tokenizer, corpus_values, folder_stats, text_stats
from metric.significance import System, bootstrap, bootstrap_weights, compare, inverted_interval, p_value, spread
from metric.text import bleu, distinct_authors, ead, mean, rouge_l_per_example
from metric.tokens import metric_tokens, sentence_word_tokens
from palkit.cli import UserError

compare_systems = load_script("codes/compare_systems.py")

WORDS = "i am so sorry to hear that . you feel sad and alone ? have you told a friend about it it is hard".split()
TEXT_KEYS = ["bleu-2", "bleu-4", "dist-1", "dist-2", "ead-1", "ead-2", "rouge-l"]


def sentences(n, seed):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 14))) for _ in range(n)]


def text_values(refs, hyps):
    """Every text metric straight from metric.text, on the texts themselves."""
    r, h = [metric_tokens(t) for t in refs], [metric_tokens(t) for t in hyps]
    s = [x for t in hyps for x in sentence_word_tokens(t)]
    return {"bleu-2": 100 * bleu(r, h, 2), "bleu-4": 100 * bleu(r, h, 4), "dist-1": 100 * distinct_authors(h, 1),
            "dist-2": 100 * distinct_authors(h, 2), "ead-1": 100 * ead(s, 1)[0], "ead-2": 100 * ead(s, 2)[0],
            "rouge-l": 100 * mean(rouge_l_per_example(r, h))}


def stats_of(refs, hyps, vocabularies=None):
    additive, sets = text_stats(refs, hyps, Tokenizer(), {} if vocabularies is None else vocabularies)
    return ExampleStats(len(refs), additive, sets)


def test_bootstrap_from_counts_equals_metrics_on_resampled_texts(punkt):
    refs, hyps = sentences(40, 1), sentences(40, 2)
    stats = stats_of(refs, hyps)
    rng = np.random.default_rng(3)
    weights = bootstrap_weights(rng, 6, 40)
    from_counts = corpus_values(stats, weights, TEXT_KEYS)
    for r, w in enumerate(weights):
        drawn = [i for i in range(40) for _ in range(int(w[i]))]  # the resample as texts, each drawn example repeated
        expected = text_values([refs[i] for i in drawn], [hyps[i] for i in drawn])
        for key in TEXT_KEYS:
            assert from_counts[key][r] == pytest.approx(expected[key], rel=1e-12, abs=1e-12), key


def _folder(path, refs, hyps, seed=0, with_cos=True):
    rng = random.Random(seed)
    records = [{"sample_id": i, "post": "", "response": r, "generation": h, "persona": "i lost my job.",
                "cls_strat_id": rng.randrange(8), "pred_strat_id": rng.randrange(8), "token_num": rng.randint(3, 9),
                "loss": rng.uniform(1, 4)} for i, (r, h) in enumerate(zip(refs, hyps))]
    path.mkdir(parents=True)
    (path / "gen.json").write_text(json.dumps(records))
    if with_cos:
        (path / "cos_similarity_list.json").write_text(json.dumps(
            [{"generation": rng.uniform(-1, 1), "response": 0.0} for _ in records]))
    return path, records


def test_observed_values_equal_metric_json(punkt, tmp_path):
    refs, hyps = sentences(30, 4), sentences(30, 5)
    folder, records = _folder(tmp_path / "res", refs, hyps)
    metric = evaluate_records(records, str(folder), verbose=False)
    stats, _ = folder_stats(str(folder), Tokenizer(), {})
    keys = [k for k in stats.metrics() if k != "cos-sim-generation"]
    observed = corpus_values(stats, np.ones((1, 30)), keys)
    for key in keys:
        assert observed[key][0] == pytest.approx(metric[key], rel=1e-12), key
    cos = json.loads((folder / "cos_similarity_list.json").read_text())
    assert corpus_values(stats, np.ones((1, 30)), ["cos-sim-generation"])["cos-sim-generation"][0] == \
        pytest.approx(sum(c["generation"] for c in cos) / 30)


def _system(name, refs, hyps, vocabularies, replicates=1):
    stats = stats_of(refs, hyps, vocabularies)
    stats.additive.update(acc=np.arange(len(refs)) % 3 == 0, loss_sum=np.linspace(1, 5, len(refs)),
                          tokens=np.full(len(refs), 4.0))
    return System(name, [stats] * replicates, [(0, d) for d in range(replicates)])


def test_identical_systems_differ_by_zero_with_p_one(punkt):
    refs, hyps = sentences(50, 6), sentences(50, 7)
    vocab = {}
    keys, [result] = compare([_system("A", refs, hyps, vocab), _system("B", refs, hyps, vocab)],
                             TEXT_KEYS + ["acc_cls_strat_id", "perplexity"], resamples=300, seed=1)
    assert set(keys) == set(TEXT_KEYS + ["acc_cls_strat_id", "perplexity"])
    for key, r in result["metrics"].items():
        assert r["delta"] == 0 and r["ci_low"] <= 0 <= r["ci_high"] and r["p_value"] == 1.0, key


def test_references_beat_a_shuffled_system(punkt):
    refs = sentences(80, 8)
    shuffled = refs[1:] + refs[:1]  # the same replies, each given to the wrong example
    vocab = {}
    _, [result] = compare([_system("shuffled", refs, shuffled, vocab), _system("gold", refs, refs, vocab)],
                          TEXT_KEYS, resamples=500, seed=2)
    m = result["metrics"]
    # (below 100: NLTK counts a reply shorter than n as one unmatched n-gram)
    assert m["bleu-2"]["b"] == pytest.approx(text_values(refs, refs)["bleu-2"]) and m["bleu-2"]["b"] > 90
    for key in ("bleu-2", "bleu-4", "rouge-l"):
        assert m[key]["delta"] > 0 and m[key]["ci_low"] > 0 and m[key]["p_value"] < 0.01, key
    for key in ("dist-1", "dist-2", "ead-1", "ead-2"):  # the same multiset of replies: the same diversity
        assert m[key]["delta"] == pytest.approx(0, abs=1e-12) and m[key]["p_value"] == 1.0, key


def test_same_seed_same_numbers_and_a_third_system_changes_nothing(punkt):
    refs = sentences(40, 9)
    vocab = {}
    a, b, c = (_system(n, refs, sentences(40, s), vocab) for n, s in (("A", 10), ("B", 11), ("C", 12)))
    _, first = compare([a, b], TEXT_KEYS, resamples=200, seed=5)
    _, again = compare([a, b], TEXT_KEYS, resamples=200, seed=5)
    _, other_seed = compare([a, b], TEXT_KEYS, resamples=200, seed=6)
    _, with_c = compare([a, b, c], TEXT_KEYS, resamples=200, seed=5)
    assert first == again
    assert with_c[0] == first[0]
    assert other_seed[0]["metrics"]["bleu-2"]["ci_low"] != first[0]["metrics"]["bleu-2"]["ci_low"]


def test_spread_separates_decoding_from_training_seeds():
    # two training seeds, two decoding seeds each: within-run variances 2 and 2 -> decoding variance 2;
    # run means 2 and 6 -> their variance 8, minus decoding 2 * mean(1/2) -> training variance 7
    boot = np.array([[0.0, 2.0]] * 4)
    s = spread(np.array([1.0, 3.0, 5.0, 7.0]), [(13, 0), (13, 1), (42, 0), (42, 1)], boot)
    assert s["decoding_sd"] == pytest.approx(2 ** 0.5) and s["training_sd"] == pytest.approx(7 ** 0.5)
    assert s["decoding_share"] == pytest.approx(2 / 9)
    assert s["test_sample_sd"] == pytest.approx(2 ** 0.5)


def test_unequal_replicates_cannot_be_paired(punkt):
    refs = sentences(10, 13)
    vocab = {}
    with pytest.raises(UserError, match="same number"):
        compare([_system("A", refs, refs, vocab, 2), _system("B", refs, refs, vocab, 3)], ["bleu-2"], resamples=10)


def strict_json(name):
    raise AssertionError(f"{name} in a JSON file: undefined values must be null")


@pytest.mark.filterwarnings("error:constrained_layout not applied")  # long names squeezed the panels flat
def test_compare_systems_cli_writes_markdown_json_and_forest_plot(punkt, tmp_path, capsys):
    refs = sentences(60, 14)
    a, _ = _folder(tmp_path / "a", refs, refs[1:] + refs[:1], seed=1)
    b1, _ = _folder(tmp_path / "b" / "decode-0", refs, refs, seed=2)
    b2, _ = _folder(tmp_path / "b" / "decode-1", refs, sentences(60, 15), seed=3)
    c, _ = _folder(tmp_path / "c", refs, sentences(60, 16), seed=4, with_cos=False)
    out, plot = tmp_path / "cmp.json", tmp_path / "forest.png"
    # B: two folders (a parent folder); compared folder by folder needs A with two as well: give A twice
    compare_systems.main([f"{a},{a}", str(tmp_path / "b"), "--resamples", "200", "--output", str(out),
                          "--plot", str(plot), "--markdown", str(tmp_path / "cmp.md")])
    text = capsys.readouterr().out
    assert text == (tmp_path / "cmp.md").read_text()
    assert "| B-2 (`bleu-2`) |" in text and "Where the spread comes from" in text
    result = json.loads(out.read_text(), parse_constant=strict_json)
    assert set(result) == {"acc_cls_strat_id", "perplexity", "bleu-2", "bleu-4", "dist-1", "dist-2", "ead-1",
                           "ead-2", "rouge-l", "cos-sim-generation"}
    for r in result.values():
        assert {"a", "b", "delta", "ci_low", "ci_high", "p_value"} <= set(r)
        assert r["delta"] == pytest.approx(r["b"] - r["a"])
    assert result["bleu-2"]["spread"]["b"]["n_replicates"] == 2
    assert result["bleu-2"]["spread"]["a"]["decoding_sd"] == 0 and result["bleu-2"]["spread"]["a"]["training_sd"] is None
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # three systems: keyed by metric, then by B; Cos-Sim dropped (c has no per-example scores)
    compare_systems.main([str(a), str(b1), str(c), "--resamples", "50", "--output", str(out)])
    result = json.loads(out.read_text())
    assert "cos-sim-generation" not in result and set(result["bleu-2"]) == {"decode-0", "c"}
    assert result["bleu-2"]["c"]["a_system"] == "a"


def test_compare_systems_refuses_different_test_examples(punkt, tmp_path):
    a, _ = _folder(tmp_path / "a", sentences(20, 17), sentences(20, 18))
    b, _ = _folder(tmp_path / "b", sentences(20, 19), sentences(20, 18))
    with pytest.raises(UserError, match="same test examples"):
        compare_systems.main([str(a), str(b), "--resamples", "10"])


# ---- Distinct / EAD intervals: the randomization test inverted --------------------------------------------------
DIVERSITY_KEYS = ["dist-1", "dist-2", "ead-1", "ead-2"]


def _diverse_and_repetitive(n, seed):
    """A: every reply made of words seen nowhere else (maximally diverse); B: a handful of replies repeated."""
    rng = random.Random(seed)
    diverse = [" ".join(f"w{i}x{j}" for j in range(rng.randint(4, 9))) + " ." for i in range(n)]
    repetitive = [rng.choice(["i am sorry .", "that sounds hard .", "have you told a friend ?"]) for _ in range(n)]
    return diverse, repetitive


def test_diversity_intervals_contain_the_difference_where_the_bootstrap_misses_it(punkt):
    refs = sentences(60, 20)
    diverse, repetitive = _diverse_and_repetitive(60, 21)
    vocab = {}
    a, b = _system("diverse", refs, diverse, vocab), _system("repetitive", refs, repetitive, vocab)
    _, [result] = compare([a, b], TEXT_KEYS, resamples=400, seed=3)
    # the independent reading: the percentile interval of the bootstrap differences, as the metrics' own code gives
    boot = bootstrap([a, b], DIVERSITY_KEYS, 400, np.random.default_rng(0))
    missed = 0
    for key in DIVERSITY_KEYS:
        r = result["metrics"][key]
        deltas = boot["repetitive"][key].mean(axis=0) - boot["diverse"][key].mean(axis=0)
        low, high = np.percentile(deltas, [2.5, 97.5])
        missed += not low <= r["delta"] <= high  # a resample repeats A's unique replies: A loses diversity
        assert r["interval"] == "randomization inversion"
        assert r["ci_low"] <= r["delta"] <= r["ci_high"] and r["ci_high"] < 0, (key, r)
    assert missed >= 2  # the bootstrap percentile interval misses its own estimate here (what was reported)
    assert result["metrics"]["bleu-2"]["interval"] == "bootstrap percentile"


def test_the_inverted_interval_is_every_difference_the_test_does_not_reject():
    rng = np.random.default_rng(7)
    for confidence in (0.9, 0.95):
        for _ in range(20):
            permuted, delta = rng.normal(size=int(rng.integers(30, 300))), float(rng.normal(scale=2))
            low, high = inverted_interval(permuted, delta, confidence)
            for d in np.linspace(delta - 5, delta + 5, 401):  # brute force: the test of "B - A = d" at each d
                kept = p_value(permuted, delta - d) > 1 - confidence
                if abs(abs(d - delta) - (high - delta)) > 1e-9:  # (the boundary itself: rounding)
                    assert kept == (low <= d <= high), (confidence, d, low, high)
            assert (not low <= 0 <= high) == (p_value(permuted, delta) <= 1 - confidence)
    assert inverted_interval(np.ones(10), 0.5, 0.95) == (-math.inf, math.inf)  # 10 resamples cannot reject at 5%


# ---- PPL across tokenizers --------------------------------------------------------------------------------------
def test_ppl_between_different_tokenizers_is_not_comparable(punkt, tmp_path, capsys):
    refs = sentences(30, 22)
    pal, _ = _folder(tmp_path / "pal", refs, sentences(30, 23), seed=1)
    alpha0, _ = _folder(tmp_path / "alpha0", refs, sentences(30, 24), seed=2)
    llm, _ = _folder(tmp_path / "llm", refs, sentences(30, 25), seed=3)
    for folder in (pal, alpha0):  # codes/infer.py's record of what decoded the folder
        (folder / "infer_args.json").write_text(json.dumps({"config_name": "strat", "inputter_name": "strat"}))
    (llm / "infer_args.json").write_text(json.dumps({"system": {"kind": "llm", "name": "smol", "llm": "smollm2"}}))
    out = tmp_path / "cmp.json"
    compare_systems.main([str(pal), str(alpha0), str(llm), "--names", "pal", "alpha0", "llm", "--resamples", "50",
                          "--output", str(out),
                          "--plot", str(tmp_path / "forest.png")])
    text = capsys.readouterr().out
    result = json.loads(out.read_text())["perplexity"]
    assert result["alpha0"]["comparable"] and result["alpha0"]["p_value"] > 0
    assert result["llm"]["comparable"] is False and result["llm"]["why"] == "different tokenizers"
    assert result["llm"]["p_value"] is None and result["llm"]["delta"] is None and result["llm"]["b"] > 0
    llm_table = text.split("### B = llm")[1]
    assert "| PPL (`perplexity`) |" in llm_table and "not comparable (different tokenizers) | – | – |" in llm_table
    assert "not comparable" not in text.split("### B = llm")[0]


# ---- an interval and a p-value that disagree are marked -------------------------------------------------------
def test_a_bootstrap_interval_that_disagrees_with_its_p_value_is_marked():
    def row(low, high, p, interval="bootstrap percentile"):
        return {"a": 0.0, "b": 0.01, "delta": 0.01, "ci_low": low, "ci_high": high, "p_value": p,
                "interval": interval, "comparable": True, "spread": {}}
    metrics = {"bleu-2": row(0.001, 0.02, 0.01), "bleu-4": row(0.001, 0.02, 0.22),  # agree; excludes 0, p 0.22
               "rouge-l": row(-0.01, 0.02, 0.03),  # includes 0, p 0.03
               "dist-1": row(-0.01, 0.02, 0.40, "randomization inversion"),
               "perplexity": {**row(None, None, None), "comparable": False, "why": "different tokenizers"}}
    comparisons = [{"a": "A", "b": "B", "metrics": metrics}]
    compare_systems.mark_disagreements(comparisons, 0.95)
    assert {k: r["interval_agrees_with_p"] for k, r in metrics.items()} == {
        "bleu-2": True, "bleu-4": False, "rouge-l": False, "dist-1": True, "perplexity": None}
    args = compare_systems.parse_args(["a", "b"])
    text = compare_systems.markdown(comparisons, 10, args)
    marked = [line.split("|")[1].strip() for line in text.splitlines() if line.endswith("‡ |")]
    assert marked == ["B-4 (`bleu-4`)", "R-L (`rouge-l`)"]
    assert "‡ The bootstrap interval and the randomization p disagree" in text
    del metrics["bleu-4"], metrics["rouge-l"]
    compare_systems.mark_disagreements(comparisons, 0.95)
    assert "‡" not in compare_systems.markdown(comparisons, 10, args)
