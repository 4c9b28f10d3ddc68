"""Shared set-up of the human-evaluation tests: tiny PAL / Blender-Joint checkpoints and a small test file."""
import os

from helpers.pal_models import DIALOGUES, randomize, write_dialogues

CARDS = [("anxiety", "job crisis", "My company is laying people off and I have two kids."),
         ("sadness", "ongoing depression", "My friend <b>stopped</b> talking to me."),
         ("fear", "sleep problems", "I cannot sleep at night.")]


def make_study_inputs(root, tiny_blender_dir):
    """{"strat": ckpt, "strat_no_persona": ckpt, "test_file": path} under root (a pathlib.Path)."""
    from pal.checkpoint import save_checkpoint
    from pal.model import build_model
    out = {}
    for config in ("strat", "strat_no_persona"):
        _, model = build_model(config, pretrained_model_path=tiny_blender_dir)
        os.makedirs(root / config, exist_ok=True)
        out[config] = str(root / config / "epoch-0.bin")
        save_checkpoint(randomize(model), out[config])
    dialogues = [{**d, "emotion_type": e, "problem_type": p, "situation": s} for d, (e, p, s) in zip(DIALOGUES, CARDS)]
    out["test_file"] = write_dialogues(root / "test.txt", dialogues)
    return out


def system_args(inputs):
    return ["--system", f"name=pal,config=strat,checkpoint={inputs['strat']}",
            "--system", f"name=joint,config=strat_no_persona,checkpoint={inputs['strat_no_persona']}"]


FAST_DECODING = ["--max_length", "6", "--min_length", "2"]


# ---- a browser's requests through Flask's test client --------------------------------------------------------
def login(client, token):
    """Open a personal link: a session for its annotator, and a redirect to a page without the token."""
    response = client.get(f"/a/{token}/")
    assert response.status_code == 303 and response.headers["Location"] == "/home"
    return response


def post(client, url, data=None, **kwargs):
    """A form post as the annotator's page sends it (with the session's CSRF token)."""
    with client.session_transaction() as session:
        token = session.get("csrf", "")
    return client.post(url, data={"csrf_token": token, **(data or {})}, **kwargs)


def task_url(client, token=None):
    """The annotator's current or next task (after logging in with `token` when given)."""
    if token is not None:
        login(client, token)
    response = post(client, "/next")
    assert response.status_code == 303, response.get_data(as_text=True)
    return response.headers["Location"]
