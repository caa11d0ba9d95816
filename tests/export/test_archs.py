"""Every registered arch exports every artifact and passes every gate (new archs are covered as
soon as they are registered). Inputs are small where the arch allows it (see small_spec)."""

from __future__ import annotations

import pytest

from catdog.export.formats import FORMATS
from catdog.train.models import list_models


@pytest.mark.parametrize("arch", list_models())
def test_arch_exports_and_passes_its_gates(exported, arch):
    out, report, _ = exported(arch)
    assert report.published and report.passed, report.failures
    assert [a.name for a in report.artifacts] == list(FORMATS)
    for fmt in FORMATS.values():
        assert (out / fmt.filename).is_file()
