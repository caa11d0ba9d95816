"""export-report.md's tables are the spine's md_table (runtime/spine/reports.py), with the columns
aligned as they always were (numbers right, words left), and the report pair is written by the
spine's write_report_pair under the stem publish.report_stem names."""

from __future__ import annotations

import json

from catdog.export.output.publish import report_stem
from catdog.export.output.report import FAILED_STEM, REPORT_STEM, ExportReport, ParitySet, write_report
from catdog.export.verify.parity import ArtifactInfo, ArtifactParity, GateResult
from catdog.runtime.spine.metrics import accuracy_record


def _report() -> ExportReport:
    report = ExportReport(checkpoint="run/best.pth", checkpoint_sha256="ab" * 32, arch="resnet18",
                          classes=["cat", "dog"], opset=17, exporter="torch.onnx", temperature=1.5, int8_path="AVX2")
    choice = {"method": "minmax", "keep_fp32": "stem", "how": "chosen on 10 held-out images",
              "candidates": [{"method": m, "keep_fp32": k, "agree": a, "n": 10, "agreement": a / 10,
                              "max_abs_prob": 0.01, "max_abs_logit": 0.2}
                             for m, k, a in (("minmax", "stem", 9), ("entropy", "none", 8))]}
    report.details = {"int8_choice": choice}
    parity = ParitySet("photos", 10, "class folders", accuracy_record(9, 10), 0.05, 0.03)
    parity.artifacts.append(ArtifactParity("onnx", "model.onnx", "photos", 10, 1e-5, 2e-6, 1.0, accuracy_record(9, 10),
                                           0.0, 0.04, 0.03, measured_on="ORT CPU",
                                           gates=[GateResult("onnx.logit", "max_abs_logit", "<=", 1e-4, 1e-5, True)]))
    report.parity_sets.append(parity)
    report.artifacts.append(ArtifactInfo("onnx", "model.onnx", 1.234, 5.678, "ORT CPU"))
    return report


def test_the_tables_keep_their_alignment_and_their_bytes():
    lines = _report().to_markdown().splitlines()
    at = {line: i for i, line in enumerate(lines)}
    artifacts = at["| artifact | file | size MB | latency ms (median, b=1) | gates (every set) |"]
    assert lines[artifacts + 1:artifacts + 3] == ["|---|---|---:|---:|---|",
                                                  "| onnx | model.onnx | 1.23 | 5.68 (ORT CPU) | PASS |"]
    parity = at["| artifact | max abs dlogit | max abs dprob | top-1 agree | accuracy (95% CI, n) | ECE T=1 | "
                "ECE T=1.5 | gates | measured on |"]
    assert lines[parity + 1:parity + 3] == [
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
        "| onnx | 1.00e-05 | 2.00e-06 | 100.00% | 90.00% (59.6–98.2, n=10) | 4.00% | 3.00% | "
        "onnx.logit <= 0.0001: PASS | ORT CPU |"]
    choices = at["| calibration | kept fp32 | top-1 agree with fp32 | max abs dprob | max abs dlogit | |"]
    assert lines[choices + 1:choices + 4] == ["|---|---|---:|---:|---:|---|",
                                              "| minmax | stem | 9/10 (90.00%) | 1.00e-02 | 2.00e-01 | chosen |",
                                              "| entropy | none | 8/10 (80.00%) | 1.00e-02 | 2.00e-01 |  |"]


def test_the_report_pair_is_written_under_one_stem(tmp_path):
    report = _report()
    js, md = write_report(report, tmp_path)
    assert (js.name, md.name) == ("export-report.json", "export-report.md")
    assert js.read_text() == json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n"
    assert md.read_text() == report.to_markdown()
    assert report_stem(tmp_path, published=False) == REPORT_STEM  # no artifacts beside it: the report itself
    (tmp_path / "model.onnx").write_bytes(b"an earlier export")
    assert report_stem(tmp_path, published=False) == FAILED_STEM  # a failure keeps the earlier export's report
    assert write_report(report, tmp_path, FAILED_STEM)[1].name == "export-report.failed.md"
