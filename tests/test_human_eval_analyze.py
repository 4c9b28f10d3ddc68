"""human_eval.analyze and its statistics against values computed by hand (and Krippendorff's published example)."""
import json

import pytest

from human_eval.agreement import fleiss_kappa, krippendorff_alpha, sign_test
from human_eval.analyze import main as analyze_main, summarise
from human_eval.store import Store


def test_sign_test_by_hand():
    # 8 wins, 2 losses: P(X <= 2) = (1 + 10 + 45) / 1024, two-sided doubles it
    assert sign_test(8, 2) == pytest.approx(2 * 56 / 1024)
    assert sign_test(2, 8) == sign_test(8, 2)
    assert sign_test(5, 5) == 1.0 and sign_test(0, 0) == 1.0
    assert sign_test(6, 0) == pytest.approx(2 / 64)


def test_fleiss_kappa_by_hand():
    # unit 1: w w w (P = 1); unit 2: l l t (P = 2/6); P-bar = 2/3; p = (3/6, 2/6, 1/6): Pe = 14/36; kappa = 5/11
    assert fleiss_kappa([["w", "w", "w"], ["l", "l", "t"]]) == pytest.approx(5 / 11)
    # unit 2 fully split: P-bar = 1/2, Pe = (16 + 1 + 1) / 36 = 1/2: kappa 0
    assert fleiss_kappa([["w", "w", "w"], ["w", "t", "l"]]) == pytest.approx(0)
    assert fleiss_kappa([["w"], ["l"]]) is None and fleiss_kappa([["w", "w"]]) is None


def test_krippendorff_alpha_by_hand_and_published_example():
    # coincidences: o_ww = 3, o_ll = 1, o_lt = o_tl = 1; n = 6; sum_{c!=k} n_c n_k = 36 - (9 + 4 + 1) = 22
    # alpha = 1 - (n - 1) * 2 / 22 = 6/11
    assert krippendorff_alpha([["w", "w", "w"], ["l", "l", "t"]]) == pytest.approx(6 / 11)
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", 4 observers x 12 units, nominal: 0.743
    rows = ["1 2 3 3 2 1 4 1 2 . . .", "1 2 3 3 2 2 4 1 2 5 . 3", ". 3 3 3 2 3 4 2 2 5 1 .",
            "1 2 3 3 2 4 4 1 2 5 1 ."]
    units = [[v for v in column if v != "."] for column in zip(*(r.split() for r in rows))]
    assert round(krippendorff_alpha(units), 3) == 0.743


def make_db(path, judgments):
    """judgments: [(task, annotator name, system_a, system_b, {criterion: choice})]."""
    store = Store(str(path))
    tasks = sorted({(t, a, b) for t, _, a, b, _ in judgments})
    store.add_tasks([{"mode": "static", "source": f"t{t}", "system_a": a, "system_b": b, "content": {}}
                     for t, a, b in tasks])
    store.set_meta("setup", {"criteria": ["Fluency", "Overall"]})
    ids = {}
    for t, name, a, b, choices in judgments:
        if name not in ids:
            store.add_annotator(name)
            ids[name] = len(ids) + 1
        store.db.execute("INSERT INTO assignments (task_id, annotator_id, started_at) VALUES (?, ?, 0)", (t, ids[name]))
        store.judge(store.task(t), ids[name], choices)
    store.close()


def test_analyze_counts_and_outputs(tmp_path):
    # task 1 shows pal as A, task 2 shows pal as B (order randomised): winners must be mapped to systems
    make_db(tmp_path / "s.db", [
        (1, "x", "pal", "joint", {"Overall": "A", "Fluency": "tie"}),
        (1, "y", "pal", "joint", {"Overall": "A", "Fluency": "B"}),
        (2, "x", "joint", "pal", {"Overall": "B", "Fluency": "A"}),
        (2, "y", "joint", "pal", {"Overall": "tie", "Fluency": "A"}),
    ])
    analyze_main([str(tmp_path / "s.db"), "--output_dir", str(tmp_path / "out")])
    rows = {r["criterion"]: r for r in json.loads((tmp_path / "out" / "s.json").read_text())}
    assert rows["Overall"]["system_x"] == "joint" and rows["Overall"]["system_y"] == "pal"  # ordered by name
    assert (rows["Overall"]["wins"], rows["Overall"]["ties"], rows["Overall"]["losses"]) == (0, 1, 3)
    assert (rows["Fluency"]["wins"], rows["Fluency"]["ties"], rows["Fluency"]["losses"]) == (3, 1, 0)
    assert rows["Overall"]["p_sign"] == pytest.approx(2 / 8)
    # Overall units: [loss, loss], [loss, tie]: P-bar = 1/2, p = (3/4, 1/4), Pe = 10/16, kappa = (8/16-10/16)/(6/16)
    assert rows["Overall"]["fleiss_kappa"] == pytest.approx(-1 / 3)
    md = (tmp_path / "out" / "s.md").read_text()
    assert "### joint vs pal" in md and md.index("| Fluency |") < md.index("| Overall |")
    assert "| Overall | 0 (0%) | 1 (25%) | 3 (75%) | 4 | 0.2500 |" in md
    assert (tmp_path / "out" / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summarise_empty_and_bad_db(tmp_path, capsys):
    assert summarise([]) == {}
    (tmp_path / "bad.db").write_text("not sqlite at all, just text" * 10)
    with pytest.raises(SystemExit) as e:
        from palkit.cli import run_main
        run_main(analyze_main, [str(tmp_path / "bad.db")])
    assert e.value.code == 2 and capsys.readouterr().err.startswith("error: ")
