"""Mocked-sampling tier: the full check, its report and figures, without MCMC."""

from __future__ import annotations

import inspect
import json

import matplotlib.figure
import numpy as np
import pandas as pd
import pytest

from bayesct.checks import (
    OUTCOME_STATISTICS,
    CheckError,
    compare_models,
    mortality_calibration,
    patient_loo,
    pit_summary,
    posterior_predictive_check,
    predictive_pit,
    replicate_set,
    table_statistics,
)
from bayesct.checks import figures as ppc_figures
from bayesct.checks.ppc import LOGISTIC_P, mixed_statistics

STAT_FIELDS = {
    "name",
    "period",
    "marker",
    "level",
    "observed",
    "rep_median",
    "rep_lo",
    "rep_hi",
    "ppp",
    "ppp_mcse",
    "ppp_mc_lo",
    "ppp_mc_hi",
    "ppp_two_sided",
    "ppp_two_sided_mcse",
    "ppp_two_sided_mc_hi",
    "n_valid",
    "n_replicates",
    "beyond_interval",
    "outside",
}


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
    assert (mixed["n_replicates"] == 2).all() and (
        st.loc[st["name"] != "mixed_p", "n_replicates"] == 25
    ).all()
    assert (st["n_valid"] <= 25).all() and (st["level"] == "new").all()
    judged = st["ppp"].notna()
    assert (st.loc[judged, "ppp_mcse"] > 0).all()
    # flagged outside only when beyond the interval by the point estimate too
    assert not (st["outside"].fillna(False) & ~st["beyond_interval"].fillna(False)).any()
    f = result.findings
    assert {"finding", "reproduced_share", "n_valid", "observed_reproduced"} <= set(f.columns)
    assert "period_0-5_no_difference" in set(f["finding"]) and "day_coef_negative" in set(f["finding"])
    shares = f["reproduced_share"].dropna()
    assert ((shares >= 0) & (shares <= 1)).all()
    assert result.meta["died"] == "replicated"
    assert result.n_outside <= result.n_judged <= len(st)
    text = result.summary()
    assert "fall outside the central 95% interval" in text and "period_0-5_no_difference" in text
    assert "clear of Monte Carlo error" in text and "ppp ± MC SE" in text
    for key in st["key"]:  # every statistic's ppp is printed
        assert key in text


def test_write_outputs(result, tmp_path):
    paths = result.write(tmp_path)
    data = json.loads((tmp_path / "ppc.json").read_text())
    assert data["converged"] is True
    assert {"meta", "statistics", "findings", "pit", "calibration", "loo", "n_outside"} <= set(data)
    assert "ppp" in data["meta"] and "P(T_rep >= T_obs)" in data["meta"]["ppp"]
    assert "Jeffreys" in data["meta"]["ppp_mcse"] and "Monte Carlo" in data["meta"]["outside"]
    assert data["meta"]["outcome_level"] == "new" and "n_within_mc" in data
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


def test_outcome_contrasts_use_the_new_level_by_default(mock_fit):
    res = posterior_predictive_check(
        mock_fit, replicates=6, seed=3, mixed_replicates=1, standard_checks=False
    )
    assert res.meta["level"] == "patients" and res.meta["outcome_level"] == "new"
    assert "outcome contrasts" in res.meta["levels"] and "at 'new'" in res.meta["levels"]
    st = res.statistics.set_index("key")
    outcome = st["name"].isin(OUTCOME_STATISTICS)
    assert outcome.any() and (~outcome).any()
    assert (st.loc[outcome, "level"] == "new").all() and (st.loc[~outcome, "level"] == "patients").all()
    assert "n_deaths" in st.index  # deaths are replicated at 'new'
    assert res.meta["died"] == "replicated"
    # the replicated outcome contrasts are those of the 'new' replicates, the taus of the 'patients' ones
    new = replicate_set(mock_fit, n=6, level="new", seed=3)
    same = replicate_set(mock_fit, n=6, level="patients", seed=3)
    np.testing.assert_array_equal(new.draws, same.draws)  # one posterior draw per row
    for r in (0, 5):
        want_new = table_statistics(new.cohort(r), deaths=True)
        want_same = table_statistics(same.cohort(r))
        for key in res.replicated.columns:
            name = key.split("[")[0]
            if name == "mixed_p":
                continue
            # the logistic terms' p-values (for the findings' verdicts) come with their coefficients
            outcome = name in OUTCOME_STATISTICS or name == LOGISTIC_P
            want = want_new[key] if outcome else want_same[key]
            np.testing.assert_equal(res.replicated.loc[r, key], want)
    mixed = mixed_statistics(new.cohort(0), tuple(mock_fit.design.markers))
    for key, v in mixed.items():
        np.testing.assert_equal(res.replicated.loc[0, key], v)
    f = res.findings.set_index("finding")
    assert f.loc["period_0-5_no_difference", "level"] == "new" and f.loc["ct_coef_positive", "level"] == "new"
    assert f.loc["tau_sign_nlr", "level"] == "patients"
    assert "outcome contrasts" in res.summary()
    # the other level stays available for both groups
    res_p = posterior_predictive_check(
        mock_fit, replicates=6, seed=3, outcome_level="patients", mixed_replicates=0, standard_checks=False
    )
    assert (res_p.statistics["level"] == "patients").all() and "n_deaths" not in set(res_p.statistics["name"])
    with pytest.raises(CheckError, match="level"):
        posterior_predictive_check(mock_fit, replicates=2, outcome_level="all", standard_checks=False)  # type: ignore[arg-type]


def test_check_command_defaults():
    from bayesct.checks.ppc import DEFAULT_MIXED_REPLICATES
    from bayesct.cli import build_parser

    args = build_parser().parse_args(["check", "fit", "--out", "o"])
    assert args.outcome_level == "new" and args.level == "patients"
    assert args.mixed_replicates == DEFAULT_MIXED_REPLICATES >= 100
    sig = inspect.signature(posterior_predictive_check).parameters
    assert sig["outcome_level"].default == "new" and sig["mixed_replicates"].default >= 100


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
            "--no-refit",
            "--out",
            str(out),
        ]
    )
    text = capsys.readouterr()
    assert rc == 0
    assert "ct+death" in text.out and "integrated out" in text.out
    assert {"joint", "ct_only"} <= set(pd.read_csv(out)["model"])
    # asking for data one variant does not model is a clear error, exit 2
    rc = main(
        ["compare", str(tmp_path / "joint"), str(tmp_path / "ct_only"), "--parts", "ct,labs", "--no-refit"]
    )
    assert rc == 2 and "share only" in capsys.readouterr().err
