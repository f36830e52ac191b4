"""A numpy view of a fitted joint-family model: the same equations as the PyMC graph, per draw.

The posterior predictive replication (:mod:`bayesct.checks`) and the risk
queries (:mod:`bayesct.risk`) both need to evaluate the model for many draws at
once — linear predictors on arbitrary days, fresh random effects, mortality
probabilities. They do it through :class:`PosteriorModel`, never by re-deriving
the model's algebra, so the graph in :mod:`bayesct.modeling.builders` and this
module are the only two places that state it (and the tests check that they
agree: the log-density here equals PyMC's at the same point).

Shapes: ``S`` draws (chain x draw stacked, optionally thinned), ``n`` patients
or query points, ``E`` random effects per patient. Effects are ``(u0, u1)`` of
the shared severity (factor structure) or every effect ``b`` (full structure).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import xarray as xr

from bayesct.effect_law import EffectLaw
from bayesct.errors import SpecError
from bayesct.likelihoods import CTLikelihood, LabLikelihood, death_loglik
from bayesct.modeling.builders import lab_marginal_logp, labs_groups
from bayesct.modeling.design import Design, covariate_matrix, spline_basis, time_transform
from bayesct.modeling.spec import ModelSpec


def _stack(post: xr.Dataset, name: str, idx: np.ndarray) -> np.ndarray:
    da = post[name].stack(sample=("chain", "draw")).transpose("sample", ...)
    return np.asarray(da.values)[idx]


@dataclass
class PosteriorModel:
    """Posterior draws of a ``joint``-family fit, with the model's equations in numpy.

    Build with :meth:`from_fit`.
    """

    spec: ModelSpec
    design: Design
    draws: dict[str, np.ndarray]
    n_draws: int
    #: derived per-draw quantities kept for reuse by whoever computes them (e.g.
    #: :func:`bayesct.risk.history_terms`, shared by the mortality calibration and PSIS-LOO)
    memo: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_fit(cls, result, *, max_draws: int | None = None, seed: int = 0) -> PosteriorModel:
        """From a :class:`~bayesct.modeling.fit.FitResult`, optionally thinned to ``max_draws`` draws."""
        spec = result.spec
        if spec.family != "joint":
            raise SpecError(f"model '{spec.name}' is not of the joint family")
        post = result.posterior
        total = post.sizes["chain"] * post.sizes["draw"]
        if max_draws is not None and max_draws < total:
            idx = np.sort(np.random.default_rng(seed).choice(total, size=max_draws, replace=False))
        else:
            idx = np.arange(total)
        names = [str(v) for v in post.data_vars if not str(v).endswith("_z")]
        draws = {n: _stack(post, n, idx) for n in names}
        return cls(spec, result.design, draws, len(idx))

    # -- structure ------------------------------------------------------------
    @property
    def markers(self) -> tuple[str, ...]:
        return self.design.markers

    @property
    def factor(self) -> bool:
        return self.spec.structure == "factor"

    @property
    def effect_names(self) -> list[str]:
        if self.factor:
            return ["intercept", "slope"]
        slopes = [m for m in self.markers if m in self.spec.slopes]
        return [f"{m}:intercept" for m in self.markers] + [f"{m}:slope" for m in slopes]

    def covariance(self) -> np.ndarray:
        """(S, E, E) covariance of the random effects per draw."""
        if self.factor:
            sd = self.draws["severity_cov_stds"]
            corr = self.draws["severity_cov_corr"]
        elif "re_cov_stds" in self.draws:
            sd = self.draws["re_cov_stds"]
            corr = self.draws["re_cov_corr"]
        else:  # a single effect
            sd = self.draws["re_sd"]
            corr = np.ones((self.n_draws, 1, 1))
        return sd[:, :, None] * corr * sd[:, None, :]

    def patient_effects(self) -> np.ndarray:
        """(S, n_patients, E) the cohort's own patients' effects (posterior draws)."""
        return self.draws["severity"] if self.factor else self.draws["re"]

    @cached_property
    def effect_law(self) -> EffectLaw:
        """The effects' population law per draw (covariance and, if skewed, the level's skew)."""
        chol = np.linalg.cholesky(self.covariance() + 1e-12 * np.eye(len(self.effect_names)))
        skew = self.draws["severity_skew"] if self.spec.severity_law == "sinh_arcsinh" else None
        return EffectLaw(chol, None if skew is None else np.asarray(skew, float).reshape(-1))

    def new_effects(self, rng: np.random.Generator, n: int, *, n_per_draw: int | None = None) -> np.ndarray:
        """(S, n, E) fresh effects from the population distribution of each draw."""
        return self.effect_law.draw(rng, n)

    def has_specific(self) -> bool:
        return self.factor and "specific_sd" in self.draws

    # -- equations --------------------------------------------------------------
    def population_curve(self, marker: int, days: np.ndarray, group: np.ndarray | None = None) -> np.ndarray:
        """(S, n) centre + f_k(t): the population curve of marker index ``marker`` (no patient effects)."""
        B = spline_basis(days, self.spec)
        W = self.draws["spline_coef"]
        if self.spec.by_group:
            if group is None:
                raise SpecError("this model has outcome-group curves: give the group of each point")
            # the outcome group, 0 or 1 (a by-group design has every outcome known)
            f = np.einsum("nb,snb->sn", B, W[:, np.asarray(group).astype(np.int64), marker, :])
        else:
            f = W[:, marker, :] @ B.T
        return self.design.marker_centre[marker] + f

    def trajectory(self, marker: int, days: np.ndarray, effects: np.ndarray) -> np.ndarray:
        """(S, n) the patient part of the linear predictor for effects (S, n, E) at ``days`` (n,)."""
        g = time_transform(days, self.spec)
        if self.factor:
            lam = self.draws["loading"][:, marker][:, None] if "loading" in self.draws else 1.0
            return lam * (effects[..., 0] + effects[..., 1] * g)
        names = self.effect_names
        out = effects[..., names.index(f"{self.markers[marker]}:intercept")]
        slope = f"{self.markers[marker]}:slope"
        if slope in names:
            out = out + effects[..., names.index(slope)] * g
        return out

    def linear_predictor(
        self,
        marker: int,
        days: np.ndarray,
        effects: np.ndarray,
        specific: np.ndarray | None = None,
        group: np.ndarray | None = None,
    ) -> np.ndarray:
        """(S, n) eta of marker ``marker``; ``specific`` (S, n) adds lab-specific intercepts."""
        eta = self.population_curve(marker, days, group) + self.trajectory(marker, days, effects)
        if specific is not None:
            eta = eta + specific
        return eta

    def association(self, effects: np.ndarray) -> np.ndarray:
        """(S, n, A) association terms of the mortality submodel."""
        cols: list[np.ndarray] = []
        for a in self.spec.association:
            if a == "shared":
                cols.extend(effects[..., j] for j in range(effects.shape[-1]))
                continue
            value = self.trajectory(0, np.full(effects.shape[1], self.spec.reference_day), effects)
            if self.factor:
                slope = effects[..., 1]
            else:
                names = self.effect_names
                slope = (
                    effects[..., names.index("ct_score:slope")] if "ct_score:slope" in names else 0 * value
                )
            cols.append(value if a == "value" else slope)
        return np.stack(cols, axis=-1)

    def covariates_for(self, patients) -> np.ndarray:
        """Scaled mortality covariates (n, C) for a patient table, with the fit's centring."""
        _, X, _, _ = covariate_matrix(
            patients, self.spec, centre=self.design.covariate_centre, scale=self.design.covariate_scale
        )
        return X

    def mortality_logit(self, effects: np.ndarray, X: np.ndarray) -> np.ndarray:
        """(S, n) log-odds of death for effects (S, n, E) and scaled covariates X (n, C)."""
        if not self.spec.mortality:
            raise SpecError(f"model '{self.spec.name}' has no mortality submodel")
        out = self.draws["mort_intercept"][:, None] + np.einsum(
            "sna,sa->sn", self.association(effects), self.draws["mort_gamma"]
        )
        if X.shape[1]:
            out = out + np.einsum("nc,sc->sn", X, self.draws["mort_beta"])
        return out

    # -- likelihood pieces (numpy) ----------------------------------------------
    @cached_property
    def ct_likelihood(self) -> CTLikelihood:
        """The CT score's likelihood with this posterior's parameters (:mod:`bayesct.likelihoods`)."""
        return CTLikelihood.from_draws(self.spec.ct_likelihood, self.draws)

    def ct_logp(self, y: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """Pointwise log-pmf of CT scores y given eta (broadcast; draws on the leading axis)."""
        return self.ct_likelihood.logpmf(y, eta)

    def draw_ct(self, rng: np.random.Generator, eta: np.ndarray) -> np.ndarray:
        """Replicated CT scores at eta (draws on the leading axis)."""
        return self.ct_likelihood.draw(rng, eta)

    @cached_property
    def lab_likelihood(self) -> LabLikelihood:
        """The labs' likelihood with this posterior's parameters (:mod:`bayesct.likelihoods`)."""
        return LabLikelihood.from_draws(self.spec.lab_likelihood, self.draws)

    def draw_lab(self, rng: np.random.Generator, lab: int, eta: np.ndarray) -> np.ndarray:
        """Replicated lab values on the modelling scale; ``lab`` indexes the labs (marker - 1)."""
        return self.lab_likelihood.draw(rng, eta, lab)

    def specific_posterior(self, rng: np.random.Generator, effects: np.ndarray) -> np.ndarray:
        """(S, n_patients, L) lab-specific intercepts of the cohort's patients, drawn from their
        exact conditional posterior given the data and each draw's other parameters (they were
        integrated out of the fitted likelihood)."""
        d = self.design
        L = len(d.lab_names)
        S = self.n_draws
        if "specific" in self.draws:
            return self.draws["specific"]
        out = np.zeros((S, d.n_patients, L))
        if not self.has_specific():
            return out
        t = self.draws["specific_sd"]
        s = self.draws["noise_sd"]
        labs = d.labs
        gid, lab_of_group, patient_of_group, n = labs_groups(d)
        resid = np.empty((S, len(labs.value)))
        for k in range(1, len(d.markers)):
            mask = labs.marker == k
            eta = self.linear_predictor(k, labs.day[mask], effects[:, labs.patient[mask], :])
            resid[:, mask] = labs.value[mask] - eta
        G = len(n)
        s1 = np.zeros((S, G))
        for j in range(S):
            s1[j] = np.bincount(gid, weights=resid[j], minlength=G)
        t2 = t[:, lab_of_group] ** 2
        s2 = s[:, lab_of_group] ** 2
        mean = t2 * s1 / (s2 + n * t2)
        var = s2 * t2 / (s2 + n * t2)
        out = rng.standard_normal((S, d.n_patients, L)) * t[:, None, :]
        out[:, patient_of_group, lab_of_group] = mean + np.sqrt(var) * rng.standard_normal(mean.shape)
        return out

    def patient_loglik(
        self, effects: np.ndarray | None = None, parts: tuple[str, ...] = ("ct", "labs", "death")
    ) -> np.ndarray:
        """(S, n_patients) log-likelihood of each patient's data (CT, labs, death) given the draw
        (a patient of unknown outcome has no death term).

        For the factor structure the lab-specific intercepts are integrated out, as in the fit.
        Used for patient-level PSIS-LOO. ``parts`` selects the data: any of ``"ct"``,
        ``"labs"``, ``"death"`` (to compare variants on the data they share).
        """
        d = self.design
        eff = self.patient_effects() if effects is None else effects
        S = self.n_draws
        out = np.zeros((S, d.n_patients))
        ct = d.ct
        group_ct = d.died[ct.patient] if self.spec.by_group else None
        eta = self.linear_predictor(0, ct.day, eff[:, ct.patient, :], group=group_ct)
        lp = self.ct_logp(ct.value[None, :], eta)
        if d.has_zones:  # the zones' own likelihood where a scan has all six, as in the fit
            assert d.ct_zones is not None
            has = d.ct_zones[:, 0] >= 0
            lp[:, has] = self.ct_likelihood.zones_logpmf(d.ct_zones[has], eta[:, has])
        if "ct" in parts:
            for j in range(S):
                out[j] += np.bincount(ct.patient, weights=lp[j], minlength=d.n_patients)
        labs = d.labs
        if len(labs.value) and "labs" in parts:
            eta = np.empty((S, len(labs.value)))
            for k in range(1, len(d.markers)):
                mask = labs.marker == k
                grp = d.died[labs.patient[mask]] if self.spec.by_group else None
                spec_v = None
                if "specific" in self.draws:
                    spec_v = self.draws["specific"][:, labs.patient[mask], k - 1]
                eta[:, mask] = self.linear_predictor(
                    k, labs.day[mask], eff[:, labs.patient[mask], :], specific=spec_v, group=grp
                )
            resid = labs.value[None, :] - eta
            if self.has_specific() and "specific" not in self.draws:
                groups = labs_groups(d)
                for j in range(S):
                    lg = lab_marginal_logp(
                        resid[j], groups, self.draws["noise_sd"][j], self.draws["specific_sd"][j]
                    )
                    out[j] += np.bincount(groups[2], weights=lg, minlength=d.n_patients)
            else:
                lp = self.lab_likelihood.logpdf(resid, labs.marker - 1)
                for j in range(S):
                    out[j] += np.bincount(labs.patient, weights=lp[j], minlength=d.n_patients)
        if self.spec.mortality and "death" in parts:  # 0 for an outcome not known yet
            out += death_loglik(d.died[None, :], logit=self.mortality_logit(eff, d.covariates))
        return out
