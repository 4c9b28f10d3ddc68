"""summarize_results.py over training and decoding seeds: grouping by system, checkpoint-selection rules, mean, sd
and 95% CI per cell (expected values computed here with the statistics module and a textbook t value)."""
import json
import statistics

import pytest

from helpers.paths import load_script

from metric.summary import t_quantile_975
from palkit.cli import UserError

summarize_results = load_script("codes/summarize_results.py")

SEEDS = (13, 42, 7)
# validation PPL per seed and epoch: seed 13 is best at epoch 1, 42 at epoch 2, 7 at epoch 0
VAL_PPL = {13: [20.0, 18.0, 19.0], 42: [21.0, 20.0, 19.5], 7: [17.0, 18.5, 19.0]}
SYSTEMS = {"pal": ("strat", None), "pal_alpha0": ("strat", "0"), "blender_joint": ("strat_no_persona", None)}


def bleu2(system, seed, epoch, decode):
    """A distinct B-2 for every folder, so that any mix-up shows."""
    base = {"pal": 8.0, "pal_alpha0": 9.0, "blender_joint": 5.0}[system]
    return base + 0.1 * epoch + 0.01 * SEEDS.index(seed) ** 2 + 0.001 * decode


def make_table3(root, decodes=(0, 1), epochs=(0, 1, 2)):
    """Run folders with args.json and eval_log.csv, and result folders with infer_args.json and metric.json."""
    for config in ("strat", "strat_no_persona"):
        for seed in SEEDS:
            run = root / "runs" / f"{config}-{seed}"
            run.mkdir(parents=True)
            (run / "args.json").write_text(json.dumps({"seed": seed, "learning_rate": 1.5e-5, "num_epochs": 3}))
            rows = "".join(f"{e},{100 * (e + 1)},{VAL_PPL[seed][e]:.4f},{VAL_PPL[seed][e]},1,1,0,epoch-{e}.bin\n"
                           for e in epochs)
            (run / "eval_log.csv").write_text("epoch,global_step,eval_loss,eval_ppl,eval_tokens,eval_examples,lr,"
                                              "checkpoint\n" + rows)
    for system, (config, alpha) in SYSTEMS.items():
        for seed in SEEDS:
            for epoch in epochs:
                for decode in decodes:
                    folder = root / "table3" / system / f"seed-{seed}" / f"epoch-{epoch}" / f"decode-{decode}"
                    folder.mkdir(parents=True)
                    checkpoint = root / "runs" / f"{config}-{seed}" / f"epoch-{epoch}.bin"
                    (folder / "infer_args.json").write_text(json.dumps({
                        "config_name": config, "strategy_alpha": alpha, "seed": decode, "top_k": 10,
                        "load_checkpoint": "elsewhere/epoch-9.bin", "checkpoint": str(checkpoint),
                        "infer_input_file": ["DATA/pesconv/test.txt"]}))
                    (folder / "metric.json").write_text(json.dumps({
                        "bleu-2": bleu2(system, seed, epoch, decode), "perplexity": VAL_PPL[seed][epoch] - 1}))
    return root / "table3"


def expected_cell(values):
    """mean, sd, 95% t interval (t(0.975, 2) = 4.302653 from the t table) of three per-seed values."""
    mean, sd = statistics.mean(values), statistics.stdev(values)
    half = 4.302653 * sd / len(values) ** 0.5
    return mean, sd, mean - half, mean + half


def test_best_ppl_fixed_epoch_and_every_epoch_cells(tmp_path, capsys):
    table3 = make_table3(tmp_path)
    out_json, plot = tmp_path / "results.json", tmp_path / "epochs.png"
    summarize_results.main([str(table3), "--select", "best_ppl", "epoch:2", "every", "--json", str(out_json),
                            "--plot", str(plot), "--output", str(tmp_path / "results.md")])
    text = capsys.readouterr().out
    tables = json.loads(out_json.read_text())["tables"]
    rows = {(t["rule"], t["system"], r["name"]): r for t in tables for r in t["rows"]}
    best = {13: 1, 42: 2, 7: 0}
    for system, name in (("pal", "PAL"), ("pal_alpha0", "PAL α=0"), ("blender_joint", "Blender-Joint")):
        # lowest validation PPL: each seed's own epoch, decoding seeds averaged first
        per_seed = [statistics.mean(bleu2(system, s, best[s], d) for d in (0, 1)) for s in SEEDS]
        cell = rows[("best_ppl", None, name)]["cells"]["B-2"]
        assert (cell["mean"], cell["sd"], cell["ci_low"], cell["ci_high"]) == pytest.approx(expected_cell(per_seed))
        assert cell["n_seeds"] == 3 and cell["n_folders"] == 6
        assert cell["decoding_sd"] == pytest.approx(statistics.stdev([0.0, 0.001]))
        assert rows[("best_ppl", None, name)]["paper"] == system  # its own paper row
        fixed = rows[("epoch:2", None, name)]["cells"]["B-2"]
        assert fixed["mean"] == pytest.approx(statistics.mean(bleu2(system, s, 2, d) for s in SEEDS for d in (0, 1)))
        for epoch in range(3):
            every = rows[("every", system, f"epoch {epoch}")]
            assert every["validation_ppl"]["mean"] == pytest.approx(statistics.mean(VAL_PPL[s][epoch] for s in SEEDS))
    selected = {s["training_seed"]: s["epoch"] for s in rows[("best_ppl", None, "PAL")]["selected"]}
    assert selected == best
    # Markdown: short row names, mean ± sd, a CI row, Δ against the row's own paper row
    pal = rows[("best_ppl", None, "PAL α=0")]["cells"]["B-2"]
    first_table = text.split("\n\n")[1].splitlines()
    names = [line.split(" | ")[0][2:] for line in first_table]
    at = names.index("PAL α=0")
    assert names[at + 1:at + 3] == ["  95% CI", "Δ PAL α=0 − PAL α=0 (paper)"]
    b2 = [line.strip(" |").split(" | ")[3] for line in first_table[at:at + 3]]  # the B-2 column
    assert b2 == [f"{pal['mean']:.2f} ± {pal['sd']:.2f}", f"[{pal['ci_low']:.2f}, {pal['ci_high']:.2f}]",
                  f"{pal['mean'] - 9.28:+.2f}"]
    assert "### Every epoch: Blender-Joint" in text and max(len(line) for line in text.splitlines()) < 160
    assert (tmp_path / "results.md").read_text() == text
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_default_rules_and_three_systems_without_compare_to(tmp_path, capsys):
    table3 = make_table3(tmp_path, decodes=(0,), epochs=(0,))
    summarize_results.main([str(table3), "--json", str(tmp_path / "one.json")])  # one epoch per run: as given
    lines = capsys.readouterr().out.splitlines()
    rows = json.loads((tmp_path / "one.json").read_text(), parse_constant=float)["tables"][0]["rows"]
    assert rows[0]["cells"]["B-2"]["decoding_sd"] is None  # one decoding seed: null, not NaN
    assert lines[0].startswith("| Model |")
    names = [line.split(" | ")[0][2:] for line in lines[5:]]
    assert names == ["PAL", "  95% CI", "Δ PAL − PAL (paper)", "PAL α=0", "  95% CI", "Δ PAL α=0 − PAL α=0 (paper)",
                     "Blender-Joint", "  95% CI", "Δ Blender-Joint − Blender-Joint (paper)"]
    several = make_table3(tmp_path / "more")
    summarize_results.main([str(several)])  # several epochs: lowest validation PPL and every epoch
    text = capsys.readouterr().out
    assert "### Checkpoint: lowest validation PPL of each run" in text and "### Every epoch: PAL" in text


def test_compare_to_count_must_fit_the_systems(tmp_path):
    table3 = make_table3(tmp_path, decodes=(0,), epochs=(0,))
    with pytest.raises(UserError, match="2 rows for 3 systems"):
        summarize_results.main([str(table3), "--compare_to", "pal", "blender_joint"])
    summarize_results.main([str(table3), "--compare_to", "none"])


def test_given_rule_refuses_several_epochs_and_mixed_settings(tmp_path):
    table3 = make_table3(tmp_path)
    with pytest.raises(UserError, match="choose --select"):
        summarize_results.main([str(table3), "--select", "given"])
    other = table3 / "pal" / "seed-13" / "epoch-0" / "decode-0" / "infer_args.json"
    args = json.loads(other.read_text())
    other.write_text(json.dumps({**args, "top_k": 0}))
    with pytest.raises(UserError, match="differ in top_k"):
        summarize_results.main([str(table3), "--select", "best_ppl"])


def test_t_quantiles_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in list(range(1, 40)) + [60, 120, 1000]:
        assert t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), rel=1e-6), df


def test_best_ppl_names_the_epochs_it_chose(tmp_path, capsys):
    summarize_results.main([str(make_table3(tmp_path)), "--select", "best_ppl"])
    text = capsys.readouterr().out
    assert "Epochs chosen (lowest validation PPL of each training run):" in text
    assert "- PAL: seed 13 epoch 1, seed 42 epoch 2, seed 7 epoch 0" in text
