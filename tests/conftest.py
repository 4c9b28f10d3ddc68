"""Shared test fixtures (builders shared by several modules are plain functions in tests/helpers/).

Tests that need the reference material in ../shared call `helpers.paths.shared_path(...)`, which skips the test
with a reason naming the missing path, so the suite passes on a fresh clone without ../shared.
Everything else builds its own tiny data and random-weight models.
The packages (pal, metric, persona_extractor) come from the project's editable install (RUN/setup_env.sh); the
entry scripts of codes/ are loaded by path with `helpers.paths.load_script`.
"""
import pytest

from helpers.paths import SHARED, shared_path


@pytest.fixture(scope="session")
def blender_tokenizer_dir(tmp_path_factory):
    """The real BlenderBot-small tokenizer files when ../shared has them, else a tiny self-made one."""
    real = SHARED / "models" / "Blenderbot_small-90M"
    if real.is_dir():
        return str(real)
    from pal.tiny import make_tiny_blenderbot_tokenizer
    return make_tiny_blenderbot_tokenizer(str(tmp_path_factory.mktemp("tiny_tokenizer")))


@pytest.fixture(scope="session")
def real_blender_tokenizer_dir():
    """The real BlenderBot-small tokenizer files; skips when ../shared is absent."""
    return str(shared_path("models/Blenderbot_small-90M"))


@pytest.fixture(scope="session")
def tiny_blender_dir(tmp_path_factory, blender_tokenizer_dir):
    """A randomly initialised tiny BlenderBot-small saved like the real pretrained folder."""
    from pal.tiny import make_tiny_blenderbot_dir
    out = str(tmp_path_factory.mktemp("tiny_blenderbot"))
    return make_tiny_blenderbot_dir(out, tokenizer_dir=blender_tokenizer_dir)


@pytest.fixture
def punkt():
    """Fail, naming the fix, when NLTK's punkt_tab cannot be found: the metrics ship its English tables, so a
    missing one is a broken checkout (or an NLTK_DATA folder with a partial punkt_tab), never a reason to skip."""
    from metric.tokens import require_punkt
    from palkit.cli import UserError
    try:
        require_punkt()
    except UserError as e:
        pytest.fail(str(e))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run faster on one thread, and far faster when other test processes share the CPU.

    Module-scoped so that a module's own module-scoped fixtures run on the same thread count as its tests (float
    sums differ between thread counts, and some tests compare runs bit for bit)."""
    import torch
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# ---- set-ups shared by several test modules (module scope: each module builds its own; heavy imports inside) ----
@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_blender_dir):
    """PAL training data: train/valid files and strat.strat features prepared from them."""
    from helpers.training import make_train_data
    return make_train_data(tmp_path_factory.mktemp("train_data"), tiny_blender_dir)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_blender_dir):
    """A training-run folder with epoch-0.bin of each config and a data file."""
    from helpers.infer import make_infer_run_dir
    return make_infer_run_dir(tmp_path_factory.mktemp("infer"), tiny_blender_dir)


@pytest.fixture(scope="module")
def base(tmp_path_factory, tiny_blender_dir):
    """The bad-input tables' valid baseline: a run folder with a strat epoch-0.bin, a data file, the tiny model."""
    from helpers.bad_input import make_bad_input_base
    return make_bad_input_base(tmp_path_factory.mktemp("bad_input_base"), tiny_blender_dir)


@pytest.fixture(scope="module")
def tiny_bart(tmp_path_factory):
    """Random tiny BART with the real BART vocabulary when ../shared has it, else the tiny byte-level one."""
    from helpers.extractor import make_tiny_bart
    return make_tiny_bart(tmp_path_factory.mktemp("tiny_bart"))


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    """The extractor's train/valid/test CSVs of (context, persona) pairs."""
    from helpers.extractor import make_pair_files
    return make_pair_files(tmp_path_factory.mktemp("pairs"))
