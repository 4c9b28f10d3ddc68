"""The released hyperparameters live in one place (pal.config.RELEASED): the defaults of train.py and prepare.py
come from it, and every RUN/train_*.sh and RUN/prepare_*.sh passes exactly its values."""
import shlex

import pytest

from helpers.paths import REPO_ROOT, load_script
from pal.config import RELEASED

VARIANTS = ("strat", "no_persona", "vanilla")
# what the authors' train_strat.sh passes (max_grad_norm and weight_decay were their code's defaults)
TRAIN_KEYS = set(RELEASED) - {"max_grad_norm", "weight_decay"}
PREPARE_KEYS = {"max_input_length", "max_decoder_input_length", "use_all_persona"}


def passed_options(run_script, python_script):
    """The `--key value` pairs a RUN script passes to python_script (values from the environment left out)."""
    lines = (REPO_ROOT / run_script).read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.rstrip().endswith((f"{python_script} \\", f'{python_script}" \\')))
    command = []
    for line in lines[start + 1:]:
        command.append(line.rstrip().removesuffix("\\"))
        if not line.rstrip().endswith("\\"):
            break
    tokens = shlex.split(" ".join(command), posix=False)
    pairs = {}
    for key, value in zip(tokens, tokens[1:]):
        if key.startswith("--") and not value.startswith("--") and "$" not in value:
            pairs[key[2:]] = value
    return pairs


def parsed(script, options, required):
    parser = load_script(script).build_parser()
    argv = [*required, *(item for key, value in options.items() for item in (f"--{key}", value))]
    return vars(parser.parse_args(argv))


@pytest.mark.parametrize("variant", VARIANTS)
def test_run_train_scripts_pass_the_released_values(variant, tmp_path):
    options = passed_options(f"RUN/train_{variant}.sh", "codes/train.py")
    assert TRAIN_KEYS <= set(options), f"RUN/train_{variant}.sh does not pass {sorted(TRAIN_KEYS - set(options))}"
    (tmp_path / "valid.txt").write_text("")
    values = parsed("codes/train.py", options, ["--eval_input_file", str(tmp_path / "valid.txt")])
    assert {key: values[key] for key in TRAIN_KEYS} == {key: RELEASED[key] for key in TRAIN_KEYS}


@pytest.mark.parametrize("variant", VARIANTS)
def test_run_prepare_scripts_pass_the_released_values(variant, tmp_path):
    options = passed_options(f"RUN/prepare_{variant}.sh", "codes/prepare.py")
    assert PREPARE_KEYS <= set(options)
    (tmp_path / "train.txt").write_text("")
    values = parsed("codes/prepare.py", options, ["--train_input_file", str(tmp_path / "train.txt")])
    assert {key: values[key] for key in PREPARE_KEYS} == {key: RELEASED[key] for key in PREPARE_KEYS}


def test_the_python_defaults_are_the_released_values(tmp_path):
    (tmp_path / "data.txt").write_text("")
    required = ["--config_name", "strat", "--inputter_name", "strat"]
    train = load_script("codes/train.py")
    args = train.resolve_args(train.build_parser().parse_args([*required, "--eval_input_file",
                                                               str(tmp_path / "data.txt")]))
    assert {key: getattr(args, key) for key in RELEASED} == RELEASED
    prepare = parsed("codes/prepare.py", {}, [*required, "--train_input_file", str(tmp_path / "data.txt")])
    assert {key: prepare[key] for key in PREPARE_KEYS} == {key: RELEASED[key] for key in PREPARE_KEYS}
