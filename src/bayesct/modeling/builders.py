r"""PyMC graphs of the bayesct model families.

``joint`` family (specs ``joint``, ``ct_only``, ``descriptive``)
    For marker :math:`k`, patient :math:`i`, day :math:`t`:

    .. math::

        \eta_{kit} = c_k + f_k(t) + \lambda_k (u_{i0} + u_{i1} g(t)) + v_{ik}
        \quad\text{(factor structure)}

        \eta_{kit} = c_k + f_k(t) + b_{ik0} + b_{ik1} g(t)
        \quad\text{(full structure)}

    with :math:`f_k` a cubic B-spline with independent normal priors on its
    coefficients, :math:`g(t) = (t - t_c)/t_s`, the shared severity
    :math:`u_i` (or all effects :math:`b_i`) drawn from one MvNormal with an
    LKJ-Cholesky covariance, non-centred (with ``severity_law = "sinh_arcsinh"`` the
    severity level's standardised coordinate is skewed instead,
    :mod:`bayesct.effect_law`, the covariance unchanged). The CT score is beta-binomial (or
    binomial) with 24 trials on :math:`\mathrm{logit}^{-1}\eta`, or, with
    ``ct_likelihood = "zone_sum"``, the sum of six exchangeable lung zones, each
    ordinal 0-4 with :math:`P(Y_z \le j) = \mathrm{logit}^{-1}(c_j - \eta)`
    (shared cut-points centred on 0) and the total's pmf their exact convolution
    (:class:`bayesct.likelihoods.CTLikelihood`); labs are normal (or Student-t) on
    their modelling scale. Mortality is logistic in the covariates and the
    association terms (latent CT value at the reference day, its slope, or the
    shared effects); its likelihood runs over the patients of known outcome
    (``Design.known_patients``), while a patient still in hospital keeps their
    effects, informed by their scans and labs alone.

    The association terms are linear in the patient's effects :math:`e_i`, so the
    trajectory term is :math:`r_i = \sum_a \gamma_a A_{ia} = w^\top e_i` with
    :math:`w = M\gamma` (:math:`M` the terms at the unit effects). ``mort_assoc_sd``
    (a deterministic) is the log-odds of death per population SD of :math:`r_i`,
    :math:`\operatorname{sign}(w^\top \Sigma m)\sqrt{w^\top \Sigma w}` with
    :math:`\Sigma` the effects' covariance and :math:`m` the effect vector of the
    latent CT value at the reference day. Unlike the ``mort_gamma`` coefficients
    (value and slope are strongly correlated a posteriori), it does not depend on how
    the terms split the trajectory into value and slope: it is the effect to read.

    Sampled parameterisation (the same model): the standardised effects are the
    cohort mean plus zero-sum deviations, and the spline coefficients and the
    mortality intercept are sampled at the cohort-mean effects
    (``spline_coef_cohort``, ``mort_intercept_cohort``); ``spline_coef`` and
    ``mort_intercept`` are recorded as deterministics. Where the lab-specific
    intercepts are integrated out, their SD enters the likelihood only squared and is
    sampled signed (``specific_sd_signed``, see :func:`signed_scale_var`);
    ``specific_sd`` is its absolute value.

    Computation (the same model either way): by default the CT and lab likelihoods and
    the linear predictor of every observation are the fused kernels of
    :mod:`bayesct.modeling.kernels`; ``fused=False`` builds them from PyTensor
    operations, for backends that cannot run those kernels (JAX).

``scan_logistic`` family
    A weighted pseudo-likelihood, not a generative model: with :math:`n_i` the scans of
    patient :math:`i`,

    .. math::

        \mathrm{logit}\,p_{ij} = \alpha + \beta_1 x^{ct}_{ij} + \beta_2 x^{day}_{ij},
        \qquad \ell(\alpha, \beta) = \sum_i \frac{1}{n_i} \sum_{j=1}^{n_i}
        \log \operatorname{Bernoulli}(\text{died}_i \mid p_{ij}),

    so that each patient's outcome enters with total weight one (no patient intercept:
    with one outcome per patient it is not identified); the sum runs over the patients of
    known outcome.

Priors come from the spec; nothing numeric is hard-coded here but the
structural constants (24 CT trials, the CT loading fixed at 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pytensor.graph.basic import Variable

from bayesct.constants import CT, CT_MAX, CT_ZONES, GROUP_LABELS, N_ZONES, ZONE_MAX
from bayesct.data.labs import lab_direction
from bayesct.effect_law import standardised_from_normal
from bayesct.likelihoods import (
    PMF_FLOOR,
    beta_binomial_logpmf,
    cs_normal_logpdf,
    pytensor_ops,
    zone_draw,
    zone_sum_draw,
    zone_sum_pmf,
    zones_loglik,
)
from bayesct.modeling.design import (
    SCAN_TERMS,
    Design,
    linear_spline_coef,
    scan_term_scaling,
    scan_terms,
    scan_weights,
    spline_basis,
    time_transform,
    to_model_scale,
)
from bayesct.modeling.kernels import (
    beta_binomial_logit,
    lab_marginal,
    lab_size_pairs,
    linear_predictor,
    zone_sum_logit,
)
from bayesct.modeling.spec import ModelSpec, Prior, loading_magnitude_prior

#: The likelihoods' equations (bayesct.likelihoods) evaluated on PyTensor.
_PT = pytensor_ops()

_PARAM_KEYS = {
    "Normal": ("mu", "sigma"),
    "HalfNormal": ("sigma",),
    "Exponential": ("lam",),
    "Gamma": ("alpha", "beta"),
    "StudentT": ("nu", "mu", "sigma"),
    "HalfStudentT": ("nu", "sigma"),
}


def _scaled_params(
    spec: ModelSpec, pname: str, scale, prior: Prior | None = None
) -> tuple[str, dict[str, Any]]:
    """The distribution name and parameters of prior ``pname`` (or ``prior``), scaled by ``scale`` when marker_scaled."""
    p = prior if prior is not None else spec.prior(pname)
    params: dict[str, Any] = dict(p.params)
    if p.marker_scaled and scale is not None:
        s = scale if isinstance(scale, Variable) else np.asarray(scale)
        if "sigma" in params:
            params["sigma"] = params["sigma"] * s
        if "lam" in params:
            params["lam"] = params["lam"] / s
    return p.dist, params


def _keyword_args(dist: str, params: dict[str, Any]) -> dict[str, Any]:
    return {k: params[k] for k in _PARAM_KEYS[dist] if k in params}


def prior_dist(spec: ModelSpec, pname: str, *, scale: np.ndarray | float | None = None) -> pm.Distribution:
    """An unnamed PyMC distribution for prior ``pname`` (``.dist``), scaled when marker_scaled."""
    dist, params = _scaled_params(spec, pname, scale)
    return getattr(pm, dist).dist(**_keyword_args(dist, params))


#: Free variables at which every chain starts at its initial value, without the U(-1, 1)
#: jitter of the other coordinates. The shared severity starts at the CT score's own patient
#: deviations (:func:`ct_severity_start`) and the labs' loadings at 0, so that the factor takes
#: its sign from the CT score (whose loading is fixed at +1) before the labs can pull on it.
#: Started at random, a chain could let the labs set the factor's sign against the CT score: a
#: reflected mode in which the severity SDs shrink (to about 0.2 on 93 patients, 0.05 on
#: 10,000), the lab loadings grow by the same factor with their signs flipped, and the CT score
#: is left as overdispersed noise (phi about 2). The gates caught it: one nutpie chain in 4 on
#: 10,000 patients fully jittered, and 2 of PyMC's 4 chains on the default cohort with only the
#: loadings held at 0. With known loading signs (:func:`_lab_loadings`) the sampled
#: magnitudes ``loading_magnitude`` start unjittered at a tenth of their prior scale instead
#: (never at 0, which is -inf on their log scale).
UNJITTERED_START: tuple[str, ...] = ("loading_lab", "loading_magnitude", "severity_dev", "severity_mean")

#: The start of ``loading_magnitude`` (known loading signs), as a fraction of its prior scale.
LOADING_MAGNITUDE_START = 0.1


def _lab_loadings(spec: ModelSpec, design: Design, scale: pt.TensorVariable) -> pt.TensorVariable:
    """The labs' loadings on the shared severity, ``loading_lab`` (dims lab).

    ``random_effects.loading_signs = "free"``: ``loading_lab`` is sampled with the spec's
    ``loading`` prior. ``"known"``: ``loading_lab = direction[lab] * loading_magnitude``
    (a deterministic; the direction :func:`~bayesct.data.labs.lab_direction`: ``LAB_DIRECTION``
    or a declared lab's), with the magnitude sampled on the log scale under the half-distribution
    of the ``loading`` prior (:func:`~bayesct.modeling.spec.loading_magnitude_prior`). With
    the CT score's loading fixed at +1, no lab can then set the severity's sign against the
    CT score: the reflected mode (see :data:`UNJITTERED_START`) is outside the model.

    ``scale`` is the labs' scales as model data; the start is computed from the design's.
    """
    if spec.loading_signs == "free":
        return prior_var(spec, "loading", scale=scale, dims="lab", name="loading_lab")
    direction = np.array([lab_direction(m, design.declared_labs) for m in design.markers[1:]], dtype=float)
    prior = loading_magnitude_prior(spec.prior("loading"))
    dist, params = _scaled_params(spec, "loading", scale, prior=prior)
    _, start_params = _scaled_params(spec, "loading", design.marker_scale[1:], prior=prior)
    prior_scale = start_params["sigma"] if "sigma" in start_params else 1.0 / start_params["lam"]
    start = LOADING_MAGNITUDE_START * np.broadcast_to(
        np.asarray(prior_scale, dtype=float), len(design.markers) - 1
    )
    magnitude = getattr(pm, dist)(
        "loading_magnitude", **_keyword_args(dist, params), dims="lab", initval=start.copy()
    )
    return pm.Deterministic("loading_lab", pm.Data("lab_direction", direction) * magnitude, dims="lab")


# Half-distributions and the symmetric distribution whose absolute value has that law.
_SIGNED = {"HalfNormal": "Normal", "HalfStudentT": "StudentT"}
SIGNED_SUFFIX = "_signed"


def signed_scale_var(spec: ModelSpec, pname: str, *, scale=None, dims=None) -> pt.TensorVariable:
    """A scale parameter sampled as a signed variable ``x``; ``pname`` = |x| is recorded as a deterministic.

    If ``x`` ~ Normal(0, sigma) then |x| ~ HalfNormal(sigma) (likewise StudentT and
    HalfStudentT), so this is the spec's prior. Use it only where the likelihood depends on
    ``x**2`` alone: the posterior is then symmetric in the sign of ``x`` and smooth at 0,
    where the usual log transform stretches a scale whose posterior reaches 0 into a long
    tail that NUTS explores slowly. On the default cohort the lab-specific intercept SD of
    the NLR had a tail ESS of 68-548 of 4,000 draws at two of three seeds with the log
    transform, and over 2,300 signed. The signed variable (``<pname>_signed``) is
    bimodal when the posterior stays away from 0, so it is dropped from stored results and
    never judged by the gates; ``pname`` is.
    """
    half, params = _scaled_params(spec, pname, scale)
    dist = _SIGNED[half]
    x = getattr(pm, dist)(pname + SIGNED_SUFFIX, **_keyword_args(dist, params | {"mu": 0.0}), dims=dims)
    pm.Deterministic(pname, pt.abs(x), dims=dims)
    return x


def prior_var(spec: ModelSpec, pname: str, *, scale=None, dims=None, name: str | None = None, shift=None):
    """A named model variable with the spec's prior ``pname``.

    ``shift`` moves the prior's location (``mu``) by a tensor: the variable is then
    ``x + shift`` for ``x`` with the spec's prior, the change of variables used by the
    cohort-mean reparameterisation (see :func:`_cohort_mean_split`).
    """
    dist, params = _scaled_params(spec, pname, scale)
    if shift is not None:
        if "mu" not in _PARAM_KEYS[dist]:
            raise ValueError(f"prior {pname} must be a location family (Normal or StudentT), not {dist}")
        params["mu"] = params.get("mu", 0.0) + shift
    return getattr(pm, dist)(name or pname, **_keyword_args(dist, params), dims=dims)


def _lkj_eta(spec: ModelSpec, pname: str) -> float:
    p = spec.prior(pname)
    if p.dist != "LKJ":
        raise ValueError(f"prior {pname} must be LKJ")
    return float(p.params.get("eta", 2.0))


def _population_curves(spec: ModelSpec, scale: pt.TensorVariable, dims_prefix: tuple[str, ...], shift):
    """Spline coefficient matrix W (..., marker, basis), deviations from the marker's centre.

    Independent normal priors on the B-spline coefficients: the basis is a
    partition of unity, so the coefficients are the curve's values near their
    knots and a ridge prior keeps unidentified ends (days with no data) at the
    marker's centre. A random-walk prior mixed far worse (strongly correlated
    increments) for no gain in smoothness at these knot spacings.

    The sampled variable is ``spline_coef_cohort = W + shift``, the curve of the
    cohort's average patient, which the data pin down; ``spline_coef`` (W, the
    population curve) is a deterministic. Same model, better geometry
    (:func:`_cohort_mean_split`). ``scale`` is the markers' scales (model data).
    """
    dims = (*dims_prefix, "marker", "basis")
    W_cohort = prior_var(
        spec, "spline_coef", scale=scale[:, None], dims=dims, name="spline_coef_cohort", shift=shift
    )
    return pm.Deterministic("spline_coef", W_cohort - shift, dims=dims)


def ct_severity_start(design: Design) -> np.ndarray:
    """Initial values of the shared severity, ``(patient, effect)``: each patient's CT score deviation.

    The intercept is the mean over the patient's scans of the empirical logit CT score minus
    the cohort's centre (0 for a patient without a scan); the slope starts at 0. Only the
    starting point of the sampler depends on it, never the model.
    """
    n = design.n_patients
    ct = design.ct
    dev = to_model_scale(CT, ct.value) - design.marker_centre[0]
    total = np.bincount(ct.patient, weights=dev, minlength=n)
    count = np.bincount(ct.patient, minlength=n)
    intercept = np.divide(total, count, out=np.zeros(n), where=count > 0)
    return np.c_[intercept, np.zeros(n)]


def _cohort_mean_split(
    name: str, start: np.ndarray | None = None
) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    """Standard-normal patient effects ``z[patient, effect]`` as cohort mean plus zero-sum deviations.

    ``z = dev + mean`` with ``dev ~ ZeroSumNormal(1)`` over patients and ``mean ~ N(0, 1/sqrt(n))``
    has exactly the law of iid N(0, 1) effects (the sample mean of iid normals is
    independent of the deviations from it). The cohort mean of the effects trades off
    against the level and trend of every population curve and against the mortality
    intercept: a ridge along ~190 coordinates that a diagonal mass matrix cannot follow.
    Sampling the curves and the intercept *at the cohort mean* instead (``*_cohort``,
    with their priors shifted by the same amount: a unit-Jacobian change of variables)
    leaves ``mean`` almost alone with its prior. On the default cohort (joint spec, nutpie,
    4 x 1500 draws, seed 0) the bulk ESS of the cohort-mean severity intercept went from
    374 to over 7,000 and the minimum over the gated parameters from 607 to 914; PyMC's
    sampler, which had left one chain in another mode at that seed, converged.

    ``start`` (``(patient, effect)``), when given, is the initial value of ``z``.
    """
    dev_start = mean_start = None
    if start is not None:
        mean_start = start.mean(axis=0)
        dev_start = (start - mean_start).T
    n_patients = pm.modelcontext(None).dim_lengths["patient"]
    dev = pm.ZeroSumNormal(f"{name}_dev", sigma=1.0, dims=("effect", "patient"), initval=dev_start)
    mean = pm.Normal(f"{name}_mean", 0.0, 1.0 / pt.sqrt(n_patients), dims="effect", initval=mean_start)
    return dev.T + mean[None, :], mean


def build_joint(design: Design, *, fused: bool = True) -> pm.Model:
    """The PyMC model of the ``joint`` family for ``design``.

    ``fused`` computes the CT and lab likelihoods with the kernels of
    :mod:`bayesct.modeling.kernels` (numba and C modes); ``False`` builds the same
    densities from PyTensor operations (any mode, JAX included).

    Every array computed from the cohort enters the graph as model data (``pm.Data``)
    and every size as a dimension length, never as a constant: the log-density of a spec
    is one graph whatever the cohort, so that one compilation serves every cohort
    (:mod:`bayesct.modeling.nutpie_cache`). Only choices of the model's structure (the
    markers, the covariates, whether the scans have zones) shape it.
    """
    spec = design.spec
    coords = design.coords()
    ct, labs = design.ct, design.labs
    coords["ct_scan"] = list(range(len(ct.value)))
    coords["lab_value"] = list(range(len(labs.value)))
    by_group = spec.by_group
    if by_group:
        coords["group"] = [GROUP_LABELS[0], GROUP_LABELS[1]]
    K = len(design.markers)
    c_lin = linear_spline_coef(spec)  # B(t) @ c_lin = g(t) within the boundary
    g_ref = float(time_transform(np.array([spec.reference_day]), spec)[0])
    # Every observation, CT scores first: its patient and marker (0 = CT score).
    obs_patient = np.r_[ct.patient, labs.patient]
    obs_marker = np.r_[np.zeros(len(ct.patient), dtype=np.int64), labs.marker]
    # Every bounded parameter is sampled through a transform (or signed), so PyMC's support
    # checks can never fail: check_bounds=False drops them from the compiled log-density.
    with pm.Model(coords=coords, check_bounds=False) as model:
        n_patients = model.dim_lengths["patient"]
        scale = pm.Data("marker_scale", design.marker_scale)
        if spec.structure == "factor":
            model.add_coord("effect", ["intercept", "slope"])
            chol, corr, _ = pm.LKJCholeskyCov(
                "severity_cov",
                n=2,
                eta=_lkj_eta(spec, "severity_corr"),
                sd_dist=_sd_dist(spec, "severity_sd", np.ones(2), 2),
            )
            # The intercept-slope correlation by name, for reports (the SDs get their effect
            # names as ``severity_sd`` after sampling, in fit.py).
            pm.Deterministic("severity_rho", corr[0, 1])
            # The chol starts near the identity, so z's start is the severity's (UNJITTERED_START).
            z, z_mean = _cohort_mean_split("severity", ct_severity_start(design))
            if spec.severity_law == "sinh_arcsinh":
                # The level's standardised coordinate is a smooth increasing map of the normal z
                # (bayesct.effect_law); the curves are then centred at the mapped effects' mean.
                skew = prior_var(spec, "severity_skew")
                w0 = standardised_from_normal(z[:, 0], skew, pt)
                z = pt.stack([w0, z[:, 1]], axis=1)
                z_mean = pt.mean(z, axis=0)
            u = pm.Deterministic("severity", pt.dot(z, chol.T), dims=("patient", "effect"))
            u_mean = pt.dot(chol, z_mean)  # the cohort mean of the severity effects
            if K > 1:
                lam_lab = _lab_loadings(spec, design, scale[1:])
                lam = pm.Deterministic("loading", pt.concatenate([pt.ones(1), lam_lab]), dims="marker")
            else:
                lam = pt.ones(1)
            # What the cohort-mean severity adds to every marker's curve, as spline coefficients.
            curve_shift = lam[:, None] * (u_mean[0] + u_mean[1] * c_lin[None, :])
            marginal = spec.specific_intercepts and K > 1 and spec.lab_likelihood == "lognormal"
            spec_sd = None
            if spec.specific_intercepts and K > 1:
                # Lab-specific patient intercepts only: the CT score's own patient deviation *is*
                # the shared severity, which pins the factor to the CT score (a second mode in which
                # the factor follows the labs and the CT score goes its own way then needs the CT
                # score to be nearly pure noise; with free loading signs a chain can still settle
                # there, see the README; known signs, _lab_loadings, exclude it).
                # With the intercepts integrated out only specific_sd**2 enters the likelihood,
                # so it can be sampled signed (signed_scale_var): no boundary at 0 to mix into.
                if marginal and spec.prior("specific_sd").dist in _SIGNED:
                    spec_sd = signed_scale_var(spec, "specific_sd", scale=scale[1:], dims="lab")
                else:
                    spec_sd = prior_var(spec, "specific_sd", scale=scale[1:], dims="lab")
            if spec.specific_intercepts and K > 1 and not marginal:
                zv = pm.Normal("specific_z", 0.0, 1.0, dims=("patient", "lab"))
                v_lab = pm.Deterministic("specific", zv * spec_sd, dims=("patient", "lab"))
                v = pt.concatenate([pt.zeros((n_patients, 1)), v_lab], axis=1)
            else:
                v = None
            # Trajectory of observation j: loading[marker] (u[patient, 0] + u[patient, 1] g(t)),
            # read from the flat effects (see _predictor below).
            effects_flat, loading_vec = u.ravel(), lam
            a_idx = 2 * obs_patient
            b_idx = a_idx + 1
            extra_lab = None
            if v is not None:
                extra_lab = v.ravel()[pm.Data("lab_specific_idx", labs.patient * K + labs.marker)]

            # for the mortality terms: effects, effects padded for "no slope", CT slope column
            effects_pat, effects_pat_pad, effects_mean, effects_mean_pad = u, u, u_mean, u_mean
            ct_slope_col, shared_names = 1, ["shared_intercept", "shared_slope"]
        else:
            slopes = [m for m in design.markers if m in spec.slopes]
            effects = [f"{m}:intercept" for m in design.markers] + [f"{m}:slope" for m in slopes]
            model.add_coord("effect", effects)
            e_scale = pt.concatenate([scale, scale[[design.markers.index(m) for m in slopes]]])
            E = len(effects)
            z, z_mean = _cohort_mean_split("re")
            if E > 1:
                chol, _, _ = pm.LKJCholeskyCov(
                    "re_cov", n=E, eta=_lkj_eta(spec, "re_corr"), sd_dist=_sd_dist(spec, "re_sd", e_scale, E)
                )
                b = pm.Deterministic("re", pt.dot(z, chol.T), dims=("patient", "effect"))
                b_mean = pt.dot(chol, z_mean)
            else:
                sd = prior_var(spec, "re_sd", scale=e_scale, dims="effect")
                b = pm.Deterministic("re", z * sd, dims=("patient", "effect"))
                b_mean = z_mean * sd
                chol = pt.diag(sd)  # the effects' covariance factor, for mort_assoc_sd
            slope_col = np.full(K, -1)
            for j, m in enumerate(slopes):
                slope_col[design.markers.index(m)] = K + j
            # Effect j moves marker k's curve by b_mean[j] times a constant (intercept) or g (slope).
            shift_basis = np.zeros((E, K, c_lin.size))
            shift_basis[np.arange(K), np.arange(K)] = 1.0
            for j, m in enumerate(slopes):
                shift_basis[K + j, design.markers.index(m)] = c_lin
            curve_shift = pt.tensordot(b_mean, shift_basis, axes=1)
            b_pad = pt.concatenate([b, pt.zeros((n_patients, 1))], axis=1)  # column -1 = no slope
            slope_idx = np.where(slope_col < 0, E, slope_col)
            # Trajectory of observation j: b[patient, marker] + b_pad[patient, slope column] g(t).
            effects_flat, loading_vec, extra_lab = b_pad.ravel(), pt.ones(K), None
            a_idx = obs_patient * (E + 1) + obs_marker
            b_idx = obs_patient * (E + 1) + slope_idx[obs_marker]
            effects_pat, effects_pat_pad = b, b_pad
            effects_mean, effects_mean_pad = b_mean, pt.concatenate([b_mean, pt.zeros(1)])
            ct_slope_col, shared_names = int(slope_col[0]), [f"re[{e}]" for e in effects]

        W = _population_curves(spec, scale, ("group",) if by_group else (), curve_shift)
        # The curves at the distinct observation days, flattened as ([group,] marker, day).
        days, day_idx = np.unique(np.r_[ct.day, labs.day], return_inverse=True)
        D = len(days)
        curves = pt.matmul(W, pm.Data("day_basis", spline_basis(days, spec)).T).ravel()
        curve_idx = obs_marker * D + day_idx
        if by_group:
            curve_idx = curve_idx + design.died[obs_patient].astype(np.int64) * K * D
        predictor_data = {
            "offset": design.marker_centre[obs_marker],
            "curve_idx": curve_idx,
            "loading_idx": obs_marker,
            "a_idx": a_idx,
            "b_idx": b_idx,
            "time": np.r_[time_transform(ct.day, spec), time_transform(labs.day, spec)],
        }
        predictor_data = {k: pm.Data(f"obs_{k}", v) for k, v in predictor_data.items()}
        ct_value = pm.Data("ct_values", ct.value.astype(np.int64))
        n_ct = ct_value.shape[0]
        eta_ct, eta_lab = _predictor(curves, effects_flat, loading_vec, predictor_data, n_ct, fused)
        if extra_lab is not None:
            eta_lab = eta_lab + extra_lab

        if spec.ct_likelihood == "beta_binomial":
            phi = prior_var(spec, "ct_phi")
            pm.CustomDist(
                "ct_obs",
                eta_ct,
                phi,
                logp=_beta_binomial_logit_fused if fused else _beta_binomial_logit_logp,
                random=_beta_binomial_logit_random,
                dtype="int64",
                observed=ct_value,
                dims="ct_scan",
            )
        elif spec.ct_likelihood == "zone_sum":
            cutpoints = zone_cutpoints(spec)
            if not design.has_zones:
                pm.CustomDist(
                    "ct_obs",
                    eta_ct,
                    cutpoints,
                    logp=_zone_sum_fused if fused else zone_sum_logp,
                    random=_zone_sum_random,
                    signature="(),(c)->()",
                    dtype="int64",
                    observed=ct_value,
                    dims="ct_scan",
                )
            else:
                # The zones themselves where a scan has all six (each on the severity plus its
                # zone's offset), the total where it has not; the offsets sum to 0 over the zones.
                assert design.ct_zones is not None
                has = design.ct_zones[:, 0] >= 0
                model.add_coord("zone", list(CT_ZONES))
                offsets = pm.ZeroSumNormal(
                    "ct_zone_offset", sigma=spec.prior("ct_zone_offset").params["sigma"], dims="zone"
                )
                model.add_coord("ct_zone_scan", np.flatnonzero(has).tolist())
                pm.CustomDist(
                    "ct_zone_obs",
                    eta_ct[pm.Data("ct_zone_rows", np.flatnonzero(has))],
                    cutpoints,
                    offsets,
                    logp=zones_logp,
                    random=_zones_random,
                    signature="(),(c),(z)->(z)",
                    dtype="int64",
                    observed=pm.Data("ct_zone_value", design.ct_zones[has].astype(np.int64)),
                    dims=("ct_zone_scan", "zone"),
                )
                if (~has).any():
                    model.add_coord("ct_total_scan", np.flatnonzero(~has).tolist())
                    pm.CustomDist(
                        "ct_obs",
                        eta_ct[pm.Data("ct_total_rows", np.flatnonzero(~has))],
                        cutpoints,
                        offsets,
                        logp=zone_sum_logp,
                        random=_zone_sum_random,
                        signature="(),(c),(z)->()",
                        dtype="int64",
                        observed=pm.Data("ct_total_value", ct.value[~has].astype(np.int64)),
                        dims="ct_total_scan",
                    )
        else:
            pm.Binomial("ct_obs", n=CT_MAX, logit_p=eta_ct, observed=ct_value, dims="ct_scan")

        if K > 1:
            noise = prior_var(spec, "noise_sd", scale=scale[1:], dims="lab")
            sd_obs = noise[pm.Data("lab_idx", labs.marker - 1)]
            lab_value = pm.Data("lab_values", labs.value)
            if spec.lab_likelihood == "student_t":
                nu = prior_var(spec, "lab_nu")
                pm.StudentT("lab_obs", nu=nu, mu=eta_lab, sigma=sd_obs, observed=lab_value, dims="lab_value")
            elif spec.structure == "factor" and spec_sd is not None:
                # Gaussian lab-specific intercepts integrated out analytically (compound-symmetric
                # normal per patient and lab): no funnel between specific_sd and the intercepts.
                groups = labs_groups(design)
                names = ("group", "lab_of_group", "patient_of_group", "group_size")
                groups_t = tuple(pm.Data(f"lab_{n}", g) for n, g in zip(names, groups, strict=True))
                pair_names = ("pair_of_group", "pair_lab", "pair_n")
                pairs = lab_size_pairs(groups)[:3]
                pairs_t = (*(pm.Data(f"lab_{n}", x) for n, x in zip(pair_names, pairs, strict=True)), None)
                pm.Potential(
                    "lab_obs",
                    lab_marginal(eta_lab, noise, spec_sd, lab_value, groups_t, pairs_t)
                    if fused
                    else pt.sum(lab_marginal_logp(lab_value - eta_lab, groups_t, noise, spec_sd)),
                )
            else:
                pm.Normal("lab_obs", mu=eta_lab, sigma=sd_obs, observed=lab_value, dims="lab_value")

        if spec.mortality:

            def chosen_terms(e, e_pad) -> dict:
                """The latent CT value at the reference day ("value") and its slope."""
                ct_slope = e_pad[..., ct_slope_col]
                return {"value": e[..., 0] + ct_slope * g_ref, "slope": ct_slope}

            def mortality_terms(e, e_pad) -> dict:
                """The association terms the spec selects, in its order; linear in the effects."""
                chosen = chosen_terms(e, e_pad)
                shared = {name: e[..., j] for j, name in enumerate(shared_names)}
                out: dict = {}
                for a in spec.association:
                    out.update(shared if a == "shared" else {a: chosen[a]})
                return out

            terms = mortality_terms(effects_pat, effects_pat_pad)
            model.add_coord("association", list(terms))
            A = pt.stack(list(terms.values()), axis=1)
            A_mean = pt.stack(list(mortality_terms(effects_mean, effects_mean_pad).values()))
            gamma = prior_var(spec, "mort_gamma", dims="association")
            # Sampled at the cohort-mean effects, like the curves (_cohort_mean_split).
            mean_shift = pt.dot(A_mean, gamma)
            a0_cohort = prior_var(spec, "mort_intercept", name="mort_intercept_cohort", shift=mean_shift)
            pm.Deterministic("mort_intercept", a0_cohort - mean_shift)
            logit_p = a0_cohort + pt.dot(A - A_mean, gamma)
            if design.covariates.shape[1]:
                beta = prior_var(spec, "mort_beta", dims="covariate")
                logit_p = logit_p + pt.dot(pm.Data("covariates", design.covariates), beta)
            # The patients of known outcome only; the others keep their effects, informed by
            # their scans and labs alone.
            # Its shape is the known patients' (not the length of its dimension, which is named
            # ``patient`` or ``outcome_patient``): one graph whether or not some are unknown.
            known = design.known_patients
            logit_known = logit_p[pm.Data("known_patients", known)]
            pm.Bernoulli(
                "died_obs",
                logit_p=logit_known,
                observed=pm.Data("died_known", design.died[known].astype(np.int64)),
                shape=logit_known.shape,
                dims=design.outcome_dim,
            )
            # The combined association effect, a derived quantity only (not in the log-density):
            # the patient's term r_i = A_i . gamma = w . e_i is linear in its effects e_i, with
            # w = M gamma and M (effect x association) the terms at the unit effects. Its
            # population SD is sd_r = sqrt(w' Sigma w) = ||chol' w|| (Sigma = chol chol'), and
            # mort_assoc_sd = sign(w' Sigma m) sd_r, the log-odds of death per SD of r, signed by
            # how r moves with the latent CT value at the reference day (m, its effect vector).
            # The same whichever way the terms split value and slope (gamma alone is not).
            n_eff = len(model.coords["effect"])
            unit, unit_pad = np.eye(n_eff), np.c_[np.eye(n_eff), np.zeros(n_eff)]
            M = np.stack(list(mortality_terms(unit, unit_pad).values()), axis=1)
            m_value = chosen_terms(unit, unit_pad)["value"]
            w_chol = pt.dot(chol.T, pt.dot(M, gamma))
            direction = pt.dot(w_chol, pt.dot(chol.T, m_value))
            pm.Deterministic("mort_assoc_sd", pt.sign(direction) * pt.sqrt(pt.sum(pt.square(w_chol))))
    return model


def _predictor(curves, effects, loading, data: dict[str, Any], split: Any, fused: bool) -> list:
    """The linear predictors of the CT scores (the first ``split``) and of the lab values.

    Observation j: ``offset + curves[curve_idx] + loading[loading_idx] (effects[a_idx] +
    effects[b_idx] time)``; fused, one :class:`~bayesct.modeling.kernels.LinearPredictor`
    node, else one-dimensional gathers (whose gradients are scatter-adds).
    """
    if fused:
        return linear_predictor(curves, effects, loading, data, split)
    eta = (
        data["offset"]
        + curves[data["curve_idx"]]
        + loading[data["loading_idx"]] * (effects[data["a_idx"]] + effects[data["b_idx"]] * data["time"])
    )
    return [eta[:split], eta[split:]]


def labs_groups(design: Design) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Group the lab values by (patient, lab): group id per value, and per group its lab, patient and size."""
    labs = design.labs
    key = labs.patient.astype(np.int64) * (len(design.markers) + 1) + labs.marker
    uniq, gid = np.unique(key, return_inverse=True)
    lab_of_group = (uniq % (len(design.markers) + 1)) - 1
    patient_of_group = uniq // (len(design.markers) + 1)
    size = np.bincount(gid, minlength=len(uniq)).astype(float)
    return gid, lab_of_group, patient_of_group, size


def beta_binomial_logp(value, mu, phi):
    """Beta-binomial log-pmf of ``value`` out of 24 with mean ``mu`` and precision ``phi`` (a scalar):
    :func:`bayesct.likelihoods.beta_binomial_logpmf` on PyTensor.

    PyMC's ``BetaBinomial(alpha=mu phi, beta=(1 - mu) phi)`` is the same density, but spends
    six ``gammaln`` per score; with ``alpha + beta = phi`` two of them depend on ``phi`` alone,
    which PyTensor then evaluates once per call.
    """
    return beta_binomial_logpmf(value, mu, phi, _PT)


def _beta_binomial_logit_logp(value, eta, phi):
    """:func:`beta_binomial_logp` on the logit scale, from PyTensor operations."""
    return beta_binomial_logp(value, pm.math.sigmoid(eta), phi)


def _beta_binomial_logit_fused(value, eta, phi):
    """:func:`_beta_binomial_logit_logp` through the fused kernel (``phi`` one value, which
    CustomDist hands over broadcast to shape (1,))."""
    return beta_binomial_logit(eta, pt.as_tensor_variable(phi).reshape(()), value, CT_MAX)


def _beta_binomial_logit_random(eta, phi, rng=None, size=None):
    mu = 1.0 / (1.0 + np.exp(-eta))
    p = rng.beta(mu * phi, (1.0 - mu) * phi, size=size)
    return rng.binomial(CT_MAX, p, size=size)


def zone_cutpoints(spec: ModelSpec) -> pt.TensorVariable:
    """The four shared zone cut-points of ``ct_likelihood = "zone_sum"``, centred on 0.

    The CT curve's own level is free (its spline coefficients), so the cut-points carry
    only their spacing: three positive gaps with the spec's ``ct_cut_gap`` prior, the
    cut-points their cumulative sums shifted to mean 0 (recorded as ``ct_cutpoints``).
    """
    model = pm.modelcontext(None)
    model.add_coord("ct_gap", [f"{j}-{j + 1}" for j in range(ZONE_MAX - 1)])
    model.add_coord("ct_cut", list(range(ZONE_MAX)))
    gaps = prior_var(spec, "ct_cut_gap", dims="ct_gap")
    cum = pt.concatenate([pt.zeros(1), pt.cumsum(gaps)])
    return pm.Deterministic("ct_cutpoints", cum - cum.mean(), dims="ct_cut")


def _shared(x):
    """A shared parameter vector that CustomDist may hand over broadcast to (1 or n, k)."""
    return x[0] if x.ndim == 2 else x


def zone_sum_logp(value, eta, cutpoints, offsets=None):
    """Log-pmf of CT totals ``value`` as the sum of six cumulative-logit zones (exchangeable, or
    zone z on ``eta + offsets[z]``): :func:`bayesct.likelihoods.zone_sum_pmf` on PyTensor,
    floored before the log as :meth:`~bayesct.likelihoods.CTLikelihood.logpmf` floors it."""
    offsets = None if offsets is None else _shared(offsets)
    pmf = zone_sum_pmf(eta, _shared(cutpoints), offsets, _PT)
    return pt.log(pt.maximum(pmf[pt.arange(pmf.shape[0]), value], PMF_FLOOR))


def zones_logp(value, eta, cutpoints, offsets):
    """Log-likelihood of observed zone scores ``value`` (n, 6), summed over the zones of each scan:
    :func:`bayesct.likelihoods.zones_loglik` on PyTensor."""
    return zones_loglik(value, eta, _shared(cutpoints), _shared(offsets), _PT)


def _zones_random(eta, cutpoints, offsets, rng=None, size=None):
    return zone_draw(rng, np.broadcast_to(eta, size) if size else eta, cutpoints, offsets)


def _zone_sum_fused(value, eta, cutpoints):
    """:func:`zone_sum_logp` (exchangeable zones) through the fused kernel."""
    return zone_sum_logit(eta, _shared(cutpoints), value, N_ZONES)


def _zone_sum_random(eta, cutpoints, *offsets, rng=None, size=None):
    """Totals of six zones (exchangeable, or with the zone ``offsets`` when given)."""
    return zone_sum_draw(rng, np.broadcast_to(eta, size) if size else eta, cutpoints, *offsets)


def lab_marginal_logp(resid, groups, noise_sd, specific_sd):
    """Log-density per (patient, lab) group of residuals ``y - eta`` with the intercept integrated out:
    :func:`bayesct.likelihoods.cs_normal_logpdf` of each group's sums.

    Works on pytensor tensors (the unfused graph) and on numpy arrays (LOO) alike.
    """
    gid, lab_of_group, _, n = groups
    if isinstance(resid, np.ndarray):
        G = len(n)
        s1 = np.bincount(gid, weights=resid, minlength=G)
        s2 = np.bincount(gid, weights=resid**2, minlength=G)
        log = np.log
    else:
        G = n.shape[0]
        s1 = pt.inc_subtensor(pt.zeros(G)[gid], resid)
        s2 = pt.inc_subtensor(pt.zeros(G)[gid], resid**2)
        log = pt.log
    return cs_normal_logpdf(n, s1, s2, noise_sd[lab_of_group], specific_sd[lab_of_group], log=log)


def _sd_dist(spec: ModelSpec, pname: str, scale, n: int):
    """The SD prior of an ``n``-dimensional LKJ-Cholesky covariance (``scale`` may be model data)."""
    p = spec.prior(pname)
    params = dict(p.params)
    if p.dist != "HalfNormal":
        return prior_dist(spec, pname, scale=scale)
    sigma = params.get("sigma", 1.0) * (scale if p.marker_scaled else 1.0)
    return pm.HalfNormal.dist(sigma=sigma, shape=n)


def build_scan_logistic(design: Design) -> pm.Model:
    """The PyMC model of the ``scan_logistic`` family (Table 3 counterpart), a weighted pseudo-likelihood.

    Each scan :math:`j` of patient :math:`i` has the log-odds of the patient's death
    ``mort_intercept + mort_beta . x_ij`` (:func:`scan_terms`); its Bernoulli log-likelihood
    enters the log-density weighted by :math:`1/n_i` (:func:`scan_weights`, :math:`n_i` the
    patient's number of scans), through the ``pm.Potential`` ``died_weighted_loglik`` (one
    value per scan of a patient of known outcome; ``scan`` holds their indices in
    ``design.ct``), so that each patient's outcome counts once in total rather than once per
    scan. This is a pseudo-likelihood, not the density of a generative model: there is no
    observed node, and prior or posterior predictive sampling replicates no deaths.

    Where each scan's log-odds is right, the variance of a patient's weighted score is at most
    its weighted curvature (the variance of a mean is at most the mean of the variances), so
    the posterior is asymptotically no narrower than the robust (sandwich) interval; with
    unweighted per-scan terms its variance could be up to :math:`n_i` times too small. There is no
    patient intercept: with one outcome per patient its SD is not identified.
    """
    spec = design.spec
    ct = design.ct
    # the scans of the patients of known outcome (the others carry no death term)
    scans = np.flatnonzero(design.outcome_known[ct.patient])
    coords = design.coords()
    coords["scan"] = scans.tolist()
    coords["term"] = list(SCAN_TERMS)
    X = scan_terms(spec, ct.value[scans], ct.day[scans])
    sign = 2.0 * design.died[ct.patient[scans]] - 1.0  # +1 died, -1 survived
    weight = scan_weights(ct.patient)[scans]
    with pm.Model(coords=coords) as model:
        a0 = prior_var(spec, "mort_intercept")
        beta = prior_var(spec, "mort_beta", dims="term")
        pm.Deterministic("coef_per_unit", beta / scan_term_scaling(spec)[1], dims="term")
        logit_p = a0 + pt.dot(pm.Data("scan_terms", X), beta)
        # log Bernoulli(died | expit(logit_p)) = -log(1 + exp(-sign * logit_p))
        weight, sign = pm.Data("scan_weight", weight), pm.Data("scan_sign", sign)
        pm.Potential("died_weighted_loglik", -weight * pt.log1pexp(-sign * logit_p), dims="scan")
    return model


def build_model(design: Design, *, fused: bool = True) -> pm.Model:
    """Dispatch on the spec's family (``fused``: see :func:`build_joint`)."""
    if design.spec.family == "scan_logistic":
        return build_scan_logistic(design)
    return build_joint(design, fused=fused)
