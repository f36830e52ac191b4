"""Posterior risk queries: exactness against brute force, coverage of the truth, errors, CLI."""

from __future__ import annotations

import json
import re

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats
from scipy.special import expit

from bayesct import risk
from bayesct.cli import cmd_risk
from bayesct.data.simulate import population_risk
from bayesct.errors import BayesctError, DataValidationError, SpecError
from bayesct.modeling.builders import lab_marginal_logp
from bayesct.modeling.design import to_model_scale
from bayesct.modeling.posterior import PosteriorModel
from bayesct.risk import patient_risks, plot_risk_grid, risk_grid, risk_query

# -- brute force -------------------------------------------------------------------------------------


def skewed_level(z, eps):
    """The standardised sinh-arcsinh level of standard normals ``z``: sinh(asinh(z) + eps) with
    its mean and SD found by numerical integration (not from the package's closed forms)."""
    x = lambda t: np.sinh(np.arcsinh(t) + eps)  # noqa: E731
    dens = lambda t: stats.norm.pdf(t)  # noqa: E731
    mean = integrate.quad(lambda t: x(t) * dens(t), -np.inf, np.inf)[0]
    var = integrate.quad(lambda t: (x(t) - mean) ** 2 * dens(t), -np.inf, np.inf)[0]
    return (x(z) - mean) / np.sqrt(var)


def brute_force(fit, *, ct_days, ct_scores, labs=None, age=60.0, male=1.0, n_grid=601):
    """P(death) per draw by a fine 2-D trapezoid grid over the shared severity (u0, u1).

    Written from the model's equations (builders module docstring) with scipy densities, not
    with risk.py's algebra: beta-binomial CT scores, labs jointly normal per lab with covariance
    noise² I + specific² J, logistic mortality in the value at the reference day and the slope.
    """
    pm = PosteriorModel.from_fit(fit)
    spec, d = fit.spec, fit.design
    labs = labs or {}
    u = np.linspace(-8.0, 8.0, n_grid)
    U0, U1 = np.meshgrid(u, u, indexing="ij")
    phi_u = np.exp(-0.5 * (U0**2 + U1**2))
    out = np.empty(pm.n_draws)
    for s in range(pm.n_draws):
        sd = pm.draws["severity_cov_stds"][s]
        rho = pm.draws["severity_cov_corr"][s, 0, 1]
        W0 = U0
        if "severity_skew" in pm.draws:
            W0 = skewed_level(U0, pm.draws["severity_skew"][s])
        e0 = sd[0] * W0
        e1 = sd[1] * (rho * W0 + np.sqrt(1 - rho**2) * U1)
        loglik = np.zeros_like(e0)
        for day, score in zip(ct_days, ct_scores, strict=True):
            g = (day - spec.time_centre) / spec.time_scale
            eta = pm.population_curve(0, np.array([day]))[s, 0] + e0 + e1 * g
            mu = np.clip(expit(eta), 1e-13, 1 - 1e-13)
            phi = pm.draws["ct_phi"][s]
            loglik += stats.betabinom.logpmf(score, 24, mu * phi, (1 - mu) * phi)
        for name, (days, values) in labs.items():
            k = d.markers.index(name)
            lam = pm.draws["loading"][s, k]
            y = to_model_scale(name, np.asarray(values, float))
            days = np.asarray(days, float)
            g = (days - spec.time_centre) / spec.time_scale
            m = pm.population_curve(k, days)[s]
            resid = y[None, None, :] - m - lam * (e0[..., None] + e1[..., None] * g)
            n = len(days)
            cov = pm.draws["noise_sd"][s, k - 1] ** 2 * np.eye(n) + pm.draws["specific_sd"][s, k - 1] ** 2
            loglik += stats.multivariate_normal(np.zeros(n), cov).logpdf(resid)
        g_ref = (spec.reference_day - spec.time_centre) / spec.time_scale
        gam = pm.draws["mort_gamma"][s]
        beta = pm.draws["mort_beta"][s]
        logit = (
            pm.draws["mort_intercept"][s]
            + gam[0] * (e0 + e1 * g_ref)
            + gam[1] * e1
            + beta[0] * (age - 55.0) / 15.0
            + beta[1] * male
        )
        w = phi_u * np.exp(loglik - loglik.max())
        num = integrate.trapezoid(integrate.trapezoid(w * expit(logit), u), u)
        out[s] = num / integrate.trapezoid(integrate.trapezoid(w, u), u)
    return out


HISTORY = pd.DataFrame(
    {
        "day": [4, 9, 14],
        "ct_score": [6, 11, 15],
        "nlr": [3.0, 5.5, 8.0],
        "ldh": [250.0, 310.0, 420.0],
    }
)


# -- (1) exactness -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("score", "day"), [(0, 0.0), (7, 5.0), (14, 8.0), (24, 21.0), (3, 30.0)])
def test_one_scan_quadrature_equals_brute_force(joint_fake, score, day):
    ds = risk_query(joint_fake, ct_score=score, day=day, age=60, sex="male")
    exact = brute_force(joint_fake, ct_days=[day], ct_scores=[score])
    assert ds.attrs["method"] == "quadrature"
    np.testing.assert_allclose(ds["p_death"].values, exact, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize(("score", "day"), [(2, 3.0), (14, 8.0), (22, 10.0), (20, 25.0)])
def test_one_scan_quadrature_equals_brute_force_skewed_law(joint_skew_fake, score, day):
    """The two-dimensional rule of a skewed severity law against the brute-force grid."""
    ds = risk_query(joint_skew_fake, ct_score=score, day=day, age=60, sex="male")
    exact = brute_force(joint_skew_fake, ct_days=[day], ct_scores=[score])
    assert ds.attrs["method"] == "quadrature"
    np.testing.assert_allclose(ds["p_death"].values, exact, atol=2e-5, rtol=1e-4)


def test_skewed_law_moves_the_risk(joint_fake, joint_skew_fake):
    """Same draws, skewed level: a high score early is riskier than under the normal law."""
    normal = risk_query(joint_fake, ct_score=20, day=3, age=60, sex="male")["p_death"].values
    skewed = risk_query(joint_skew_fake, ct_score=20, day=3, age=60, sex="male")["p_death"].values
    assert np.all(np.abs(skewed - normal) > 1e-3)


def test_history_importance_sampling_equals_brute_force_skewed_law(joint_skew_fake):
    ds = risk_query(joint_skew_fake, history=HISTORY, age=60, sex="male", n_effects=4000)
    labs = {k: (HISTORY["day"].to_numpy(), HISTORY[k].to_numpy()) for k in ("nlr", "ldh")}
    exact = brute_force(
        joint_skew_fake, ct_days=HISTORY["day"].tolist(), ct_scores=HISTORY["ct_score"].tolist(), labs=labs
    )
    assert ds.attrs["ess_min"] > 500
    np.testing.assert_allclose(ds["p_death"].values, exact, atol=0.01)


@pytest.mark.parametrize(("method", "tol"), [("laplace", 0.01), ("prior", 0.025)])
def test_one_scan_importance_sampling_within_monte_carlo_error(joint_fake, method, tol):
    # Monte Carlo SE per draw ~ SD(risk | scan) / sqrt(ESS): about 0.004 (Laplace, ESS ~ 3000 of
    # 4000) and 0.006 (prior proposal, ESS ~ 800); the tolerances are about 4 SE.
    ds = risk_query(joint_fake, ct_score=14, day=8, age=60, sex="male", method=method, n_effects=4000)
    exact = brute_force(joint_fake, ct_days=[8.0], ct_scores=[14])
    np.testing.assert_allclose(ds["p_death"].values, exact, atol=tol)
    assert ds.attrs["ess_min"] > 100


def test_history_importance_sampling_equals_brute_force(joint_fake):
    ds = risk_query(joint_fake, history=HISTORY, age=60, sex="male", n_effects=4000)
    labs = {k: (HISTORY["day"].to_numpy(), HISTORY[k].to_numpy()) for k in ("nlr", "ldh")}
    exact = brute_force(
        joint_fake, ct_days=HISTORY["day"].tolist(), ct_scores=HISTORY["ct_score"].tolist(), labs=labs
    )
    assert ds.attrs["method"] == "importance (laplace proposal)"
    assert ds.attrs["ess_min"] > 1000  # of 4000: the Laplace proposal fits the conditional posterior
    np.testing.assert_allclose(ds["p_death"].values, exact, atol=0.01)


def test_prior_proposal_is_worse_on_a_history(joint_fake):
    lap = risk_query(joint_fake, history=HISTORY, age=60, sex="male", n_effects=1000)
    with _no_check():
        pri = risk_query(joint_fake, history=HISTORY, age=60, sex="male", n_effects=1000, method="prior")
    assert lap.attrs["ess_median"] > 2 * pri.attrs["ess_median"]


class _no_check:
    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("ignore", risk.RiskWarning)

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


def test_lab_loglik_equals_builders_marginal(joint_fake):
    rng = np.random.default_rng(1)
    resid = rng.normal(0, 1, 5)
    groups = (np.zeros(5, int), np.array([0]), np.array([0]), np.array([5.0]))
    ref = lab_marginal_logp(resid, groups, np.array([0.7]), np.array([0.3]))[0]
    mine = risk._cs_normal_logpdf(resid[None, :], np.array([0.7]), np.array([0.3]))[0]
    assert mine == pytest.approx(ref, rel=1e-12)


def test_all_score_logpmf_equals_ct_logp(joint_fake):
    pm = PosteriorModel.from_fit(joint_fake)
    eta = np.linspace(-4, 3, 7)[None, :].repeat(pm.n_draws, 0)
    all_scores = pm.ct_likelihood.logpmf_all(eta)
    direct = pm.ct_logp(np.arange(25)[None, None, :], eta[..., None])
    np.testing.assert_allclose(all_scores, direct, atol=1e-9)


@pytest.mark.parametrize("sd", [0.3, 2.0, 6.0, 12.0])
def test_expit_normal_mean_accuracy(sd):
    for mu in (-6.0, -1.0, 0.5):
        exact = integrate.quad(
            lambda x, m=mu: expit(m + sd * x) * stats.norm.pdf(x), -12, 12, points=[-mu / sd], limit=400
        )[0]
        assert risk._expit_normal_mean(np.array([mu]), np.array([sd]))[0] == pytest.approx(exact, abs=1e-7)


# -- (3) errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ct_score": 25, "day": 8}, "0-24"),
        ({"ct_score": -1, "day": 8}, "0-24"),
        ({"ct_score": 3.5, "day": 8}, "whole number"),
        ({"ct_score": 10, "day": -1}, ">= 0"),
        ({"ct_score": 10}, "both"),
        ({}, "CT score and its day"),
    ],
)
def test_bad_query_inputs(joint_fake, kwargs, match):
    with pytest.raises(BayesctError, match=match):
        risk_query(joint_fake, age=60, sex="male", **kwargs)


def test_missing_covariates_are_refused(joint_fake):
    with pytest.raises(BayesctError, match=r"age, sex.*no default"):
        risk_query(joint_fake, ct_score=10, day=8)
    with pytest.raises(BayesctError, match="sex"):
        risk_query(joint_fake, ct_score=10, day=8, age=50)
    with pytest.raises(BayesctError, match="male' or 'female"):
        risk_query(joint_fake, ct_score=10, day=8, age=50, sex="x")
    with pytest.raises(BayesctError, match="age"):
        risk_grid(joint_fake, days=[3], sex="male")


def test_model_without_mortality_is_refused(descriptive_fake):
    with pytest.raises(SpecError, match="no mortality part"):
        risk_query(descriptive_fake, ct_score=10, day=8, age=60, sex="male")
    with pytest.raises(SpecError, match="no mortality part"):
        risk_grid(descriptive_fake, days=[3])


def test_bad_history_file(joint_fake, tmp_path):
    path = tmp_path / "hist.csv"
    path.write_text("day,ct_score,nlr\n3,10,2.5\n8,30,3.1\n")
    with pytest.raises(DataValidationError) as err:
        risk_query(joint_fake, history=path, age=60, sex="male")
    assert err.value.file == str(path) and err.value.row == 3 and err.value.column == "ct_score"
    two = tmp_path / "two.csv"
    two.write_text("patient_id,day,ct_score\nA,3,10\nB,8,12\n")
    with pytest.raises(DataValidationError, match="one patient"):
        risk_query(joint_fake, history=two, age=60, sex="male")
    with pytest.raises(DataValidationError, match="file not found"):
        risk_query(joint_fake, history=tmp_path / "nope.csv", age=60, sex="male")


def test_history_covariates_and_conflicts(joint_fake):
    hist = HISTORY.assign(age=70, sex="female")
    a = risk_query(joint_fake, history=hist)
    b = risk_query(joint_fake, history=HISTORY, age=70, sex="female")
    np.testing.assert_allclose(a["p_death"].values, b["p_death"].values)
    with pytest.raises(BayesctError, match="history says"):
        risk_query(joint_fake, history=hist, age=50)


# -- (6) scan_logistic --------------------------------------------------------------------------------


def test_scan_logistic_risk_is_expit_of_the_log_odds(scan_logistic_fake):
    """The shipped model has no patient intercept: the risk of a scan is expit of its log-odds."""
    post = scan_logistic_fake.posterior
    assert "patient_sd" not in post
    a0 = post["mort_intercept"].values[0]
    b = post["mort_beta"].values[0]
    for score, day in [(4, 3.0), (15, 10.0), (22, 25.0)]:
        direct = expit(a0 + b[:, 0] * (score - 12) / 6 + b[:, 1] * (day - 10) / 10)
        ds = risk_query(scan_logistic_fake, ct_score=score, day=day)
        np.testing.assert_allclose(np.sort(ds["p_death"].values), np.sort(direct), rtol=1e-12)
        assert ds.attrs["family"] == "scan_logistic"
    risks = patient_risks(scan_logistic_fake)
    # no patient effects: the fitted risk at the first scan is the population risk there
    np.testing.assert_allclose(risks["fitted_median"], risks["population_median"], rtol=1e-12)


def test_scan_logistic_equals_gauss_hermite(scan_logistic_intercept_fake):
    """A fit with a patient intercept (``patient_sd``) has it integrated out of the risk."""
    post = scan_logistic_intercept_fake.posterior
    a0 = post["mort_intercept"].values[0]
    b = post["mort_beta"].values[0]
    sd = post["patient_sd"].values[0]
    x, w = np.polynomial.hermite_e.hermegauss(120)
    w = w / w.sum()
    for score, day in [(4, 3.0), (15, 10.0), (22, 25.0)]:
        eta = a0 + b[:, 0] * (score - 12) / 6 + b[:, 1] * (day - 10) / 10
        direct = expit(eta[:, None] + sd[:, None] * x) @ w
        ds = risk_query(scan_logistic_intercept_fake, ct_score=score, day=day)
        np.testing.assert_allclose(np.sort(ds["p_death"].values), np.sort(direct), atol=1e-6)
        assert ds.attrs["family"] == "scan_logistic"
    assert (patient_risks(scan_logistic_intercept_fake)["fitted_median"].between(0, 1)).all()


def test_scan_logistic_history_uses_latest_scan(scan_logistic_fake):
    ds = risk_query(scan_logistic_fake, history=HISTORY, age=60)
    last = risk_query(scan_logistic_fake, ct_score=15, day=14)
    np.testing.assert_allclose(ds["p_death"].values, last["p_death"].values)
    assert any("latest CT scan" in n for n in ds.attrs["notes"])
    assert any("does not use age" in n for n in ds.attrs["notes"])
    grid = risk_grid(scan_logistic_fake, days=[3, 8])
    assert len(grid) == 50
    assert (patient_risks(scan_logistic_fake)["population_median"].between(0, 1)).all()


# -- (4) grid and figure ----------------------------------------------------------------------------


def test_grid_layout_and_bands(joint_fake):
    grid = risk_grid(joint_fake, days=[3, 8, 13], age=60, sex="male")
    assert list(grid.columns) == ["ct_score", "day", "median", "lo", "hi", "mean", "band"]
    assert len(grid) == 75
    assert set(grid["ct_score"]) == set(range(25))
    assert ((grid["lo"] <= grid["median"]) & (grid["median"] <= grid["hi"])).all()
    expected = pd.cut(
        grid["median"],
        [0, 0.05, 0.30, 0.50, 1.0000001],
        right=False,
        labels=["green", "yellow", "red", "blue"],
    ).astype(str)
    assert (grid["band"] == expected).all()
    cell = grid.query("ct_score == 14 and day == 8")["median"].item()
    assert cell == pytest.approx(
        risk_query(joint_fake, ct_score=14, day=8, age=60, sex="male").attrs["median"]
    )
    by_period = risk_grid(joint_fake, periods=True, age=60, sex="male", scores=[0, 12, 24])
    assert list(by_period["period"].unique()) == ["0-5", "6-10", "11-15", "16-20", ">20"]
    assert list(by_period["day"].unique()) == [2.5, 8.0, 13.0, 18.0, 25.0]
    fig = plot_risk_grid(by_period)
    assert fig.axes[0].get_legend() is not None
    fig2 = plot_risk_grid(grid)
    assert len(fig2.axes[0].get_xticklabels()) == 3


def test_patient_history_risks_do_not_see_the_outcome_and_are_history_queries(joint_fake):
    """``history_*`` conditions on the patient's scans and labs only: flipping every outcome in the
    cohort (same posterior) leaves it unchanged, and it is the history query of risk_query."""
    import copy

    pr = patient_risks(joint_fake)
    flipped = copy.copy(joint_fake)
    patients = joint_fake.cohort.patients.copy()
    patients["died"] = 1 - patients["died"]
    flipped.cohort = type(joint_fake.cohort).from_frames(
        joint_fake.cohort.visits.drop(columns="period"), patients.reset_index(), source="flipped"
    )
    flipped._design = None
    again = patient_risks(flipped)
    np.testing.assert_allclose(again["history_median"], pr["history_median"], rtol=1e-12)
    assert pr.attrs["conditions_on"]["fitted"].startswith("everything")
    # patient 0's history risk is risk_query's on the same visits
    pid = pr["patient_id"].iloc[0]
    visits = joint_fake.cohort.visits
    history = visits.loc[visits["patient_id"] == pid].drop(columns=["patient_id", "period"])
    row = joint_fake.cohort.patients.loc[pid]
    q = risk_query(joint_fake, history=history, age=row["age"], sex=row["sex"], method="laplace", seed=9)
    assert q.attrs["median"] == pytest.approx(pr["history_median"].iloc[0], abs=0.02)


def test_patient_risks_layout(joint_fake):
    pr = patient_risks(joint_fake)
    d = joint_fake.design
    assert len(pr) == d.n_patients
    for col in (
        "patient_id",
        "died",
        "first_day",
        "first_ct_score",
        "age",
        "sex",
        "history_median",
        "history_lo",
        "history_hi",
        "fitted_median",
        "fitted_lo",
        "fitted_hi",
        "population_median",
        "population_lo",
        "population_hi",
    ):
        assert col in pr.columns
    i = 0
    row = pr.iloc[i]
    one = risk_query(
        joint_fake, ct_score=int(row["first_ct_score"]), day=row["first_day"], age=row["age"], sex=row["sex"]
    )
    assert row["population_median"] == pytest.approx(one.attrs["median"], rel=1e-9)


# -- (7) reproducibility ---------------------------------------------------------------------------


def test_same_seed_same_numbers(joint_fake):
    a = risk_query(joint_fake, history=HISTORY, age=60, sex="male", seed=7)
    b = risk_query(joint_fake, history=HISTORY, age=60, sex="male", seed=7)
    c = risk_query(joint_fake, history=HISTORY, age=60, sex="male", seed=8)
    np.testing.assert_array_equal(a["p_death"].values, b["p_death"].values)
    assert not np.array_equal(a["p_death"].values, c["p_death"].values)
    np.testing.assert_allclose(a["p_death"].values, c["p_death"].values, atol=0.1)


# -- CLI -------------------------------------------------------------------------------------------


def test_cli_query_text_and_json(joint_fake, capsys, risk_cli_args):
    assert cmd_risk(risk_cli_args(joint_fake, ct_score=14, day=8, age=60, sex="male")) == 0
    out = capsys.readouterr().out.strip()
    assert re.fullmatch(
        r"P\(death\) = \d+\.\d% \[\d+\.\d%, \d+\.\d%\] \(95% CrI; mean \d+\.\d%; model joint_normal; "
        r"CT 14 on day 8, age 60, male\)",
        out,
    ), out
    assert cmd_risk(risk_cli_args(joint_fake, ct_score=14, day=8, age=60, sex="male", json=True)) == 0
    obj = json.loads(capsys.readouterr().out)
    assert set(obj["p_death"]) == {"median", "lo", "hi", "mean"}
    assert obj["ci_prob"] == 0.95 and obj["model"] == "joint_normal" and obj["converged"] is True
    assert obj["p_death"]["lo"] <= obj["p_death"]["median"] <= obj["p_death"]["hi"]


def test_cli_warns_for_unconverged_fit(capsys, risk_cli_args):
    from tests.risk.conftest import fake_fit, joint_draws

    base = fake_fit("joint", {}, n_patients=20)
    bad = fake_fit("joint", joint_draws(3, base.design), n_patients=20, passed=False)
    assert cmd_risk(risk_cli_args(bad, ct_score=5, day=3, age=40, sex="female", json=True)) == 0
    captured = capsys.readouterr()
    assert "WARNING" in captured.err and "convergence" in captured.err
    assert json.loads(captured.out)["converged"] is False


def test_cli_grid_writes_csv_and_png(joint_fake, tmp_path, capsys, risk_cli_args):
    out = tmp_path / "grid.csv"
    assert (
        cmd_risk(
            risk_cli_args(joint_fake, grid=True, days=[3.0, 8.0, 13.0], age=60, sex="male", out=str(out))
        )
        == 0
    )
    assert "grid.png" in capsys.readouterr().out
    grid = pd.read_csv(out)
    assert {"ct_score", "day", "median", "lo", "hi"} <= set(grid.columns)
    assert len(grid) == 75 and (tmp_path / "grid.png").stat().st_size > 1000


def test_cli_errors_are_bayesct_errors(joint_fake, risk_cli_args):
    with pytest.raises(BayesctError, match="0-24"):
        cmd_risk(risk_cli_args(joint_fake, ct_score=25, day=8, age=60, sex="male"))
    with pytest.raises(BayesctError, match="age"):
        cmd_risk(risk_cli_args(joint_fake, ct_score=5, day=8))


# -- (2), (4), (5) on a real fit to a simulated cohort with known truth -------------------------------


COVERAGE_POINTS = [
    (s, d, a, m)
    for (s, d) in [(2, 3), (6, 5), (10, 8), (14, 8), (8, 13), (16, 13), (12, 18), (20, 10)]
    for (a, m) in [(45, 0), (65, 1)]
]


@pytest.mark.slow
def test_intervals_cover_true_population_risk(sim_joint_fit):
    fit, params = sim_joint_fit
    covered = []
    for s, d, a, m in COVERAGE_POINTS:
        ds = risk_query(fit, ct_score=s, day=d, age=a, sex="male" if m else "female")
        truth = population_risk(params, s, d, a, m)
        covered.append(ds.attrs["lo"] <= truth <= ds.attrs["hi"])
    share = np.mean(covered)
    print(f"coverage of the true risk by 95% intervals: {sum(covered)}/{len(covered)}")
    assert share >= 0.8


@pytest.mark.slow
def test_grid_is_monotone_in_ct_score(sim_joint_fit):
    fit, _ = sim_joint_fit
    grid = risk_grid(fit, days=[3, 8, 13, 20], age=55, sex="female", max_draws=400)
    for _, block in grid.groupby("day"):
        assert np.all(np.diff(block.sort_values("ct_score")["median"].to_numpy()) >= -1e-9)


@pytest.mark.slow
def test_history_shifts_risk_sensibly(sim_joint_fit, tmp_path):
    fit, _ = sim_joint_fit
    rising = pd.DataFrame({"day": [3, 8, 13], "ct_score": [4, 10, 16], "nlr": [2.0, 4.0, 7.0]})
    flat = pd.DataFrame({"day": [3, 8, 13], "ct_score": [16, 16, 16], "nlr": [4.0, 4.0, 4.0]})
    kw = dict(age=60, sex="male", max_draws=400)
    r = risk_query(fit, history=rising, **kw)
    f = risk_query(fit, history=flat, **kw)
    last = risk_query(fit, ct_score=16, day=13, **kw)
    # death follows progression: a rising history is worse than a stable one ending at the same score
    assert r.attrs["median"] > f.attrs["median"]
    assert r.attrs["ess_min"] > risk.MIN_ESS and f.attrs["ess_min"] > risk.MIN_ESS
    # more scans pin the patient down: the risk's interval is narrower than from the last scan alone
    assert (r.attrs["hi"] - r.attrs["lo"]) < (last.attrs["hi"] - last.attrs["lo"]) or abs(
        r.attrs["median"] - last.attrs["median"]
    ) > 0.05
    pr = patient_risks(fit, max_draws=200)

    # patient-specific risks separate the outcomes better than a first scan alone
    def auc(x):
        u = stats.mannwhitneyu(x[pr.died == 1], x[pr.died == 0]).statistic
        return u / ((pr.died == 1).sum() * (pr.died == 0).sum())

    assert auc(pr["history_median"]) > auc(pr["population_median"])
    # a fit directory works as the first argument
    fit.save(tmp_path / "fit")
    again = risk_query(tmp_path / "fit", ct_score=16, day=13, **kw)
    assert again.attrs["median"] == pytest.approx(last.attrs["median"])


@pytest.mark.parametrize("fake", ["joint_fake", "joint_skew_fake"])
def test_history_log_marginal_is_the_integrated_likelihood(fake, request):
    """history_terms' log p(data | θ) equals a brute-force 2-D integral over the patient's effects."""
    from scipy.special import logsumexp

    from bayesct.risk import _lab_blocks, _lab_loglik, _patient_obs, history_terms

    pm = PosteriorModel.from_fit(request.getfixturevalue(fake))
    p, log_marginal = history_terms(pm, n_effects=4096, seed=3)
    assert p.shape == log_marginal.shape == (pm.n_draws, pm.design.n_patients)
    i = 0
    obs = _patient_obs(pm.design, i)
    grid = np.linspace(-7.0, 7.0, 141)
    z = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2)  # standard normal nodes
    log_w = -0.5 * (z**2).sum(-1) - np.log(2 * np.pi) + 2 * np.log(grid[1] - grid[0])
    L = np.linalg.cholesky(pm.covariance())
    if "severity_skew" in pm.draws:
        w = np.repeat(z[None], pm.n_draws, axis=0)
        for s_, eps in enumerate(pm.draws["severity_skew"]):
            w[s_, :, 0] = skewed_level(z[:, 0], eps)
        eff = np.einsum("sef,smf->sme", L, w)
    else:
        eff = np.einsum("sef,mf->sme", L, z)  # (S, M, 2) effects at the nodes
    m, A = risk._design_rows(pm, 0, obs.ct_day)
    eta = m[:, None, :] + eff @ A.transpose(0, 2, 1)
    ll = pm.ct_logp(obs.ct_score[None, None, :], eta).sum(-1)
    blocks, _ = _lab_blocks(pm, obs)
    for blk in blocks:
        ll = ll + _lab_loglik(blk, eff)
    exact = logsumexp(ll + log_w, axis=1)
    np.testing.assert_allclose(log_marginal[:, i], exact, atol=0.02)
