"""``bayesct check`` end to end on a small real fit (session-scoped, 2 chains x 200 draws)."""

from __future__ import annotations

import json

import pytest

from bayesct.checks import PPCError, posterior_predictive_check
from bayesct.cli import main

pytestmark = pytest.mark.slow


def test_check_end_to_end(real_fit_dir, tmp_path, capsys):
    from bayesct.modeling.fit import FitResult

    fit = FitResult.load(real_fit_dir)
    out = tmp_path / "check"
    argv = ["check", str(real_fit_dir), "--out", str(out), "--replicates", "30", "--level", "new"]
    assert main([*argv, "--mixed-replicates", "2"]) == 0
    captured = capsys.readouterr()
    assert "statistics fall outside the central 95% interval" in captured.out
    assert "ppc.json" in captured.out
    data = json.loads((out / "ppc.json").read_text())
    assert data["converged"] is fit.passed
    if not fit.passed:
        assert "WARNING" in captured.err and "convergence gates" in captured.err
    assert data["meta"]["level"] == "new" and data["meta"]["replicates"] == 30
    assert data["meta"]["mixed_replicates"] == 2
    assert data["meta"]["outcome_level"] == "new" and "ppp ± MC SE" in captured.out
    rows = data["statistics"]
    names = {r["name"] for r in rows}
    assert {"ct_mw_p", "ct_auc", "kendall_tau", "logistic_coef", "mixed_p"} <= names
    for r in rows:
        assert {
            "name",
            "period",
            "marker",
            "observed",
            "rep_median",
            "rep_lo",
            "rep_hi",
            "ppp",
            "ppp_mcse",
            "n_valid",
            "n_replicates",
            "level",
            "outside",
        } <= set(r)
        assert r["level"] == "new"
    periods = {r["period"] for r in rows if r["name"] == "ct_mw_p"}
    assert periods == {"0-5", "6-10", "11-15", "16-20", ">20"}
    finding_ids = {f["finding"] for f in data["findings"]}
    assert {
        "period_0-5_no_difference",
        "period_6-10_difference",
        "tau_sign_ldh",
        "ct_coef_positive",
        "day_coef_negative",
    } <= finding_ids
    assert all(f["reproduced_share"] is None or 0 <= f["reproduced_share"] <= 1 for f in data["findings"])
    assert data["calibration"]["bins"] and data["pit"] and data["loo"]["parts"] == ["ct", "labs", "death"]
    assert (out / "ppc.csv").is_file()
    figs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert "ppc_ct_mw_p.png" in figs and "calibration.png" in figs and "loo_pit.png" in figs


def test_check_command_errors(real_fit_dir, tmp_path, capsys):
    assert main(["check", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "error:" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["check", str(real_fit_dir), "--out", str(tmp_path / "o"), "--level", "all"])
    assert exit_info.value.code == 2
    assert "--level" in capsys.readouterr().err
    from bayesct.modeling.fit import FitResult

    with pytest.raises(PPCError, match="level"):
        posterior_predictive_check(FitResult.load(real_fit_dir), level="all")  # type: ignore[arg-type]
