"""Loading the sentence-embedding model an operator installed (``MAILER_RELEVANCE_MODEL``).

The I/O half of the optional embedding backend (``mailer.relevance.embedding`` is the pure
half): the model directory is read from local files only, with the Hugging Face libraries
switched offline and quiet around the import and the load, so nothing is ever downloaded and
no progress bar reaches a JSON log. Called once per process, at startup, by the commands that
plan; every failure is one ConfigError line.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from mailer.errors import ConfigError
from mailer.relevance.embedding import SETTING, Encoder

# Read by huggingface_hub and transformers when imported and when loading: offline, and no
# progress bars or advisory lines on stderr, where a JSON-logging daemon writes only JSON.
_OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
}


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """The Hugging Face libraries offline and quiet while inside (see ``_OFFLINE``)."""
    before = {name: os.environ.get(name) for name in _OFFLINE}
    os.environ.update(_OFFLINE)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def load_encoder(path: Path) -> Encoder:
    """The model saved in directory ``path``, from local files only; ConfigError (one line)
    when the extra is not installed or the directory holds no loadable model."""
    folder = path.expanduser()
    try:
        is_model = (folder / "modules.json").is_file()
    except OSError as exc:  # an unreadable directory is a setting to fix, not a crash
        raise ConfigError(f"{SETTING}: cannot read {folder}: {exc.strerror or exc}") from None
    if not is_model:
        raise ConfigError(
            f"{SETTING}: {folder} is not a sentence-transformers model directory"
            " (one saved with model.save(path) has a modules.json)"
        )
    with _offline():
        try:
            from sentence_transformers import SentenceTransformer
        except Exception as exc:  # not installed, or a torch that fails to import here
            raise ConfigError(
                f"{SETTING} needs the embeddings extra"
                f" (pip install 'mailer[embeddings]'): {_line(exc)}"
            ) from None
        try:
            model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        except Exception as exc:  # transformers raises OSError, ValueError, KeyError... here
            raise ConfigError(
                f"{SETTING}: cannot load the model in {folder}: {_line(exc)}"
            ) from None
    encoder = Encoder(model, folder)
    if encoder.size <= 0:
        raise ConfigError(f"{SETTING}: the model in {folder} does not say its vector size")
    return encoder


def _line(exc: Exception) -> str:
    """An exception's message as one line (transformers' messages run over several)."""
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__
