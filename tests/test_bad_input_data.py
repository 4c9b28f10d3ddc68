"""Bad input at the data and plotting scripts (codes/_reformat/process.py, persona_extractor/process_bart_df.py,
codes/plot_training.py), in the design of test_bad_input.py: a valid baseline per script (test_data_baselines_succeed),
then exactly one fault per case: exit status 2, one `error: ...` line and no traceback, a message naming the file or
option, and no new or changed file.
"""
import json
import os

import pytest

from helpers.bad_input import check_case, make_dir, run_script, write

pytestmark = pytest.mark.robustness


# ---- plot_training.py ------------------------------------------------------------------------------------------------
def run_folder(t, train="epoch,step,loss\n0,1,2.5\n0,2,2.0\n", eval_="epoch,eval_loss,eval_ppl\n0,2.1,8.2\n"):
    write(t / "run" / "train_log.csv", train)
    write(t / "run" / "eval_log.csv", eval_)
    return str(t / "run")


PLOT_CASES = {
    "missing_run_dir": lambda t: ([str(t / "nope")], ["nope", "no such folder"]),
    "output_is_a_folder": lambda t: ([run_folder(t), "--output", str(make_dir(t / "out.png"))],
                                     ["--output", "is a folder"]),
    "output_under_a_file": lambda t: ([run_folder(t), "--output", str(t / "run" / "train_log.csv" / "x.png")],
                                      ["--output", "train_log.csv is a file"]),
    "missing_train_log": lambda t: ([run_folder(t), "--train_log", str(t / "nope.csv")], ["--train_log", "nope.csv"]),
    "header_only_log": lambda t: ([run_folder(t, train="epoch,step,loss\n")], ["train_log.csv", "no data rows"]),
    "loss_not_a_number": lambda t: ([run_folder(t, train="epoch,step,loss\n0,1,high\n")],
                                    ["train_log.csv", "line 2", "loss"]),
    "not_utf8": lambda t: ([_latin1_log(run_folder(t))], ["train_log.csv", "not UTF-8"]),
}


def _latin1_log(folder):
    with open(os.path.join(folder, "train_log.csv"), "wb") as f:
        f.write(b"epoch,loss\n0,\xff\n")
    return folder


@pytest.mark.parametrize("case", sorted(PLOT_CASES))
def test_plot_training_rejects(case, tmp_path):
    check_case(tmp_path, tmp_path, "codes/plot_training.py", PLOT_CASES[case])


# ---- codes/_reformat/process.py ------------------------------------------------------------------------------------
def esconv(t):
    dialog = [{"speaker": "seeker", "content": "i feel sad"},
              {"speaker": "supporter", "content": "why?", "annotation": {"strategy": "Question"}}]
    record = {"emotion_type": "sadness", "problem_type": "job", "situation": "lost job", "dialog": dialog}
    return write(t / "ESConv.json", json.dumps([record] * 10))


PROCESS_CASES = {
    "output_dir_is_a_file": lambda t: (["--add_persona", "False", "--input_file", esconv(t), "--output_dir",
                                        write(t / "out", "x")], ["--output_dir", "is a file"]),
    "train_txt_is_a_folder": lambda t: (["--add_persona", "False", "--input_file", esconv(t), "--output_dir",
                                         str(os.path.dirname(make_dir(t / "out" / "train.txt")))],
                                        ["train.txt", "is a folder"]),
    "missing_input": lambda t: (["--add_persona", "False", "--input_file", str(t / "nope.json")],
                                ["nope.json", "no such file"]),
    "empty_input": lambda t: (["--add_persona", "False", "--input_file", write(t / "e.json", "[]")],
                              ["e.json", "no dialogues"]),
}


@pytest.mark.parametrize("case", sorted(PROCESS_CASES))
def test_reformat_rejects(case, tmp_path):
    check_case(tmp_path, tmp_path, "codes/_reformat/process.py", PROCESS_CASES[case])


# ---- persona_extractor/process_bart_df.py --------------------------------------------------------------------------
PARLAI = ("1 your persona: i like cats.\n2 partner's persona: i like dogs.\n3 hi there\thello! how are you?\n"
          "4 i am fine\tgood to hear.\n")


def personachat(t, train=PARLAI):
    write(t / "pc" / "train_both_original.txt", train)
    write(t / "pc" / "valid_both_original.txt", PARLAI)
    return str(t / "pc")


BART_DF_CASES = {
    "empty_train_file": lambda t: (["--data_dir", personachat(t, train=""), "--output_dir", str(t / "out")],
                                   ["train_both_original.txt", "no dialogues"]),
    "output_dir_is_a_file": lambda t: (["--data_dir", personachat(t), "--output_dir", write(t / "out", "x")],
                                       ["--output_dir", "is a file"]),
    "train_csv_is_a_folder": lambda t: (["--data_dir", personachat(t), "--output_dir",
                                         os.path.dirname(make_dir(t / "out" / "train.csv"))], ["train.csv", "folder"]),
    "missing_data_dir": lambda t: (["--data_dir", str(t / "nope"), "--output_dir", str(t / "out")],
                                   ["--data_dir", "nope", "no such folder"]),
    "data_dir_is_a_file": lambda t: (["--data_dir", write(t / "pc", "x"), "--output_dir", str(t / "out")],
                                     ["--data_dir", "is a file"]),
}


@pytest.mark.parametrize("case", sorted(BART_DF_CASES))
def test_process_bart_df_rejects(case, tmp_path):
    check_case(tmp_path, tmp_path, "persona_extractor/process_bart_df.py", BART_DF_CASES[case])


SUBPROCESS_CASES = [  # one case of every table, run as `python SCRIPT ...`
    ("codes/plot_training.py", "output_is_a_folder"), ("codes/_reformat/process.py", "output_dir_is_a_file"),
    ("persona_extractor/process_bart_df.py", "empty_train_file"),
]


@pytest.mark.parametrize("script,case", SUBPROCESS_CASES, ids=[f"{s.split('/')[-1]}-{c}" for s, c in SUBPROCESS_CASES])
def test_data_scripts_reject_in_a_subprocess(script, case, tmp_path):
    builders = {"codes/plot_training.py": PLOT_CASES, "codes/_reformat/process.py": PROCESS_CASES,
                "persona_extractor/process_bart_df.py": BART_DF_CASES}
    check_case(tmp_path, tmp_path, script, builders[script][case], in_process=False)


def test_data_baselines_succeed(tmp_path):
    """The valid baselines the tables start from do run (so every rejection above is due to its one fault)."""
    assert run_script("codes/_reformat/process.py", "--add_persona", "False", "--input_file", esconv(tmp_path),
                      "--output_dir", tmp_path / "reformatted").returncode == 0
    assert run_script("persona_extractor/process_bart_df.py", "--data_dir", personachat(tmp_path),
                      "--output_dir", tmp_path / "csv").returncode == 0
    assert run_script("codes/plot_training.py", run_folder(tmp_path)).returncode == 0
