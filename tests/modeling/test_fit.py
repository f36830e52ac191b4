"""Real (small) fits: save/load round trip, diagnostics, the convergence gates, the fit CLI."""

from __future__ import annotations

import json
import tomllib
import warnings

import numpy as np
import pytest

from bayesct.cli import main
from bayesct.data import write_cohort
from bayesct.errors import BayesctError, ConvergenceWarning, SpecError
from bayesct.modeling.builders import LOADING_MAGNITUDE_START, UNJITTERED_START, ct_severity_start
from bayesct.modeling.fit import FitResult, JointModel, start_points
from bayesct.modeling.spec import parse_spec, specs_dir

DIAG_KEYS = {
    "rhat_max",
    "ess_bulk_min",
    "ess_tail_min",
    "divergences",
    "bfmi_min",
    "passed",
    "sampler",
    "draws",
    "chains",
    "wall_seconds",
}


@pytest.mark.slow
def test_fit_save_load_round_trip(small_fit, tmp_path):
    out = small_fit.save(tmp_path / "fit")
    diag = json.loads((out / "diagnostics.json").read_text())
    assert set(diag) >= DIAG_KEYS
    assert diag["draws"] == 150 and diag["chains"] == 2 and diag["sampler"] == "nutpie"
    loaded = FitResult.load(out)
    post = loaded.posterior
    assert list(post["severity"].coords["patient"].values) == list(small_fit.cohort.patient_ids)
    assert set(post["loading"].coords["marker"].values) == set(small_fit.cohort.markers)
    np.testing.assert_allclose(post["mort_gamma"].values, small_fit.posterior["mort_gamma"].values)
    assert loaded.spec == small_fit.spec or loaded.spec.name == small_fit.spec.name
    assert not any(p.suffix == ".pkl" for p in out.iterdir())


@pytest.mark.slow
def test_short_fit_misses_gates_loudly(small_fit):
    diag = small_fit.diagnostics
    # 2 x 150 draws cannot reach an ESS of 400
    assert not diag.passed
    assert diag.ess_bulk_min < 400
    assert any("ESS" in f for f in diag.failures)
    assert "CONVERGENCE GATES FAILED" in diag.message()


@pytest.mark.slow
def test_failed_gate_warns(small_cohort):
    with pytest.warns(ConvergenceWarning, match="CONVERGENCE GATES FAILED"):
        JointModel("scan_logistic").fit(small_cohort, draws=30, tune=30, chains=2, seed=1)


@pytest.mark.slow
def test_same_seed_same_numbers(small_cohort):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = JointModel("scan_logistic").fit(small_cohort, draws=50, tune=50, chains=2, seed=11)
        b = JointModel("scan_logistic").fit(small_cohort, draws=50, tune=50, chains=2, seed=11)
    np.testing.assert_array_equal(a.posterior["mort_beta"].values, b.posterior["mort_beta"].values)


def test_start_points_anchor_the_severity_to_the_ct_score(small_cohort):
    """Every chain starts with the lab loadings' magnitudes at a tenth of their prior scale, on
    the side of their known sign (at 0 with free signs), and the shared severity at each
    patient's mean CT deviation (UNJITTERED_START); everything else is jittered, seeded."""
    jm = JointModel("joint")
    design = jm.design(small_cohort)
    model = jm.build(small_cohort)
    assert {"loading_lab", "loading_magnitude", "severity_dev", "severity_mean"} <= set(UNJITTERED_START)
    magnitude_start = (
        LOADING_MAGNITUDE_START * jm.spec.prior("loading").params["sigma"] * design.marker_scale[1:]
    )
    # by hand: mean empirical logit of each patient's CT scores, minus the cohort centre
    ct = design.ct
    logit = np.log((ct.value + 0.5) / (24.5 - ct.value))
    expected = [logit[ct.patient == i].mean() - design.marker_centre[0] for i in range(design.n_patients)]
    start = ct_severity_start(design)
    np.testing.assert_allclose(start[:, 0], expected)
    np.testing.assert_array_equal(start[:, 1], 0.0)
    points = start_points(model, 4, seed=3)
    assert len(points) == 4
    for point in points:
        assert "loading_lab" not in point  # a deterministic under known signs
        np.testing.assert_allclose(point["loading_magnitude"], magnitude_start, rtol=1e-12)
        z = point["severity_dev"].T + point["severity_mean"]
        np.testing.assert_allclose(z, start, atol=1e-12)
    phis = [float(p["ct_phi"]) for p in points]
    assert len(set(phis)) == 4  # jittered, differently per chain
    again = start_points(model, 4, seed=3)
    for a, b in zip(points, again, strict=True):
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])
    assert float(start_points(model, 4, seed=4)[0]["ct_phi"]) != phis[0]
    raw = tomllib.loads((specs_dir() / "joint.toml").read_text())
    raw["random_effects"]["loading_signs"] = "free"
    free = JointModel(parse_spec(raw)).build(small_cohort)
    for point in start_points(free, 2, seed=3):
        np.testing.assert_array_equal(point["loading_lab"], 0.0)


def test_sampler_settings_come_from_the_spec_per_sampler():
    raw = tomllib.loads((specs_dir() / "joint.toml").read_text())
    raw["sampler"] = {"draws": 800, "tune": 400, "chains": 3, "nutpie": {"tune": 200}, "pymc": {"draws": 900}}
    model = JointModel(parse_spec(raw))
    assert model.sampler_settings(draws=None, tune=None, chains=None, sampler="nutpie") == {
        "draws": 800,
        "tune": 200,
        "chains": 3,
    }
    assert model.sampler_settings(draws=None, tune=None, chains=None, sampler="pymc") == {
        "draws": 900,
        "tune": 400,
        "chains": 3,
    }
    assert model.sampler_settings(draws=None, tune=None, chains=None, sampler="numpyro")["tune"] == 400
    # What is given wins over the spec.
    assert model.sampler_settings(draws=None, tune=50, chains=None, sampler="nutpie")["tune"] == 50
    raw["sampler"] = {}
    assert JointModel(parse_spec(raw)).sampler_settings(draws=None, tune=None, chains=None) == {
        "draws": 1000,
        "tune": 1000,
        "chains": 4,
    }


def test_bad_options_are_refused(small_cohort):
    with pytest.raises(SpecError, match="unknown sampler"):
        JointModel("joint").fit(small_cohort, sampler="gibbs")  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="positive integer"):
        JointModel("joint").sampler_settings(draws=0, tune=None, chains=None)
    with pytest.raises(BayesctError, match=r"call \.fit"):
        _ = JointModel("joint").result


def test_load_refuses_a_folder_that_is_not_a_fit(tmp_path):
    with pytest.raises(BayesctError, match="not a bayesct fit directory"):
        FitResult.load(tmp_path)


@pytest.mark.slow
def test_fit_cli_end_to_end(small_cohort, tmp_path, capsys):
    data = write_cohort(small_cohort, tmp_path / "cohort.csv")
    out = tmp_path / "fit"
    code = main(
        [
            "fit",
            str(data),
            "--out",
            str(out),
            "--model",
            "scan_logistic",
            "--draws",
            "40",
            "--tune",
            "40",
            "--chains",
            "2",
            "--seed",
            "5",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert "WARNING" in captured.err and "CONVERGENCE GATES FAILED" in captured.err
    assert "median [95% CrI]" in captured.out
    assert json.loads((out / "diagnostics.json").read_text())["passed"] is False
    strict = main(
        [
            "fit",
            str(data),
            "--out",
            str(tmp_path / "fit2"),
            "--model",
            "scan_logistic",
            "--draws",
            "40",
            "--tune",
            "40",
            "--chains",
            "2",
            "--strict",
        ]
    )
    assert strict == 3


def test_fit_cli_bad_inputs(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("patient_id,day,ct_score,died\nP1,3,31,0\n")
    assert main(["fit", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "row 2" in err and "ct_score" in err and "Traceback" not in err
    good = tmp_path / "good.csv"
    good.write_text("patient_id,day,ct_score,died,age,sex\nP1,3,5,0,50,male\nP1,8,9,0,50,male\n")
    assert main(["fit", str(good), "--out", str(tmp_path / "o"), "--model", "nope"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["fit", str(good), "--out", str(tmp_path / "o"), "--draws", "-3"])
    assert exc.value.code == 2


@pytest.mark.parametrize("sampler", ["pymc", "numpyro"])
def test_pymc_and_numpyro_get_the_same_kind_of_start(sampler, small_cohort, monkeypatch):
    """Both start from start_points (UNJITTERED_START kept), with their own jitter turned off."""
    import sys
    import types

    import pymc as pm

    from bayesct.modeling import fit as fit_module

    seen: dict = {}

    class Stop(Exception):
        pass

    def fake_sample(**kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(pm, "sample", fake_sample)
    monkeypatch.setitem(sys.modules, "numpyro", types.ModuleType("numpyro"))
    model = JointModel("joint").build(small_cohort)
    with pytest.raises(Stop):
        fit_module._sample(
            model, sampler=sampler, draws=10, tune=10, chains=3, seed=2, progress=False, cores=1
        )
    assert len(seen["initvals"]) == 3
    for point in seen["initvals"]:
        np.testing.assert_array_less(0.0, point["loading_magnitude"])
        np.testing.assert_array_equal(point["loading_magnitude"], seen["initvals"][0]["loading_magnitude"])
    if sampler == "pymc":
        assert seen["init"] == "adapt_diag"  # PyMC's own jitter off
    else:
        assert seen["nuts"] == {"chain_method": "vectorized", "jitter": False}
    assert seen["nuts_sampler"] == sampler
