"""The model-free scripts: evaluate.py, get_EAD_score.py, summarize_results.py, plot_training.py."""
import json
import math
import os
import subprocess
import sys

import nltk
import pytest

from helpers.metric_files import sample_gen_records, write_gen_json
from helpers.paths import REPO_ROOT, load_script
from palkit.cli import UserError

evaluate = load_script("codes/evaluate.py")
get_EAD_score = load_script("codes/get_EAD_score.py")
summarize_results = load_script("codes/summarize_results.py")
plot_training = load_script("codes/plot_training.py")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_evaluate_rescores_gen_json(punkt, tmp_path):
    folder = write_gen_json(tmp_path / "res", sample_gen_records())
    evaluate.main([str(folder), "--ead_vocab_size", "100"])
    metric = json.loads((folder / "metric.json").read_text())
    assert metric["perplexity"] == pytest.approx(math.exp(1.5))
    assert metric["acc_cls_strat_id"] == 0.5
    # EAD on "I am sad. I am sad." + "i am happy" (derived in test_metric_text): 6 distinct of 11 unigrams
    assert metric["ead-1"] == pytest.approx(100 * 6 / (100 * (1 - 0.99 ** 11)))
    assert (folder / "confusion_matrix_cls_strat_id.png").read_bytes()[:8] == PNG_MAGIC


def test_evaluate_stops_without_punkt(tmp_path, monkeypatch):
    folder = write_gen_json(tmp_path / "res", sample_gen_records())
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    with pytest.raises(UserError, match="punkt_tab"):
        evaluate.main([str(folder)])
    assert not (folder / "metric.json").exists()


def test_evaluate_cli_bad_input_is_one_line(punkt, tmp_path):
    records = sample_gen_records()
    del records[1]["generation"]
    folder = write_gen_json(tmp_path / "res", records)
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "codes" / "evaluate.py"), str(folder)],
                          capture_output=True, text=True, env=dict(os.environ))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "record 1" in proc.stderr and "generation" in proc.stderr
    assert not (folder / "metric.json").exists()


def test_ead_script_scores_generations_only(punkt, tmp_path, capsys):
    folder = write_gen_json(tmp_path / "res", sample_gen_records())
    get_EAD_score.main(["--input_file", str(folder / "gen.json"), "--vocab_size", "100"])
    saved = json.loads((folder / "ead.json").read_text())
    # only the two generations count (the responses/personas would add n-grams if whole records were scored)
    assert (saved["ead-1_distinct_ngrams"], saved["ead-1_total_ngrams"]) == (6, 11)
    assert saved["ead-2"] == pytest.approx(100 * 5 / (100 * (1 - 0.99 ** 8)))
    assert "EAD-1:" in capsys.readouterr().out
    # a JSON list of plain strings (the authors' input) gives the same numbers
    strings = tmp_path / "hyps.json"
    strings.write_text(json.dumps([r["generation"] for r in sample_gen_records()]))
    get_EAD_score.main(["--input_file", str(strings), "--vocab_size", "100", "--output_file", str(tmp_path / "e.json")])
    assert json.loads((tmp_path / "e.json").read_text())["ead-1"] == pytest.approx(saved["ead-1"])


def test_ead_default_vocabulary_is_54956(punkt, tmp_path):
    folder = write_gen_json(tmp_path / "res", sample_gen_records())
    get_EAD_score.main(["--input_file", str(folder / "gen.json"), "--n", "1"])
    saved = json.loads((folder / "ead.json").read_text())
    v = 54956
    assert saved["vocab_size"] == v
    assert saved["ead-1"] == pytest.approx(100 * 6 / (v * (1 - ((v - 1) / v) ** 11)))


def _fixture_folder(path, metric, extra=None):
    path.mkdir(parents=True)
    (path / "metric.json").write_text(json.dumps(metric))
    for name, content in (extra or {}).items():
        (path / name).write_text(json.dumps(content))
    return str(path)


def test_summarize_two_result_folders(tmp_path, capsys):
    # folder A: exactly the paper's PAL row plus one point of PPL -> every Δ is 0 except PPL +1.00
    pal = _fixture_folder(tmp_path / "pal", {
        "acc_cls_strat_id": 0.3451, "perplexity": 16.92, "bleu-2": 8.75, "bleu-4": 2.66, "dist-1": 5.0,
        "dist-2": 30.27, "ead-1": 6.73, "ead-2": 41.82, "rouge-l": 18.06}, {"cos_similarity.json": {
            "cos-sim-generation": 0.244, "cos-sim-response": 0.3}})
    # folder B: a vanilla-like run: no ACC, no PPL, no Cos-Sim; E-1/E-2 only in ead.json
    joint = _fixture_folder(tmp_path / "joint", {
        "bleu-2": 6.57, "bleu-4": 1.93, "dist-1": 3.74, "dist-2": 20.66, "rouge-l": 16.36},
        {"ead.json": {"ead-1": 4.23, "ead-2": 20.28}})
    out = tmp_path / "table.md"
    summarize_results.main([pal, joint, "--names", "ours-PAL", "ours-joint", "--compare_to", "pal", "blender_joint",
                            "--output", str(out)])
    table = out.read_text()
    assert table == capsys.readouterr().out
    rows = {line.split(" | ")[0].lstrip("| "): line.strip(" |").split(" | ")[1:] for line in table.splitlines()}
    assert rows["PAL (paper)"] == ["34.51", "15.92", "8.75", "2.66", "5.00", "30.27", "6.73", "41.82", "18.06", "0.244"]
    assert rows["ours-PAL"] == ["34.51", "16.92", "8.75", "2.66", "5.00", "30.27", "6.73", "41.82", "18.06", "0.244"]
    assert rows["Δ ours-PAL − PAL (paper)"] == ["+0.00", "+1.00"] + ["+0.00"] * 7 + ["+0.000"]
    assert rows["ours-joint"] == ["–", "–", "6.57", "1.93", "3.74", "20.66", "4.23", "20.28", "16.36", "–"]
    assert rows["Δ ours-joint − Blender-Joint (paper)"] == ["–", "–", "+1.00"] + ["+0.00"] * 6 + ["–"]
    assert table.splitlines()[0] == "| Model | ACC | PPL | B-2 | B-4 | D-1 | D-2 | E-1 | E-2 | R-L | Cos-Sim |"


def test_summarize_needs_metric_json(tmp_path):
    with pytest.raises(UserError, match="no result folder \\(metric.json"):
        summarize_results.main([str(tmp_path)])


def test_summarize_runs_on_evaluated_folder(punkt, tmp_path, capsys):
    folder = write_gen_json(tmp_path / "res", sample_gen_records())
    evaluate.main([str(folder)])
    get_EAD_score.main(["--input_file", str(folder / "gen.json")])
    summarize_results.main([str(folder), "--names", "tiny"])
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| tiny |")][0]
    assert row.split(" | ")[1] == "50.00"  # ACC: 1 of 2 strategies right


def test_plot_training_curves(tmp_path):
    # our column names with extra columns in both files
    (tmp_path / "train_log.csv").write_text("epoch,global_step,step,loss,ppl,lr,extra\n"
                                           + "".join(f"{s // 3},{s},{s},{3 - s * 0.1},{math.exp(3 - s * 0.1)},1e-5,x\n"
                                                     for s in range(9)))
    (tmp_path / "eval_log.csv").write_text("epoch,eval_loss,eval_ppl,seconds\n0,2.9,18.2,1\n1,2.7,14.9,1\n2,2.6,13.5,1\n")
    plot_training.main([str(tmp_path)])
    assert (tmp_path / "training_curves.png").read_bytes()[:8] == PNG_MAGIC


def test_plot_training_accepts_authors_headers(tmp_path):
    from metric.plots import load_training_logs
    train = tmp_path / "train_log.csv"
    train.write_text("epoch,global_step,step,tmp_loss,tmp_ppl,mean_loss,mean_ppl,n_token_real,n_token_total,epoch_time\n"
                     "1,2,2,3.0,20.1,3.0,20.1,10,12,0.5\n1,3,3,2.0,7.4,2.5,13.7,10,12,0.9\n")
    evals = tmp_path / "eval_log.csv"
    evals.write_text("epoch,global_step,step,freq_loss,freq_ppl\n0,3,3,2.8,16.4\n")
    curves = load_training_logs(str(train), str(evals))
    assert curves["train_epoch"] == ([1.0], [2.5])  # mean of the per-step losses of epoch 1
    assert curves["eval_ppl"] == ([0.0], [16.4])


def test_plot_training_names_missing_columns(tmp_path):
    (tmp_path / "eval_log.csv").write_text("epoch,eval_loss\n0,2.9\n")
    with pytest.raises(UserError, match="no validation perplexity column.*eval_ppl"):
        plot_training.main([str(tmp_path)])
    assert not (tmp_path / "training_curves.png").exists()
