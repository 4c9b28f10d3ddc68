"""Model names that may be hub names, resolved the same way by every loader (chat LLMs, the persona extractor, the
Cos-Sim encoder, BlenderBot): a local folder as is; a hub name from the local hub cache; the hub itself only when it
accepts a connection within HUB_TIMEOUT seconds, and then asked once. Anything else is one UserError at once, naming
the closest known local names ("did you mean smollm2?"), instead of minutes of download retries (README "Offline")."""
import difflib
import os
import socket
import threading
from urllib.parse import urlparse

from .cli import UserError
from .model_files import is_local

HUB_TIMEOUT = 3.0  # seconds the hub has to accept a connection (name lookup included) before it counts as unreachable
UNREACHABLE = "not a local folder, not in the local hub cache, and the hub is unreachable (or HF_HUB_OFFLINE is set)"


def looks_like_path(name):
    """A name that can only be a path (absolute, ./ ../ ~, or deeper than org/name): never asked of the hub."""
    return os.path.isabs(name) or name.startswith((".", "~")) or name.count("/") > 1


def hub_reachable(timeout=HUB_TIMEOUT):
    """Whether the model hub accepts a connection within `timeout` seconds, name lookup included (False under
    HF_HUB_OFFLINE)."""
    from huggingface_hub import constants  # lazy: only a model name that may be a hub name needs it
    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    url = urlparse(constants.ENDPOINT)
    answered = []

    port = url.port or (443 if url.scheme == "https" else 80)

    def connect():  # in a thread: a hanging name lookup is not bounded by the socket timeout
        try:
            socket.create_connection((url.hostname, port), timeout).close()
            answered.append(True)
        except OSError:
            pass
    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(answered)


def cached_repos():
    """The model names held in the local hub cache (its models--ORG--NAME folders)."""
    from huggingface_hub import constants  # lazy: only a model name that may be a hub name needs it
    try:
        entries = os.listdir(constants.HF_HUB_CACHE)
    except OSError:
        return []
    return sorted(e[len("models--"):].replace("--", "/") for e in entries if e.startswith("models--"))


def _folders_beside(name):
    """The folders in the directory `name` would be in, spelled as `name` is (relative or absolute)."""
    parent = os.path.dirname(os.path.expanduser(name))
    try:
        entries = os.listdir(parent or os.curdir)
    except OSError:
        return []
    return [os.path.join(parent, e) if parent else e for e in entries
            if not e.startswith(".") and os.path.isdir(os.path.join(parent or os.curdir, e))]


def closest_names(name, known=()):
    """Up to 3 known local names closest to `name` (case ignored): `known` (the caller's own names, e.g. smollm2),
    the local hub cache, and the folders beside where `name` points."""
    candidates = list(dict.fromkeys([*known, *cached_repos(), *_folders_beside(name)]))
    by_lower = {c.lower(): c for c in reversed(candidates)}
    return [by_lower[c] for c in difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.6)]


def did_you_mean(name, known=()):
    """'; did you mean X?' (or 'X or Y'), '' when no known name is close."""
    close = [c for c in closest_names(name, known) if c != name]
    return f"; did you mean {' or '.join(close)}?" if close else ""


def unknown_model(name, why, hint="", known=()):
    """The one-line UserError for a model name that cannot be loaded: what it is not, the closest names, the hint."""
    return UserError(f"cannot load {name!r}: {why}{f'; {hint}' if hint else ''}{did_you_mean(name, known)}")


def cached_snapshot(name):
    """The folder of `name` in the local hub cache, or None."""
    from huggingface_hub import snapshot_download  # lazy: only a model name that may be a hub name needs it
    from huggingface_hub.errors import HFValidationError
    try:
        return snapshot_download(name, local_files_only=True)
    except (OSError, HFValidationError, ValueError):
        return None


def resolve(name_or_dir, hint="", known=()):
    """What to give from_pretrained for `name_or_dir`: a local folder as is; a hub name's folder in the local hub
    cache; the hub name itself only when the hub accepts a connection within HUB_TIMEOUT seconds (from_pretrained
    then downloads it). Otherwise a UserError at once, naming the closest known local names (`known`: the
    caller's own, e.g. smollm2)."""
    if is_local(name_or_dir):
        return name_or_dir
    if looks_like_path(name_or_dir):
        where = "" if os.path.isabs(name_or_dir) else f" (looked in {os.path.abspath(name_or_dir)})"
        raise UserError(f"{name_or_dir}: no such folder{where}{f'; {hint}' if hint else ''}"
                        f"{did_you_mean(name_or_dir, known)}")
    cached = cached_snapshot(name_or_dir)
    if cached:
        return cached
    if not hub_reachable():
        raise unknown_model(name_or_dir, UNREACHABLE, hint, known)
    _ask_hub(name_or_dir, hint, known)
    return name_or_dir


def _ask_hub(name, hint, known):
    """One question to the hub: does it hold `name`? (A UserError when it does not, or does not answer.)"""
    from huggingface_hub import HfApi  # lazy: only a model name that may be a hub name needs it
    from huggingface_hub.errors import HFValidationError, HfHubHTTPError, RepositoryNotFoundError
    try:
        HfApi().model_info(name, timeout=HUB_TIMEOUT)
    except (RepositoryNotFoundError, HFValidationError):
        raise unknown_model(name, "the hub has no such model (or it is private)", hint, known)
    except (HfHubHTTPError, OSError) as e:
        raise unknown_model(name, f"the hub did not answer ({str(e).splitlines()[0]})", hint, known)


def from_folder_or_hub(load, name_or_dir, hint="", known=()):
    """`load(**kwargs)` (a from_pretrained call on name_or_dir) where `resolve` finds the model: a local folder as
    is, the local hub cache with local_files_only=True, else the hub, asked once; a failed download is the same
    one-line UserError."""
    source = resolve(name_or_dir, hint, known)
    if source == name_or_dir and is_local(source):
        return load()
    if source != name_or_dir:
        return load(local_files_only=True)
    try:
        return load()
    except OSError as e:  # the hub holds the model, but a download failed
        raise unknown_model(name_or_dir, f"download failed ({str(e).splitlines()[0]})", hint, known)
