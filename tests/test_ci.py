"""CI runs the browser tests (.ci/run): it installs the browser, fails at once naming what is missing when it could
not, and runs the suite with PAL_REQUIRE_BROWSER=1, under which a browser test that would skip fails with the same
reason. .ci/run runs for real, in a copy of the repository whose RUN/install_browser.sh and RUN/test.sh record what
they are asked (the suite itself is not run here)."""
import os
import shutil
import subprocess
import sys

import pytest

from helpers.paths import REPO_ROOT

RECORDING = '#!/usr/bin/env bash\necho "{name} $* PAL_REQUIRE_BROWSER=${{PAL_REQUIRE_BROWSER:-}}" >> "$(dirname "$0")/../calls.log"\n'


@pytest.fixture
def clone(tmp_path):
    (tmp_path / ".ci").mkdir()
    shutil.copy(REPO_ROOT / ".ci" / "run", tmp_path / ".ci" / "run")
    (tmp_path / "RUN").mkdir()
    for name in ("install_browser.sh", "test.sh"):
        (tmp_path / "RUN" / name).write_text(RECORDING.format(name=name))
    return tmp_path


def ci(clone, **env):
    return subprocess.run(["bash", str(clone / ".ci" / "run"), "-x"], capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if not k.startswith("PAL_")} | env)


def test_ci_fails_naming_the_missing_browser(clone):
    result = ci(clone, PAL_CHROMIUM=str(clone / "no-chromium"), PAL_CHROMEDRIVER=shutil.which("true"))
    assert result.returncode == 1
    assert result.stderr.strip() == (f"error: .ci/run: {clone / 'no-chromium'} is missing, so the browser tests "
                                     "(tests/test_human_eval_browser.py) cannot run; RUN/install_browser.sh said why "
                                     "above (CI fails rather than skip them)")
    assert (clone / "calls.log").read_text() == "install_browser.sh  PAL_REQUIRE_BROWSER=\n"  # the suite never ran


def test_ci_installs_the_browser_then_runs_every_test_requiring_it(clone):
    true = shutil.which("true")
    result = ci(clone, PAL_CHROMIUM=true, PAL_CHROMEDRIVER=true)
    assert result.returncode == 0, result.stderr
    assert (clone / "calls.log").read_text().splitlines() == ["install_browser.sh  PAL_REQUIRE_BROWSER=",
                                                              "test.sh --all -x PAL_REQUIRE_BROWSER=1"]


@pytest.mark.parametrize("required", [False, True])
def test_a_browser_test_without_its_browser_skips_or_under_ci_fails_naming_why(required, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PAL_REQUIRE_BROWSER"} | {
        "PAL_CHROMIUM": str(tmp_path / "no-chromium")} | ({"PAL_REQUIRE_BROWSER": "1"} if required else {})
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "another_origin",
                             "tests/test_human_eval_browser.py"], cwd=REPO_ROOT, capture_output=True, text=True,
                            env=env, timeout=600)
    reason = f"{tmp_path / 'no-chromium'} is missing: bash RUN/install_browser.sh installs chromium"
    assert reason in result.stdout, result.stdout[-3000:]
    if required:
        assert result.returncode == 1 and "1 error" in result.stdout and "PAL_REQUIRE_BROWSER=1" in result.stdout
    else:
        assert result.returncode == 0 and "1 skipped" in result.stdout
