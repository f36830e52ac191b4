"""The replicated statistics are bayesct.classical's; summaries and findings shares are computed right."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import beta

from bayesct.checks import (
    clearly_outside,
    ppp_interval,
    ppp_mcse,
    replicate_set,
    summarise_findings,
    summarise_statistics,
    table_statistics,
)
from bayesct.checks.ppc import judge_findings, mixed_statistics
from bayesct.classical import findings, kendall, mixed_model, mortality_logistic, period_comparison
from bayesct.constants import PERIOD_LABELS


@pytest.fixture(scope="module")
def replicates(mock_fit):
    return replicate_set(mock_fit, n=6, level="new", seed=5)


def test_statistics_equal_classical_tables_on_the_replicate(replicates):
    for r in range(3):
        rep = replicates.cohort(r)
        st = table_statistics(rep, mixed_markers=("ct_score", "nlr"), deaths=True)
        pc = period_comparison(rep)
        for label, p, u, ns, nd in zip(
            pc["period"], pc["p_value"], pc["statistic"], pc["n_survivors"], pc["n_nonsurvivors"], strict=True
        ):
            np.testing.assert_equal(st[f"ct_mw_p[{label}]"], p)
            want_auc = 1 - u / (ns * nd) if ns and nd else math.nan
            np.testing.assert_allclose(st[f"ct_auc[{label}]"], want_auc)
        kd = kendall(rep)
        for lab, tau in zip(kd["marker"], kd["tau"], strict=True):
            np.testing.assert_equal(st[f"kendall_tau[{lab}]"], tau)
        ml = mortality_logistic(rep)
        for term, coef in zip(ml["term"], ml["coef"], strict=True):
            np.testing.assert_equal(st[f"logistic_coef[{term}]"], coef)
        mm = mixed_model(rep, markers=["ct_score", "nlr"])
        inter = mm.loc[mm["term"] == "group:period"]
        for m, p in zip(inter["marker"], inter["p_value"], strict=True):
            np.testing.assert_equal(st[f"mixed_p[{m}]"], p)
        assert st["n_deaths"] == rep.n_deaths
        assert mixed_statistics(rep, ("nlr",)) == {"mixed_p[nlr]": st["mixed_p[nlr]"]}


def test_vectorised_verdicts_equal_classical_findings(replicates, mock_fit):
    cohorts = [*list(replicates), mock_fit.cohort]
    values = pd.DataFrame([table_statistics(c) for c in cohorts])
    judged = judge_findings(values)
    for i, c in enumerate(cohorts):
        f = findings(
            {
                "period_comparison": period_comparison(c),
                "kendall": kendall(c),
                "mortality_logistic": mortality_logistic(c),
            }
        )
        assert list(judged.columns) == list(f["finding"])
        want = [math.nan if pd.isna(v) else float(bool(v)) for v in f["reproduced"]]
        np.testing.assert_array_equal(judged.iloc[i].to_numpy(dtype=float), np.asarray(want))


def test_judge_handles_undefined_statistics():
    values = pd.DataFrame(
        {
            "ct_mw_p[0-5]": [0.5, 0.01, np.nan],
            "ct_mw_p[6-10]": [0.01, 0.2, np.nan],
            "logistic_coef[ct_score]": [0.2, -0.1, np.nan],
        }
    )
    j = judge_findings(values)
    assert j["period_0-5_no_difference"].tolist()[:2] == [1.0, 0.0]
    assert j["period_6-10_difference"].tolist()[:2] == [1.0, 0.0]
    assert j["ct_coef_positive"].tolist()[:2] == [1.0, 0.0]
    assert j.iloc[2].isna().all()
    assert j["tau_sign_nlr"].isna().all()  # lab absent


def test_summarise_statistics_on_a_mocked_replicate_set():
    observed = pd.Series(
        {"kendall_tau[nlr]": 0.3, "ct_mw_p[0-5]": 0.9, "logistic_coef[day]": 1.0, "ct_auc[>20]": np.nan}
    )
    # columns of different lengths: shorter ones padded with NaN (not computed / undefined)
    rep = pd.DataFrame(
        {
            k: pd.Series(v)
            for k, v in {
                "kendall_tau[nlr]": np.arange(1, 101) / 100.0,  # 0.01 .. 1.00
                "ct_mw_p[0-5]": np.r_[np.arange(10) / 10.0, np.full(5, np.nan)],
                "logistic_coef[day]": np.r_[np.zeros(19), np.nan],  # every valid value below the observed
                "ct_auc[>20]": np.r_[np.ones(15), np.full(5, np.nan)],  # observed undefined
            }.items()
        }
    )
    s = summarise_statistics(observed, rep, ci_prob=0.95).set_index("key")
    tau = s.loc["kendall_tau[nlr]"]
    vals = np.arange(1, 101) / 100.0
    assert tau["observed"] == 0.3 and tau["n_valid"] == 100
    np.testing.assert_allclose(tau["rep_median"], np.median(vals))
    np.testing.assert_allclose([tau["rep_lo"], tau["rep_hi"]], np.quantile(vals, [0.025, 0.975]))
    np.testing.assert_allclose(tau["ppp"], 0.71)  # P(T_rep >= 0.3): 0.30 .. 1.00
    np.testing.assert_allclose(tau["ppp_two_sided"], 2 * 0.30)
    assert tau["marker"] == "nlr" and tau["name"] == "kendall_tau" and not tau["outside"]
    p1 = s.loc["ct_mw_p[0-5]"]
    assert p1["n_valid"] == 10 and p1["period"] == "0-5"
    np.testing.assert_allclose(p1["ppp"], 0.1)  # only 0.9 >= 0.9
    day = s.loc["logistic_coef[day]"]
    assert day["n_valid"] == 19 and day["ppp"] == 0.0 and day["ppp_two_sided"] == 0.0
    # beyond the interval by the point estimate, but 0 of 19 is within Monte Carlo error
    assert day["beyond_interval"] and not day["outside"]
    np.testing.assert_allclose(day["ppp_mcse"], ppp_mcse(0, 19))
    assert day["ppp_mc_lo"] == 0.0 and day["ppp_two_sided_mc_hi"] > 0.05
    assert day["term"] == "day"
    assert (s["n_replicates"] == 100).all()
    auc = s.loc["ct_auc[>20]"]
    assert math.isnan(auc["ppp"]) and pd.isna(auc["outside"]) and auc["n_valid"] == 15
    assert math.isnan(auc["ppp_mcse"]) and pd.isna(auc["beyond_interval"])


def test_ppp_monte_carlo_error():
    # binomial SE at the Jeffreys estimate (x + 1/2) / (R + 1): never 0 at x = 0
    p = 0.5 / 21
    np.testing.assert_allclose(ppp_mcse(0, 20), math.sqrt(p * (1 - p) / 20))
    np.testing.assert_allclose(ppp_mcse(10, 20), math.sqrt(10.5 / 21 * (10.5 / 21) / 20))
    assert ppp_mcse(0, 200) < ppp_mcse(0, 20) and math.isnan(ppp_mcse(0, 0))
    # the Jeffreys interval: Beta(x + 1/2, R - x + 1/2) quantiles, clamped at 0 and 1
    lo, hi = ppp_interval(0, 20)
    assert lo == 0.0
    np.testing.assert_allclose(hi, beta.ppf(0.975, 0.5, 20.5))
    lo, hi = ppp_interval(7, 20, prob=0.9)
    np.testing.assert_allclose([lo, hi], beta.ppf([0.05, 0.95], 7.5, 13.5))
    assert ppp_interval(20, 20)[1] == 1.0


def test_outside_only_when_clear_of_monte_carlo_error():
    # 0 of 20 replicates as extreme as the observed: the MC interval reaches past 0.025
    assert not clearly_outside(0, 20, 20)
    assert not clearly_outside(20, 0, 20)
    # 0 of 200 (either tail) and 1 of 200 are clear of it; 2 of 200 is not (upper end 0.032)
    assert clearly_outside(0, 200, 200) and clearly_outside(200, 0, 200)
    assert clearly_outside(1, 200, 200) and not clearly_outside(2, 200, 200)
    assert clearly_outside(0, 100, 100)  # upper end 0.0247
    assert clearly_outside(0, 20, 20, ci_prob=0.5)  # a tail of 0.25 vs the upper end 0.117: clear
    assert not clearly_outside(0, 0, 0)
    # through the summary: the same observed value against 20 and against 200 replicates
    observed = pd.Series({"kendall_tau[nlr]": 1.0})
    for n, flag in ((20, False), (200, True)):
        rep = pd.DataFrame({"kendall_tau[nlr]": np.linspace(0.0, 0.5, n)})
        row = summarise_statistics(observed, rep).iloc[0]
        assert row["ppp"] == 0.0 and row["beyond_interval"] and bool(row["outside"]) is flag, n
        assert row["n_valid"] == n and row["n_replicates"] == n
        np.testing.assert_allclose(row["ppp_mcse"], ppp_mcse(0, n))
        np.testing.assert_allclose(row["ppp_two_sided_mc_hi"], 2 * ppp_interval(0, n)[1])
    # a statistic computed on fewer replicates (the mixed model) reports that number
    rep = pd.DataFrame({"mixed_p[nlr]": np.r_[np.linspace(0, 0.5, 20), np.full(180, np.nan)]})
    row = summarise_statistics(pd.Series({"mixed_p[nlr]": 1.0}), rep, n_computed={"mixed_p[nlr]": 20}).iloc[0]
    assert row["n_valid"] == 20 and row["n_replicates"] == 20 and not row["outside"]


def test_summarise_findings_shares():
    observed = pd.DataFrame(
        {
            "finding": ["period_0-5_no_difference", "tau_sign_esr", "ct_coef_positive"],
            "paper": ["a", "b", "c"],
            "observed": [0.4, np.nan, 0.2],
            "p_value": [0.4, np.nan, 0.01],
            "reproduced": pd.array([True, pd.NA, False], dtype="boolean"),
            "sentence": ["", "", ""],
        }
    )
    rep = pd.DataFrame(
        {
            "period_0-5_no_difference": [1, 0, 1, np.nan],
            "tau_sign_esr": [np.nan] * 4,
            "ct_coef_positive": [1.0, 1.0, 1.0, 0.0],
        }
    )
    f = summarise_findings(observed, rep).set_index("finding")
    np.testing.assert_allclose(f.loc["period_0-5_no_difference", "reproduced_share"], 2 / 3)
    assert f.loc["period_0-5_no_difference", "n_valid"] == 3
    assert math.isnan(f.loc["tau_sign_esr", "reproduced_share"]) and f.loc["tau_sign_esr", "n_valid"] == 0
    assert pd.isna(f.loc["tau_sign_esr", "observed_reproduced"])
    np.testing.assert_allclose(f.loc["ct_coef_positive", "reproduced_share"], 0.75)
    assert not f.loc["ct_coef_positive", "observed_reproduced"]
    # each share carries its Monte Carlo error, as a ppp does: 3 of 4 replicates at the Jeffreys
    # estimate 3.5/5, and the Jeffreys interval Beta(3.5, 1.5)
    from scipy import stats

    np.testing.assert_allclose(f.loc["ct_coef_positive", "share_mcse"], math.sqrt(0.7 * 0.3 / 4))
    lo, hi = stats.beta.ppf([0.025, 0.975], 3.5, 1.5)
    np.testing.assert_allclose(
        f.loc["ct_coef_positive", ["share_mc_lo", "share_mc_hi"]].astype(float), [lo, hi]
    )
    assert "Monte Carlo SE" in f.loc["ct_coef_positive", "sentence"]
    assert math.isnan(f.loc["tau_sign_esr", "share_mcse"])


def test_all_periods_reported(mock_fit):
    st = table_statistics(mock_fit.cohort)
    assert [k for k in st if k.startswith("ct_mw_p")] == [f"ct_mw_p[{p}]" for p in PERIOD_LABELS]


def test_table_statistics_families(mock_fit):
    full = table_statistics(mock_fit.cohort)
    taus = table_statistics(mock_fit.cohort, families=("kendall_tau",))
    assert taus and all(k.startswith("kendall_tau[") for k in taus)
    assert all(full[k] == v for k, v in taus.items())
