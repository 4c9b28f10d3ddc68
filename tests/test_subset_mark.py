"""A partial output and its `.subset.json` mark are committed as one unit (pal.completeness.marked_write): an
annotation killed at either side of the rename that puts PESConv.json in place (palkit.atomic crash points
`pesconv:complete` and `pesconv:swapped`) leaves a file whose mark names it exactly when it is partial; never a
partial file that looks complete, nor a complete one marked partial."""
import hashlib
import json
import os

import pytest

from helpers.crash import killed_run
from pal.completeness import mark_path, marked_write, partial_description

pytestmark = [pytest.mark.robustness, pytest.mark.usefixtures("one_torch_thread")]


def conversation(n_seeker_turns):
    dialog = []
    for k in range(n_seeker_turns):
        dialog += [{"speaker": "seeker", "annotation": {}, "content": f"i lost my job {k}"},
                   {"speaker": "supporter", "annotation": {"strategy": "Question"}, "content": "tell me more."}]
    return {"emotion_type": "sadness", "problem_type": "job crisis", "situation": "lost job", "dialog": dialog}


@pytest.fixture
def annotate(tiny_bart, tmp_path):
    source = tmp_path / "ESConv.json"
    source.write_text(json.dumps([conversation(n) for n in (1, 3, 4, 2, 3, 5)]))
    out = tmp_path / "PESConv.json"

    def run(max_dialogues=None, crash_at=None):
        args = ["--model_dir", tiny_bart, "--input_file", str(source), "--output_file", str(out), "--num_beams", "1",
                "--max_length", "6", "--no_progress", "--device", "cpu"]
        args += ["--max_dialogues", str(max_dialogues)] if max_dialogues else []
        if crash_at:
            killed_run("persona_extractor/annotate_esconv.py", args, crash_at)
            os.remove(f"{out}.partial")  # its annotation progress (a later run would need --resume)
        else:
            from helpers.paths import load_script
            load_script("persona_extractor/annotate_esconv.py").main(args)
        return f"the first {max_dialogues} of 6 dialogues of {source} (annotate_esconv.py --max_dialogues " \
               f"{max_dialogues})" if max_dialogues else None
    return run, out


def records(path):
    return len(json.loads(path.read_text()))


def test_a_partial_output_killed_after_its_rename_is_marked(annotate):
    run, out = annotate
    run()  # a complete PESConv.json first
    what = run(max_dialogues=2, crash_at="pesconv:swapped")  # killed between the rename and anything after it
    assert records(out) == 2 and partial_description(out) == what


def test_a_partial_output_killed_before_its_rename_leaves_the_earlier_file_as_it_was(annotate):
    run, out = annotate
    earlier = run(max_dialogues=4)
    run(max_dialogues=2, crash_at="pesconv:complete")  # the new mark entry is written, the file is not in place
    assert records(out) == 4 and partial_description(out) == earlier
    run()  # a complete run afterwards: no mark left
    assert records(out) == 6 and partial_description(out) is None and not os.path.exists(mark_path(out))


def test_a_complete_output_killed_after_its_rename_is_not_taken_for_the_partial_one(annotate):
    run, out = annotate
    run(max_dialogues=3)
    run(crash_at="pesconv:swapped")
    assert records(out) == 6 and partial_description(out) is None
    run(crash_at="pesconv:complete")  # and before it: the complete file stays complete
    assert records(out) == 6 and partial_description(out) is None


def test_marked_write_keeps_only_the_current_contents_entry(tmp_path):
    path = tmp_path / "train.txt"
    for text, partial in (("a\n", "half"), ("b\n", "a third"), ("c\n", None), ("d\n", "a quarter")):
        with marked_write(str(path), partial) as f:
            f.write(text)
        assert partial_description(str(path)) == partial
    assert json.loads((tmp_path / "train.txt.subset.json").read_text())["partial"] == {
        hashlib.sha256(b"d\n").hexdigest(): "a quarter"}
    # a mark of the earlier one-entry form is still read
    (tmp_path / "train.txt.subset.json").write_text(json.dumps(
        {"partial": "old form", "sha256": hashlib.sha256(b"d\n").hexdigest()}))
    assert partial_description(str(path)) == "old form"
