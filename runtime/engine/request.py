"""What one open_session call carries to every provider it tries, and the model's metadata
block parsed once per open (TensorRT's options, the warm-up shape and the Classifier all read
that one parse)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from catdog.runtime.spine.errors import MetadataError
from catdog.runtime.spine.metadata import ModelMetadata, from_metadata_map

Log = Callable[[str], None]


@dataclass
class Parsed:
    """A model's metadata block, parsed once per open and handed on (TensorRT's options, the warm-up
    shape and the Classifier all read this one). A bad block is kept as its error: the Classifier
    raises it, naming the file; a session alone can still run the graph."""

    meta: ModelMetadata | None = None
    error: MetadataError | None = None

    @classmethod
    def of(cls, sess: Any, path: Path) -> "Parsed":
        try:
            return cls(from_metadata_map(sess.get_modelmeta().custom_metadata_map, str(path)))
        except MetadataError as e:
            return cls(None, e)


@dataclass(frozen=True)
class Request:
    """What one open_session call asks of every provider it tries."""

    path: Path
    opts: Any  # onnxruntime.SessionOptions
    device_id: int
    batches: tuple[int, ...]  # the batch sizes the run will feed; the warm-up uses the largest
    tf32: bool | None
    log: Log
    parsed: dict[str, Parsed] = field(default_factory=dict)  # "meta": the one parse of this open


def parsed_once(sess: Any, req: Request) -> Parsed:
    """The open's one parse of the metadata block (made on first use, from whichever session that is)."""
    if "meta" not in req.parsed:
        req.parsed["meta"] = Parsed.of(sess, req.path)
    return req.parsed["meta"]
