"""The README's commands as a new user types them: every command of its fenced bash blocks, in a fresh clone
(`git clone`), from a plain shell (no activated environment, no .venv on PATH). The cheap ones run as typed
(`--dry_run`); every other one runs as its `--help` form (the script and its help, nothing else), so each script
named in the README is reachable and answers. The clone sets up its own .venv through RUN/python (slow: minutes)."""
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
AS_TYPED = {"bash RUN/reproduce_table3.sh --dry_run"}  # cheap enough to run as they stand


def readme_commands():
    """Each command of README.md's ```bash blocks, continuation lines joined and comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.S):
        for command in block.replace("\\\n", " ").splitlines():
            command = command.split(" #")[0].strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


CLIENTS = {"curl"}  # README commands of other programs, talking to a server one of ours started


def help_form(command):
    """The command's program and script with --help: `bash RUN/x.sh --help`, `RUN/python codes/x.py --help`."""
    words = [w for w in shlex.split(command) if not re.match(r"^[A-Z_]+=", w)]
    if words[0] == "bash":
        return ["bash", words[1], "--help"]
    assert words[0] == "RUN/python", command  # every Python entry point runs through the launcher
    return words[:3] + ["--help"] if words[1] == "-m" else words[:2] + ["--help"]


@pytest.mark.slow
def test_readme_commands_run_in_a_fresh_clone_from_a_plain_shell(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    path = ":".join(p for p in os.environ["PATH"].split(":") if ".venv" not in p and "venv" not in p)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PAL_VENV", "PYTHONPATH")} | {"PATH": path}
    commands = readme_commands()
    assert "RUN/python codes/_reformat/process.py --add_persona True --input_file DATA/PESConv.json --output_dir " \
           "DATA/pesconv" in commands
    for command in commands:
        if shlex.split(command)[0] in CLIENTS:
            continue  # a request to the server the block's previous command starts (tests/test_serve.py sends it)
        argv = shlex.split(command) if command in AS_TYPED else help_form(command)
        result = subprocess.run(argv, cwd=clone, env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, (command, argv, result.stderr[-2000:])
        assert result.stdout.strip(), (command, argv)
        assert "Traceback" not in result.stderr, (command, result.stderr[-2000:])

