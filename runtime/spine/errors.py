"""User-facing errors. Each carries one line that names the thing and says what to do; CLIs print
it and exit non-zero (the traceback only with --debug)."""

from __future__ import annotations


class CatdogError(Exception):
    """Base of every error a user may see. str(err) is the one-line message."""

    exit_code = 2


class InputError(CatdogError):
    """An image, video, camera or stream that cannot be read."""


class DataError(CatdogError):
    """A dataset folder that cannot be used (empty, one class, unknown layout)."""


class ConfigError(CatdogError):
    """A training option that cannot work (unknown name, CUDA asked for and absent, ...)."""


class ModelError(CatdogError):
    """A model file that cannot be loaded or does not fit (rank, size, class count)."""


class MetadataError(ModelError):
    """Embedded catdog metadata that is missing, malformed or from a newer schema."""


class CheckpointError(ModelError):
    """A training checkpoint that is unsafe, incomplete or of an unknown arch."""


class ProviderError(CatdogError):
    """An execution provider that was asked for and cannot run."""


class ClusterError(CatdogError):
    """A Ray cluster that cannot be started or joined, or cannot fit the actors asked for."""


class OutputError(CatdogError):
    """An output path that cannot be written (permissions, disk full)."""


class GateError(CatdogError):
    """An export parity gate that failed."""

    exit_code = 3


def error_line(exc: BaseException, limit: int = 300, last: bool = False) -> str:
    """One line of a library exception's text (they run to pages): the first non-empty one, or the
    last with `last` (OpenCV puts the reason last); the type name when there is no text. Every
    message that quotes a library error goes through this."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    return (lines[-1] if last else lines[0])[:limit]
