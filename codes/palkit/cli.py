"""Command-line plumbing shared by every script: one-line errors, the argument parser, the device."""
import argparse
import difflib
import os
import sys


def launcher(script=None):
    """How to run a script of this project from the current directory without activating anything: RUN/python
    (it sets up .venv and the CPU-thread default), as a path relative to the working directory, then `script`
    relative to it too."""
    path = os.path.relpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "RUN", "python"))
    path = path if os.sep in path else os.path.join(os.curdir, path)  # a path, not a command name
    return path if script is None else f"{path} {os.path.relpath(script)}"


class UserError(Exception):
    """A problem the user can fix (bad input, missing file). Scripts print it as one line and exit 2."""


def run_main(main, argv=None):
    """Run `main(argv)`; turn a UserError into `error: <message>` on stderr and exit status 2 (no traceback)."""
    try:
        result = main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as e:  # a trainer's says where the run can resume (palkit.engine.Engine.fit)
        print("interrupted" + (f" {e}" if str(e) else ""), file=sys.stderr)
        sys.exit(130)
    sys.exit(0 if result is None else result)


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" to an option's help, except where the help already names its default or there is none
    to name (None, an off flag)."""

    def _get_help_string(self, action):
        if "(default" in (action.help or "") or action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are UserErrors: under run_main a bad argument is one line `error: argument --x: ...`
    and exit 2 (plain argparse prints its usage block first), and in-process callers of main() get a UserError.

    The value checks themselves are argparse types in palkit.argtypes (ranges, paths). `options` lists every option
    added (also through groups), in order: what the run-folder replay reads (palkit.run_folder.parse_resume).
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)  # --only_gen must not silently mean --only_generate
        self.options = []
        super().__init__(*args, **kwargs)

    def error(self, message):
        if message.startswith("unrecognized arguments:"):  # a typo: name the closest options
            typos = [w.split("=")[0] for w in message.split(":", 1)[1].split() if w.startswith("--")]
            close = [m for w in typos for m in difflib.get_close_matches(w, list(self._option_string_actions), n=1)]
            if close:
                message += f" (did you mean {' or '.join(close)}?)"
        raise UserError(f"{message}; see {self.prog} --help")

    def add_argument(self, *args, **kwargs):
        action = super().add_argument(*args, **kwargs)
        self.options.append(action)
        return action

    def add_argument_group(self, *args, **kwargs):
        return self._recording(super().add_argument_group(*args, **kwargs))

    def add_mutually_exclusive_group(self, **kwargs):
        return self._recording(super().add_mutually_exclusive_group(**kwargs))

    def _recording(self, group):
        """The group, its add_argument also recording into self.options."""
        add = group.add_argument

        def add_argument(*args, **kwargs):
            action = add(*args, **kwargs)
            self.options.append(action)
            return action
        group.add_argument = add_argument
        return group


def resolve_device(name):
    """--device: "auto" (CUDA when available), "cpu", "cuda", "cuda:N"; a bad or unavailable one is a UserError."""
    import torch  # lazy: every command line imports this module, and --help needs no torch
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r}: not a device (use auto, cpu, cuda or cuda:N)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine")
    return device
