"""Mocked-sampling tier: the full check, its report and figures, without MCMC."""

from __future__ import annotations

import json

import matplotlib.figure
import numpy as np
import pandas as pd
import pytest

from bayesct.checks import (
    CheckError,
    compare_models,
    mortality_calibration,
    patient_loo,
    pit_summary,
    posterior_predictive_check,
    predictive_pit,
)
from bayesct.checks import figures as ppc_figures

STAT_FIELDS = {"name", "period", "marker", "observed", "rep_median", "rep_lo", "rep_hi", "ppp", "n_valid"}


@pytest.fixture(scope="module")
def result(mock_fit):
    return posterior_predictive_check(
        mock_fit, replicates=25, level="new", seed=2, mixed_replicates=2, check_draws=100
    )


def test_result_tables(result, mock_fit):
    st = result.statistics
    assert set(st.columns) >= STAT_FIELDS
    assert {"ct_mw_p", "ct_auc", "kendall_tau", "logistic_coef", "mixed_p", "n_deaths"} <= set(st["name"])
    assert len(result.replicated) == 25
    mixed = st.loc[st["name"] == "mixed_p"]
    assert (mixed["n_valid"] <= 2).all() and mixed["note"].str.contains("first 2 of 25").all()
    assert (st["n_valid"] <= 25).all()
    f = result.findings
    assert {"finding", "reproduced_share", "n_valid", "observed_reproduced"} <= set(f.columns)
    assert "period_0-5_no_difference" in set(f["finding"]) and "day_coef_negative" in set(f["finding"])
    shares = f["reproduced_share"].dropna()
    assert ((shares >= 0) & (shares <= 1)).all()
    assert result.meta["died"] == "replicated"
    assert result.n_outside <= result.n_judged <= len(st)
    text = result.summary()
    assert "fall outside the central 95% interval" in text and "period_0-5_no_difference" in text


def test_write_outputs(result, tmp_path):
    paths = result.write(tmp_path)
    data = json.loads((tmp_path / "ppc.json").read_text())
    assert data["converged"] is True
    assert {"meta", "statistics", "findings", "pit", "calibration", "loo", "n_outside"} <= set(data)
    assert "ppp" in data["meta"] and "P(T_rep >= T_obs)" in data["meta"]["ppp"]
    assert set(data["statistics"][0]) >= STAT_FIELDS
    assert {"finding", "reproduced_share"} <= set(data["findings"][0])
    assert (tmp_path / "ppc.csv").is_file()
    figs = {p.name for p in (tmp_path / "figures").iterdir()}
    for name in (
        "ppc_ct_mw_p.png",
        "ppc_kendall_tau.png",
        "ppc_logistic_coef.png",
        "ppc_mixed_p.png",
        "ppc_overview.png",
        "ppc_findings.png",
        "loo_pit.png",
        "calibration.png",
    ):
        assert name in figs
    assert all(p.exists() for p in paths)


def test_figures_return_figures(result):
    fig = ppc_figures.plot_statistic(
        statistics=result.statistics, replicated=result.replicated, name="ct_auc"
    )
    assert isinstance(fig, matplotlib.figure.Figure)
    assert isinstance(ppc_figures.plot_pit(pit=result.pit), matplotlib.figure.Figure)
    assert isinstance(ppc_figures.plot_calibration(calibration=result.calibration), matplotlib.figure.Figure)


def test_standard_checks(mock_fit):
    pit = predictive_pit(mock_fit, max_draws=80)
    assert {"marker", "pit", "loo_pit", "pareto_k"} <= set(pit.columns)
    assert pit["pit"].between(0, 1).all() and pit["loo_pit"].between(0, 1).all()
    assert len(pit) == mock_fit.design.ct.value.size + mock_fit.design.labs.value.size
    summ = pit_summary(pit)
    assert list(summ["marker"]) == list(mock_fit.design.markers)
    cal = mortality_calibration(mock_fit, n_bins=4, max_draws=80)
    assert len(cal.bins) == 4 and cal.bins["n"].sum() == mock_fit.cohort.n_patients
    assert (cal.bins["observed_lo"] <= cal.bins["observed_rate"]).all()
    assert cal.summary["observed_deaths"] == mock_fit.cohort.n_deaths
    loo = patient_loo(mock_fit, max_draws=80)
    assert loo["parts"] == ["ct", "labs", "death"] and np.isfinite(loo["elpd"])


def test_compare_models_on_shared_data(mock_fit, mock_ct_only):
    table = compare_models({"joint": mock_fit, "ct_only": mock_ct_only}, max_draws=80)
    assert set(table["model"]) == {"joint", "ct_only"}
    assert (table["data"] == "ct+death").all()
    assert {"elpd", "se", "elpd_diff", "dse", "n_bad_k"} <= set(table.columns)
    with pytest.raises(CheckError, match="at least two"):
        compare_models({"joint": mock_fit})
    with pytest.raises(CheckError, match="share only"):
        compare_models({"joint": mock_fit, "ct_only": mock_ct_only}, parts=("ct", "labs"))


def test_compare_command_prints_the_conditioning_and_flags_failed_gates(
    mock_fit, mock_ct_only, tmp_path, capsys
):
    from bayesct.cli import main

    for name, f in (("joint", mock_fit), ("ct_only", mock_ct_only)):
        f.save(tmp_path / name)
    out = tmp_path / "cmp.csv"
    rc = main(
        [
            "compare",
            str(tmp_path / "joint"),
            str(tmp_path / "ct_only"),
            "--max-draws",
            "60",
            "--out",
            str(out),
        ]
    )
    text = capsys.readouterr()
    assert rc == 0
    assert "ct+death" in text.out and "integrated out" in text.out
    assert {"joint", "ct_only"} <= set(pd.read_csv(out)["model"])
    # asking for data one variant does not model is a clear error, exit 2
    rc = main(["compare", str(tmp_path / "joint"), str(tmp_path / "ct_only"), "--parts", "ct,labs"])
    assert rc == 2 and "share only" in capsys.readouterr().err
