"""Every registered arch exports every artifact (the TensorRT INT8: see TRT_INT8_ARCHS) and passes
every gate (new archs are covered as soon as they are registered). Inputs are small where the arch
allows it (see small_spec)."""

from __future__ import annotations

import pytest
from testkit.export import TRT_INT8_ARCHS

from catdog.export.artifacts.formats import FORMATS
from catdog.train.models import list_models


@pytest.mark.parametrize("arch", list_models())
def test_arch_exports_and_passes_its_gates(exported, arch):
    out, report, _ = exported(arch)
    assert report.published and report.passed, report.failures
    built = [n for n in FORMATS if n != "int8-trt" or arch in TRT_INT8_ARCHS]
    assert [a.name for a in report.artifacts] == built
    for name in built:
        assert (out / FORMATS[name].filename).is_file()
