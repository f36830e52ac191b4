"""``bayesct demo`` on mocked sampling: every stage in memory on one fit, the files written at the end."""

from __future__ import annotations

import re
from pathlib import Path

from tests.checks.conftest import _mock_fit

from bayesct.modeling import fit as fit_module


def test_demo_fits_once_reads_nothing_back_and_writes_every_file(tmp_path, monkeypatch, capsys):
    from bayesct.demo import run_demo

    fits: list[int] = []
    loads: list[str] = []

    def fake_fit(self, cohort, **kwargs):
        fits.append(cohort.n_patients)
        return _mock_fit(cohort, "joint", draws=60)

    def no_load(cls, fit_dir):
        loads.append(str(fit_dir))
        raise AssertionError("the demo reads no fit back")

    monkeypatch.setattr(fit_module.JointModel, "fit", fake_fit)
    monkeypatch.setattr(fit_module.FitResult, "load", classmethod(no_load))
    out = tmp_path / "demo"
    assert run_demo(out, seed=0, replicates=3) == 0
    assert fits == [93] and loads == []
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert {
        "default_cohort.csv",
        "classical/summary.md",
        "fit/posterior.nc",
        "fit/diagnostics.json",
        "check/ppc.json",
        "risk/risk_grid.csv",
        "risk/risk_grid.png",
        "report.md",
        "report.html",
    } <= written
    report = Path(out / "report.md").read_text(encoding="utf-8")
    assert "## Model `joint`" in report and "Table 3 counterpart" in report
    captured = capsys.readouterr()
    assert "P(death | CT 14 on day 8, age 60, male)" in captured.out

    # report.html: one self-contained page of the demo's own fit, check and grid
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.lstrip().lower().startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert "Content-Security-Policy" in page and "<script" not in page.lower()
    for target in re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", page, flags=re.IGNORECASE):
        assert target.startswith(("data:", "#")), target  # nothing fetched from a file or the network
    assert "<link" not in page.lower() and "@import" not in page
    assert "model joint" in page and "Table 3" in page
    assert "No check folder given" not in page and "No risk grid given" not in page

    # one progress line per stage on stderr (not a terminal here), the last one naming the report
    err = [line for line in captured.err.splitlines() if line.strip()]
    steps = [line for line in err if re.match(r"\[\d+/\d+\] ", line)]
    assert [s.split("]")[0] for s in steps] == [f"[{i}/7" for i in range(1, 8)]
    assert err[-1].endswith(str(out / "report.html"))
    assert captured.out.rstrip().splitlines()[-1] == err[-1]


def test_progress_lines_once_when_both_streams_are_one_file(tmp_path, monkeypatch):
    from bayesct import demo

    with open(tmp_path / "log", "w") as one, open(tmp_path / "other", "w") as other:
        monkeypatch.setattr("sys.stdout", one)
        monkeypatch.setattr("sys.stderr", one)
        assert demo._both_terminals()
        demo._say("Done")
        monkeypatch.setattr("sys.stderr", other)
        assert not demo._both_terminals()
    assert (tmp_path / "log").read_text().count("Done") == 1
