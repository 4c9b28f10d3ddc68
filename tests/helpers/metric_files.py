"""gen.json records and result folders for the metric scripts."""
import json


def write_gen_json(folder, records):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gen.json").write_text(json.dumps(records))
    return folder


def sample_gen_records():
    return [
        {"sample_id": 0, "post": "", "response": "I am sorry to hear that.", "generation": "I am sad. I am sad.",
         "persona": "i lost my job.", "cls_strat_id": 2, "pred_strat_id": 2, "token_num": 4, "loss": 1.0, "ppl": 0},
        {"sample_id": 1, "post": "", "response": "Have you told a friend?", "generation": "i am happy",
         "persona": "i lost my job.", "cls_strat_id": 0, "pred_strat_id": 5, "token_num": 4, "loss": 2.0, "ppl": 0},
    ]
