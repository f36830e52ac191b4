r"""PyMC graphs of the bayesct model families.

``joint`` family (specs ``joint``, ``ct_only``, ``descriptive``)
    For marker :math:`k`, patient :math:`i`, day :math:`t`:

    .. math::

        \eta_{kit} = c_k + f_k(t) + \lambda_k (u_{i0} + u_{i1} g(t)) + v_{ik}
        \quad\text{(factor structure)}

        \eta_{kit} = c_k + f_k(t) + b_{ik0} + b_{ik1} g(t)
        \quad\text{(full structure)}

    with :math:`f_k` a cubic B-spline with a random-walk prior on its
    coefficients, :math:`g(t) = (t - t_c)/t_s`, the shared severity
    :math:`u_i` (or all effects :math:`b_i`) drawn from one MvNormal with an
    LKJ-Cholesky covariance, non-centred. The CT score is beta-binomial with 24
    trials on :math:`\mathrm{logit}^{-1}\eta`; labs are normal (or Student-t) on
    their modelling scale. Mortality is logistic in the covariates and the
    association terms (latent CT value at the reference day, its slope, or the
    shared effects).

``scan_logistic`` family
    .. math::

        \mathrm{logit}\,P(\text{died}_i \mid \text{scan } j) = \alpha + \beta_1 x^{ct}_{ij}
        + \beta_2 x^{day}_{ij} + r_i, \quad r_i \sim N(0, \sigma_r)

Priors come from the spec; nothing numeric is hard-coded here but the
structural constants (24 CT trials, the CT loading fixed at 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayesct.constants import CT, CT_MAX, GROUP_LABELS
from bayesct.modeling.design import Design, spline_basis, time_transform
from bayesct.modeling.spec import ModelSpec

_PARAM_KEYS = {
    "Normal": ("mu", "sigma"),
    "HalfNormal": ("sigma",),
    "Exponential": ("lam",),
    "Gamma": ("alpha", "beta"),
    "StudentT": ("nu", "mu", "sigma"),
    "HalfStudentT": ("nu", "sigma"),
}


def prior_dist(spec: ModelSpec, pname: str, *, scale: np.ndarray | float | None = None) -> pm.Distribution:
    """An unnamed PyMC distribution for prior ``pname`` (``.dist``), scaled when marker_scaled."""
    p = spec.prior(pname)
    params: dict[str, Any] = dict(p.params)
    if p.marker_scaled and scale is not None:
        for key in ("sigma", "lam"):
            if key in params:
                params[key] = params[key] * scale if key == "sigma" else params[key] / scale
    cls = getattr(pm, p.dist)
    return cls.dist(**{k: params[k] for k in _PARAM_KEYS[p.dist] if k in params})


def prior_var(spec: ModelSpec, pname: str, *, scale=None, dims=None, name: str | None = None):
    """A named model variable with the spec's prior ``pname``."""
    p = spec.prior(pname)
    params: dict[str, Any] = dict(p.params)
    if p.marker_scaled and scale is not None:
        if "sigma" in params:
            params["sigma"] = params["sigma"] * np.asarray(scale)
        if "lam" in params:
            params["lam"] = params["lam"] / np.asarray(scale)
    cls = getattr(pm, p.dist)
    return cls(name or pname, **{k: params[k] for k in _PARAM_KEYS[p.dist] if k in params}, dims=dims)


def _lkj_eta(spec: ModelSpec, pname: str) -> float:
    p = spec.prior(pname)
    if p.dist != "LKJ":
        raise ValueError(f"prior {pname} must be LKJ")
    return float(p.params.get("eta", 2.0))


def _population_curves(spec: ModelSpec, design: Design, dims_prefix: tuple[str, ...]):
    """Spline coefficient matrix W (..., marker, basis), deviations from the marker's centre.

    Independent normal priors on the B-spline coefficients: the basis is a
    partition of unity, so the coefficients are the curve's values near their
    knots and a ridge prior keeps unidentified ends (days with no data) at the
    marker's centre. A random-walk prior mixed far worse (strongly correlated
    increments) for no gain in smoothness at these knot spacings.
    """
    scale = design.marker_scale
    dims = (*dims_prefix, "marker", "basis")
    return prior_var(spec, "spline_coef", scale=scale[:, None], dims=dims)


def build_joint(design: Design) -> pm.Model:
    """The PyMC model of the ``joint`` family for ``design``."""
    spec = design.spec
    coords = design.coords()
    ct, labs = design.ct, design.labs
    coords["ct_scan"] = list(range(len(ct.value)))
    coords["lab_value"] = list(range(len(labs.value)))
    by_group = spec.by_group
    if by_group:
        coords["group"] = [GROUP_LABELS[0], GROUP_LABELS[1]]
    K = len(design.markers)
    centre = design.marker_centre
    scale = design.marker_scale
    with pm.Model(coords=coords) as model:
        W = _population_curves(spec, design, ("group",) if by_group else ())
        B_ct = spline_basis(ct.day, spec)
        B_lab = spline_basis(labs.day, spec)
        g_ct = time_transform(ct.day, spec)
        g_lab = time_transform(labs.day, spec)
        if by_group:
            grp_ct = design.died[ct.patient]
            grp_lab = design.died[labs.patient]
            f_ct = pt.sum(B_ct * W[grp_ct, 0], axis=-1)
            f_lab = pt.sum(B_lab * W[grp_lab, labs.marker], axis=-1)
        else:
            f_ct = pt.dot(B_ct, W[0])
            f_lab = pt.sum(B_lab * W[labs.marker], axis=-1)

        if spec.structure == "factor":
            model.add_coord("effect", ["intercept", "slope"])
            chol, corr, _ = pm.LKJCholeskyCov(
                "severity_cov",
                n=2,
                eta=_lkj_eta(spec, "severity_corr"),
                sd_dist=_sd_dist(spec, "severity_sd", np.ones(2)),
            )
            # The intercept-slope correlation by name, for reports (the SDs get their effect
            # names as ``severity_sd`` after sampling, in fit.py).
            pm.Deterministic("severity_rho", corr[0, 1])
            z = pm.Normal("severity_z", 0.0, 1.0, dims=("patient", "effect"))
            u = pm.Deterministic("severity", pt.dot(z, chol.T), dims=("patient", "effect"))
            if K > 1:
                lam_lab = prior_var(spec, "loading", scale=scale[1:], dims="lab", name="loading_lab")
                lam = pm.Deterministic("loading", pt.concatenate([pt.ones(1), lam_lab]), dims="marker")
            else:
                lam = pt.ones(1)
            marginal = spec.specific_intercepts and K > 1 and spec.lab_likelihood == "lognormal"
            spec_sd = None
            if spec.specific_intercepts and K > 1:
                # Lab-specific patient intercepts only: the CT score's own patient deviation *is*
                # the shared severity, which pins the factor to the CT score (no second mode in
                # which the factor follows the labs and the CT score goes its own way).
                spec_sd = prior_var(spec, "specific_sd", scale=scale[1:], dims="lab")
            if spec.specific_intercepts and K > 1 and not marginal:
                zv = pm.Normal("specific_z", 0.0, 1.0, dims=("patient", "lab"))
                v_lab = pm.Deterministic("specific", zv * spec_sd, dims=("patient", "lab"))
                v = pt.concatenate([pt.zeros((design.n_patients, 1)), v_lab], axis=1)
            else:
                v = pt.zeros((design.n_patients, K))
            traj_ct = u[ct.patient, 0] + u[ct.patient, 1] * g_ct + v[ct.patient, 0]
            traj_lab = (
                lam[labs.marker] * (u[labs.patient, 0] + u[labs.patient, 1] * g_lab)
                + v[labs.patient, labs.marker]
            )
            g_ref = float(time_transform(np.array([spec.reference_day]), spec)[0])
            assoc_terms = {
                "value": u[:, 0] + u[:, 1] * g_ref + v[:, 0],
                "slope": u[:, 1],
            }
            shared = {"shared_intercept": u[:, 0], "shared_slope": u[:, 1]}
        else:
            slopes = [m for m in design.markers if m in spec.slopes]
            effects = [f"{m}:intercept" for m in design.markers] + [f"{m}:slope" for m in slopes]
            model.add_coord("effect", effects)
            e_scale = np.r_[scale, [scale[design.markers.index(m)] for m in slopes]]
            E = len(effects)
            if E > 1:
                chol, _, _ = pm.LKJCholeskyCov(
                    "re_cov", n=E, eta=_lkj_eta(spec, "re_corr"), sd_dist=_sd_dist(spec, "re_sd", e_scale)
                )
                z = pm.Normal("re_z", 0.0, 1.0, dims=("patient", "effect"))
                b = pm.Deterministic("re", pt.dot(z, chol.T), dims=("patient", "effect"))
            else:
                sd = prior_var(spec, "re_sd", scale=e_scale, dims="effect")
                z = pm.Normal("re_z", 0.0, 1.0, dims=("patient", "effect"))
                b = pm.Deterministic("re", z * sd, dims=("patient", "effect"))
            slope_col = np.full(K, -1)
            for j, m in enumerate(slopes):
                slope_col[design.markers.index(m)] = K + j
            b_pad = pt.concatenate([b, pt.zeros((design.n_patients, 1))], axis=1)  # column -1 = no slope
            traj_ct = b[ct.patient, 0] + b_pad[ct.patient, slope_col[0]] * g_ct
            traj_lab = b[labs.patient, labs.marker] + b_pad[labs.patient, slope_col[labs.marker]] * g_lab
            g_ref = float(time_transform(np.array([spec.reference_day]), spec)[0])
            ct_slope = b_pad[:, slope_col[0]]
            assoc_terms = {"value": b[:, 0] + ct_slope * g_ref, "slope": ct_slope}
            shared = {f"re[{e}]": b[:, j] for j, e in enumerate(effects)}

        eta_ct = centre[0] + f_ct + traj_ct
        mu_ct = pm.math.sigmoid(eta_ct)
        if spec.ct_likelihood == "beta_binomial":
            phi = prior_var(spec, "ct_phi")
            pm.BetaBinomial(
                "ct_obs",
                alpha=mu_ct * phi,
                beta=(1.0 - mu_ct) * phi,
                n=CT_MAX,
                observed=ct.value,
                dims="ct_scan",
            )
        else:
            pm.Binomial("ct_obs", n=CT_MAX, p=mu_ct, observed=ct.value, dims="ct_scan")

        if K > 1:
            eta_lab = centre[labs.marker] + f_lab + traj_lab
            noise = prior_var(spec, "noise_sd", scale=scale[1:], dims="lab")
            sd_obs = noise[labs.marker - 1]
            if spec.lab_likelihood == "student_t":
                nu = prior_var(spec, "lab_nu")
                pm.StudentT("lab_obs", nu=nu, mu=eta_lab, sigma=sd_obs, observed=labs.value, dims="lab_value")
            elif spec.structure == "factor" and spec_sd is not None:
                # Gaussian lab-specific intercepts integrated out analytically (compound-symmetric
                # normal per patient and lab): no funnel between specific_sd and the intercepts.
                pm.Potential(
                    "lab_obs",
                    pt.sum(lab_marginal_logp(labs.value - eta_lab, labs_groups(design), noise, spec_sd)),
                )
            else:
                pm.Normal("lab_obs", mu=eta_lab, sigma=sd_obs, observed=labs.value, dims="lab_value")

        if spec.mortality:
            terms: dict[str, pt.TensorVariable] = {}
            for a in spec.association:
                if a == "shared":
                    terms.update(shared)
                else:
                    terms[a] = assoc_terms[a]
            model.add_coord("association", list(terms))
            A = pt.stack(list(terms.values()), axis=1)
            a0 = prior_var(spec, "mort_intercept")
            gamma = prior_var(spec, "mort_gamma", dims="association")
            logit_p = a0 + pt.dot(A, gamma)
            if design.covariates.shape[1]:
                beta = prior_var(spec, "mort_beta", dims="covariate")
                logit_p = logit_p + pt.dot(design.covariates, beta)
            pm.Bernoulli("died_obs", logit_p=logit_p, observed=design.died, dims="patient")
    return model


def labs_groups(design: Design) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Group the lab values by (patient, lab): group id per value, and per group its lab, patient and size."""
    labs = design.labs
    key = labs.patient.astype(np.int64) * (len(design.markers) + 1) + labs.marker
    uniq, gid = np.unique(key, return_inverse=True)
    lab_of_group = (uniq % (len(design.markers) + 1)) - 1
    patient_of_group = uniq // (len(design.markers) + 1)
    size = np.bincount(gid, minlength=len(uniq)).astype(float)
    return gid, lab_of_group, patient_of_group, size


def lab_marginal_logp(resid, groups, noise_sd, specific_sd):
    """Log-density per (patient, lab) group of residuals ``y - eta`` with the intercept integrated out.

    For n values with residuals r, noise SD s and intercept SD t, the values are
    jointly normal with covariance s^2 I + t^2 J, whose log-density is
    -1/2 [n log 2 pi + (n-1) log s^2 + log(s^2 + n t^2) + (sum r^2 - t^2 (sum r)^2 / (s^2 + n t^2)) / s^2].
    Works on pytensor tensors and on numpy arrays alike (used again for LOO).
    """
    gid, lab_of_group, _, n = groups
    G = len(n)
    if isinstance(resid, np.ndarray):
        s1 = np.bincount(gid, weights=resid, minlength=G)
        s2 = np.bincount(gid, weights=resid**2, minlength=G)
        log = np.log
    else:
        s1 = pt.inc_subtensor(pt.zeros(G)[gid], resid)
        s2 = pt.inc_subtensor(pt.zeros(G)[gid], resid**2)
        log = pt.log
    s2_noise = noise_sd[lab_of_group] ** 2
    t2 = specific_sd[lab_of_group] ** 2
    denom = s2_noise + n * t2
    return -0.5 * (
        n * np.log(2 * np.pi) + (n - 1) * log(s2_noise) + log(denom) + (s2 - t2 * s1**2 / denom) / s2_noise
    )


def _sd_dist(spec: ModelSpec, pname: str, scale: np.ndarray):
    p = spec.prior(pname)
    params = dict(p.params)
    if p.dist != "HalfNormal":
        return prior_dist(spec, pname, scale=scale)
    sigma = params.get("sigma", 1.0) * (scale if p.marker_scaled else np.ones_like(scale))
    return pm.HalfNormal.dist(sigma=sigma, shape=len(scale))


def build_scan_logistic(design: Design) -> pm.Model:
    """The PyMC model of the ``scan_logistic`` family (Table 3 counterpart)."""
    spec = design.spec
    ct = design.ct
    ct_c, ct_s = spec.covariate_scaling.get(CT, (12.0, 6.0))
    day_c, day_s = spec.covariate_scaling.get("day", (10.0, 10.0))
    coords = design.coords()
    coords["scan"] = list(range(len(ct.value)))
    coords["term"] = ["ct_score", "day"]
    X = np.column_stack([(ct.value - ct_c) / ct_s, (ct.day - day_c) / day_s])
    with pm.Model(coords=coords) as model:
        a0 = prior_var(spec, "mort_intercept")
        beta = prior_var(spec, "mort_beta", dims="term")
        sd = prior_var(spec, "patient_sd")
        z = pm.Normal("patient_z", 0.0, 1.0, dims="patient")
        r = pm.Deterministic("patient_effect", z * sd, dims="patient")
        pm.Deterministic("coef_per_unit", beta / np.array([ct_s, day_s]), dims="term")
        logit_p = a0 + pt.dot(X, beta) + r[ct.patient]
        pm.Bernoulli("died_obs", logit_p=logit_p, observed=design.died[ct.patient], dims="scan")
    return model


def build_model(design: Design) -> pm.Model:
    """Dispatch on the spec's family."""
    if design.spec.family == "scan_logistic":
        return build_scan_logistic(design)
    return build_joint(design)
