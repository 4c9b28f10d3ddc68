"""The paper's Table 3 (PESConv test split) and how each of its columns is read from a result folder.

Scales follow the table: ACC is a percentage (metric.json stores a fraction, as the authors' infer.py does);
B-2, B-4, D-1, D-2, R-L are already percentages in metric.json (the authors' Metric.close() multiplies by 100);
E-1/E-2 are stored as percentages by us; PPL and Cos-Sim are raw values.
"""
from pal.variants import VARIANTS

COLUMNS = ["ACC", "PPL", "B-2", "B-4", "D-1", "D-2", "E-1", "E-2", "R-L", "Cos-Sim"]

# The paper's Table 3: row label -> values in COLUMNS order.
TABLE3 = {
    "PAL": [34.51, 15.92, 8.75, 2.66, 5.00, 30.27, 6.73, 41.82, 18.06, 0.244],
    "PAL α=0": [34.25, 15.92, 9.28, 2.90, 4.72, 25.56, 5.87, 33.05, 18.27, 0.229],
    "Blender-Joint": [27.72, 18.11, 5.57, 1.93, 3.74, 20.66, 4.23, 20.28, 16.36, 0.184],
}
# (system key, row label, values): the rows of the variants that reproduce one (pal.variants: table3_row).
PAPER_ROWS = [(v.name, f"{v.table3_row} (paper)", TABLE3[v.table3_row]) for v in VARIANTS.values() if v.table3_row]
PAPER = {key: dict(zip(COLUMNS, values)) for key, _, values in PAPER_ROWS}
PAPER_LABELS = {key: label for key, label, _ in PAPER_ROWS}

# column -> (file in the result folder, key, multiplier). Cos-Sim comes from get_cos_similarity.py's output;
# E-1/E-2 from metric.json, else from get_EAD_score.py's ead.json.
SOURCES = {
    "ACC": [("metric.json", "acc_cls_strat_id", 100.0)],
    "PPL": [("metric.json", "perplexity", 1.0)],
    "B-2": [("metric.json", "bleu-2", 1.0)],
    "B-4": [("metric.json", "bleu-4", 1.0)],
    "D-1": [("metric.json", "dist-1", 1.0)],
    "D-2": [("metric.json", "dist-2", 1.0)],
    "E-1": [("metric.json", "ead-1", 1.0), ("ead.json", "ead-1", 1.0)],
    "E-2": [("metric.json", "ead-2", 1.0), ("ead.json", "ead-2", 1.0)],
    "R-L": [("metric.json", "rouge-l", 1.0)],
    "Cos-Sim": [("cos_similarity.json", "cos-sim-generation", 1.0)],
}
# --distinct standard: D-1/D-2 from the standard definition instead of the authors' off-by-one one
STANDARD_DISTINCT = {"D-1": [("metric.json", "dist-1-standard", 1.0)], "D-2": [("metric.json", "dist-2-standard", 1.0)]}
DECIMALS = {column: (3 if column == "Cos-Sim" else 2) for column in COLUMNS}
