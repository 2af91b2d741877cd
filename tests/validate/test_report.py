"""Report files from a hand-made ParityReport (no export needed): names, JSON, Markdown table, PNG."""

import json

import pytest

from resvit_export.validate.parity import CaseResult, ParityReport, default_tolerances
from resvit_export.validate.report import render_markdown, report_paths, write_reports


def _case(name, h, w, batch=1, inp="gaussian", max_abs=1e-7, cos=1.0, passed=True, failures=()):
    return CaseResult(name=name, kind=name.split("-")[0], input=inp, batch=batch, h=h, w=w,
                      tokens=(h // 16) * (w // 16), output="logits", max_abs=max_abs, mean_abs=max_abs / 3,
                      max_rel=max_abs * 10, cosine=cos, top1=1.0, top1_rows=batch, worst_row=0, worst_index=[4],
                      torch_ms=0.5 + h * w / 1e4, ort_ms=0.1 + h * w / 3e4, passed=passed, failures=list(failures),
                      budget=max_abs / 1e-4 if passed else 2.0)


def _report(precision="fp32", breach=False):
    cases = [_case(f"min-32x32-b{b}", 32, 32, b, inp) for b in (1, 2) for inp in ("gaussian", "synthetic")]
    cases += [_case("max-256x256-b1", 256, 256, inp=inp, max_abs=3e-7) for inp in ("gaussian", "synthetic")]
    cases.append(_case("aspect-32x256-b1", 32, 256, max_abs=2e-2 if breach else 2e-7, passed=not breach,
                       failures=["max-abs 0.02 exceeds atol 0.0001 (and rtol 0.001) at logits[0, 4]"] if breach else []))
    return ParityReport(model="deit_test", onnx_path="/x/model.onnx", onnx_sha256="ab" * 32, precision=precision,
                        tolerances=default_tolerances(precision), profiles=["32-256"], cases=cases,
                        top1_agreement=1.0, seconds=1.5, versions={"torch": "2.13.0", "onnxruntime": "1.31.1"},
                        date="2026-11-21T12:00:00+00:00")


@pytest.mark.parametrize("precision,breach", [("fp32", False), ("fp16", True)])
def test_reports_written_and_parseable(tmp_path, precision, breach):
    rep = _report(precision, breach)
    paths = write_reports(rep, tmp_path)
    suffix = "" if precision == "fp32" else ".fp16"
    assert paths == report_paths(tmp_path, precision)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"parity{suffix}.{e}"
                                                                for e in ("json", "md", "png", "junit.xml"))
    data = json.loads(paths["json"].read_text())
    assert data["passed"] is (not breach) and len(data["cases"]) == len(rep.cases)
    assert data["tolerances"] == default_tolerances(precision).to_dict()
    assert data["worst"]["name"] == ("aspect-32x256-b1" if breach else rep.worst.name)
    md = paths["md"].read_text()
    assert md.startswith(f"# Parity {'FAILED' if breach else 'PASSED'}: deit_test ({precision})")
    assert "| case | kind | input | batch | H×W | tokens | max-abs |" in md
    assert md.count("\n| ") == len(rep.cases) + 1  # header + one row per case x input
    assert "## Worst case" in md and "## Versions" in md and "onnxruntime: 1.31.1" in md
    assert ("**Breach:**" in md) is breach and ("**FAIL**" in md) is breach
    import xml.etree.ElementTree as ET

    suite = ET.parse(paths["junit"]).getroot()
    assert suite.get("tests") == str(len(rep.cases) + 1) and suite.get("failures") == str(int(breach))
    assert len(suite.findall("testcase/failure")) == int(breach)
    png = paths["png"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    import matplotlib.image

    assert matplotlib.image.imread(str(paths["png"])).shape[0] > 300


def test_markdown_summary_names_the_worst_case():
    rep = _report("fp32", breach=True)
    md = render_markdown(rep)
    assert "aspect-32x256-b1" in md.split("## Cases")[0]
    assert not rep.passed and "1/7 cases breach" in rep.failure_line()
