"""A model's metadata block is parsed once per open and handed on: the session carries it (or the
error that parsing it gave), and the Classifier reads that, never the file's props again."""

from __future__ import annotations

import pytest
from testkit.runtime import build_model

import catdog.runtime.engine.request as request
from catdog.runtime.engine.classifier import Classifier
from catdog.runtime.engine.session import open_session
from catdog.runtime.spine.errors import MetadataError


def test_one_parse_per_open(models, monkeypatch):
    calls = []
    real = request.from_metadata_map
    monkeypatch.setattr(request, "from_metadata_map", lambda *a, **k: calls.append(a) or real(*a, **k))
    clf = Classifier.from_file(models["uint8"], provider="cpu")  # uint8: the warm-up reads the spec too
    assert len(calls) == 1 and clf.classes == ("cat", "dog")
    assert clf.session.metadata == clf.metadata


def test_a_bad_block_travels_as_its_error(tmp_path):
    path = build_model(tmp_path / "bad.onnx", metadata={"schema": 999, "classes": ["a"]})
    sess = open_session(path, provider="cpu", log=None)  # the graph itself still opens
    assert sess.metadata is None and isinstance(sess.metadata_error, MetadataError)
    with pytest.raises(MetadataError, match=str(path)):
        Classifier.from_file(path, provider="cpu")


def test_no_block_is_none_not_an_error(tmp_path):
    sess = open_session(build_model(tmp_path / "plain.onnx"), provider="cpu", log=None)
    assert sess.metadata is None and sess.metadata_error is None
