"""The Ray Data worker of `catdog-runtime --ray`: one actor, one onnxruntime session, built once from
the model bytes the driver shipped through the object store. Each call gets a block of sources
(paths or URIs), reads and decodes them with the spine's functions in decode threads while the
session runs the previous batch (Classifier.iter_predict, as a single-process folder run does), and
returns one row per source: the result, or the error that names the file. No torch here."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from catdog.runtime.engine.classifier import Classifier, ImageLike
from catdog.runtime.spine.errors import InputError, error_line
from catdog.runtime.spine.serialize import parquet_row
from catdog.runtime.spine.spec import PreprocessSpec

URI_MARK = "://"


def is_uri(source: str) -> bool:
    return URI_MARK in source


class _UriClassifier(Classifier):
    """A Classifier that also loads `scheme://...` sources through a pyarrow filesystem (S3, GCS,
    HDFS, file://...); local paths take the single-process path unchanged."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._filesystems: dict[str, tuple[Any, str | None]] = {}

    def load(self, source: ImageLike | bytes, name: str | None = None) -> tuple[np.ndarray, float, float]:
        if isinstance(source, str) and is_uri(source):
            return super().load(self._read_uri(source), source)  # decoded and guarded as a file is
        return super().load(source, name)

    def _read_uri(self, uri: str) -> bytes:
        try:
            filesystem, path = self._filesystem(uri)
            with filesystem.open_input_stream(path) as f:
                return f.read()
        except FileNotFoundError:
            raise InputError(f"{uri}: no such file") from None
        except Exception as e:  # noqa: BLE001 - pyarrow's filesystem errors (auth, network) all mean "unreadable"
            raise InputError(f"{uri}: cannot read ({error_line(e)})") from None

    def _filesystem(self, uri: str) -> tuple[Any, str]:
        """(filesystem, its path for `uri`), one filesystem per scheme and host: building one (S3
        credentials, an HDFS connection) costs far more than reading a photo."""
        from urllib.parse import urlsplit

        from pyarrow import fs

        parts = urlsplit(uri)
        key = f"{parts.scheme}://{parts.netloc}"
        cache = self._filesystems
        if key not in cache:
            filesystem, path = fs.FileSystem.from_uri(uri)
            cache[key] = (filesystem, uri[: len(uri) - len(path)] if uri.endswith(path) else None)
        filesystem, prefix = cache[key]
        if prefix is None or not uri.startswith(prefix):
            return fs.FileSystem.from_uri(uri)
        return filesystem, uri[len(prefix):]


class ClassifyBlock:
    """The callable class for `Dataset.map_batches`: Ray builds one per actor."""

    def __init__(self, model_ref: Any, model_name: str, provider: str, threads: int, workers: int, batch: int,
                 labels: Sequence[str], spec: PreprocessSpec, unsure_below: float | None, full_decode: bool,
                 device_id: int = 0):
        import ray

        from catdog.runtime.scale.parts import schema

        # The bytes travel once per node through the object store; ORT needs a file, so the actor
        # writes them to a private temp folder and removes it as soon as the session holds the model.
        model_bytes = ray.get(model_ref)
        tmp = Path(tempfile.mkdtemp(prefix="catdog-model-"))
        try:
            (tmp / model_name).write_bytes(model_bytes)
            self.clf = _UriClassifier.from_file(
                tmp / model_name, provider=provider, threads=threads, labels=labels, spec=spec,
                batch_size=batch, workers=workers, unsure_below=unsure_below, full_decode=full_decode,
                device_id=device_id, log=None, spinning=False)  # no spin-wait: the decode threads need those cores
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.classes = self.clf.classes
        self.schema = schema(self.classes)

    def __call__(self, batch: Mapping[str, np.ndarray]) -> Any:
        import pyarrow as pa

        rows = [parquet_row(source, record) for source, record in self.clf.iter_predict(
            [str(s) for s in batch["source"]])]
        return pa.Table.from_pylist(rows, schema=self.schema)
