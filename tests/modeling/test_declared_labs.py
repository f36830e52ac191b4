"""Declared labs through the model: design scale, known loading signs, the graph, a saved fit."""

from __future__ import annotations

import json
import tomllib

import numpy as np
import pymc as pm
import pytest
from scipy.special import logit
from tests.modeling.conftest import crp_frame

from bayesct.classical import kendall, marker_scale, mixed_model
from bayesct.data import build_cohort
from bayesct.data.labs import LabSpec
from bayesct.errors import IncompleteFitError, SpecError
from bayesct.modeling.design import build_design, from_model_scale, to_model_scale
from bayesct.modeling.fit import FitResult, JointModel
from bayesct.modeling.spec import load_spec, parse_spec, specs_dir


def _spo2_frame(cohort):
    """The crp table with an SpO2 % column (falling with the CT score), for a declared ``pct`` lab."""
    frame = crp_frame(cohort)
    ct = frame["ct_score"].to_numpy(dtype=float)
    frame["spo2"] = np.round(100.0 / (1.0 + np.exp(-(3.5 - 0.08 * ct))), 1)
    return frame


def _spec(**random_effects):
    raw = tomllib.loads((specs_dir() / "joint.toml").read_text())
    raw["random_effects"] |= random_effects
    return parse_spec(raw)


def test_the_design_puts_declared_labs_on_their_scale(small_cohort):
    cohort = build_cohort(_spo2_frame(small_cohort), labs=["crp:log", "spo2:pct"])
    design = build_design(cohort, load_spec("joint"))
    assert design.markers[-2:] == ("crp", "spo2")
    assert dict(design.declared_labs) == {"crp": LabSpec("log", 1), "spo2": LabSpec("pct", -1)}
    for k, lab, scale in ((len(design.markers) - 2, "crp", np.log), (len(design.markers) - 1, "spo2", None)):
        observed = cohort.visits[lab].dropna().to_numpy()
        values = design.labs.value[design.labs.marker == k]
        expected = np.log(observed) if scale is not None else logit(observed / 100.0)
        np.testing.assert_allclose(values, expected)
        np.testing.assert_allclose(design.marker_centre[k], expected.mean())
        np.testing.assert_allclose(from_model_scale(lab, values, design.declared_labs), observed)
    np.testing.assert_allclose(to_model_scale("spo2", np.array([50.0]), design.declared_labs), [0.0])
    with pytest.raises(KeyError, match="'spo2' is not a lab"):
        to_model_scale("spo2", np.array([50.0]))  # undeclared: no silent guess of its transform


@pytest.mark.parametrize(("declaration", "sign"), [("crp:log", 1.0), ("crp:log:down", -1.0)])
def test_known_loading_signs_use_a_declared_labs_direction(small_cohort, declaration, sign):
    cohort = build_cohort(crp_frame(small_cohort), labs=[declaration])
    model = JointModel("joint").build(cohort)
    labs = list(model.coords["lab"])
    assert labs[-1] == "crp"
    draws = pm.draw(model["loading_lab"], draws=200, random_seed=2)
    assert np.all(np.sign(draws[:, -1]) == sign)
    assert np.all(draws[:, labs.index("ldh")] > 0) and np.all(draws[:, labs.index("lymphocyte_count")] < 0)


def test_a_declared_lab_without_a_direction_is_refused_only_by_known_signs(small_cohort):
    cohort = build_cohort(crp_frame(small_cohort).rename(columns={"crp": "novel"}), labs=["novel:log"])
    assert "novel" in cohort.labs  # reading needs no direction
    with pytest.raises(SpecError, match=r"'novel' has no known direction.*add :up or :down"):
        JointModel("joint").build(cohort)
    free = JointModel(_spec(loading_signs="free")).build(cohort)
    assert np.isfinite(free.compile_logp()(free.initial_point()))
    ct_only = JointModel("ct_only").build(cohort)  # the lab is not modelled: no direction needed
    assert "lab" not in ct_only.coords or "novel" not in list(ct_only.coords["lab"])


def test_the_joint_graph_builds_with_a_declared_lab(crp_cohort):
    model = JointModel("joint").build(crp_cohort)
    assert list(model.coords["marker"]) == list(crp_cohort.markers)
    assert list(model.coords["lab"])[-1] == "crp"
    n_lab_values = int(crp_cohort.visits[list(crp_cohort.labs)].notna().to_numpy().sum())
    assert len(model.coords["lab_value"]) == n_lab_values
    point = model.initial_point()
    assert np.isfinite(model.compile_logp()(point))
    assert np.all(np.isfinite(model.compile_dlogp()(point)))


def test_a_spec_may_name_a_declared_lab(crp_cohort):
    raw = tomllib.loads((specs_dir() / "joint.toml").read_text())
    raw["markers"]["include"] = ["crp", "ct_score", "ldh"]
    design = build_design(crp_cohort, parse_spec(raw))
    assert design.markers == ("ct_score", "ldh", "crp")
    raw["markers"]["include"] = ["ct_score", "ferritin"]
    with pytest.raises(SpecError, match="'ferritin': neither a marker bayesct knows nor a declared lab"):
        build_design(crp_cohort, parse_spec(raw))


def test_a_saved_fit_keeps_the_declarations(small_cohort, tmp_path):
    from tests.checks.conftest import _mock_fit

    cohort = build_cohort(_spo2_frame(small_cohort), source="crp.csv", labs=["crp:log", "spo2:pct"])
    fit = _mock_fit(cohort, "joint", draws=20)
    out = fit.save(tmp_path / "fit")
    assert json.loads((out / "labs.json").read_text()) == {
        "labs": {
            "crp": {"transform": "log", "direction": "up"},
            "spo2": {"transform": "pct", "direction": "down"},
        }
    }
    assert "labs.json" in json.loads((out / "complete.json").read_text())["files"]
    loaded = FitResult.load(out)
    assert dict(loaded.cohort.declared_labs) == dict(cohort.declared_labs)
    assert loaded.design.markers == fit.design.markers
    np.testing.assert_array_equal(loaded.design.labs.value, fit.design.labs.value)
    lab_obs = loaded.tree["observed_data"]["lab_obs"]
    spo2 = lab_obs.where(lab_obs["lab_value_lab"] == "spo2", drop=True).to_numpy()
    np.testing.assert_allclose(spo2, cohort.visits["spo2"].dropna().to_numpy())  # in the data's units
    # the replicates are drawn on the lab's own scale: percentages stay percentages
    from bayesct.checks import replicate

    rep = next(iter(replicate(loaded, n=1, level="patients", seed=0)))
    assert rep.declared_labs == loaded.cohort.declared_labs
    values = rep.visits["spo2"].dropna().to_numpy()
    assert np.all((values > 0) & (values < 100))
    (out / "labs.json").unlink()
    with pytest.raises(IncompleteFitError, match=r"labs\.json cannot be read"):
        FitResult.load(out)


def test_a_fit_without_declarations_writes_no_labs_file(small_cohort, tmp_path):
    from tests.checks.conftest import _mock_fit

    out = _mock_fit(small_cohort, "ct_only", draws=10).save(tmp_path / "fit")
    assert not (out / "labs.json").exists()
    assert "labs.json" not in json.loads((out / "complete.json").read_text())["files"]
    assert dict(FitResult.load(out).cohort.declared_labs) == {}


def test_the_classical_tables_and_a_history_see_declared_labs(small_cohort):
    from bayesct.risk import _read_history

    cohort = build_cohort(_spo2_frame(small_cohort), labs=["crp:log", "spo2:pct"])
    assert (
        marker_scale("spo2", cohort.declared_labs) == "raw"
        and marker_scale("crp", cohort.declared_labs) == "log"
    )
    assert {"crp", "spo2"} <= set(kendall(cohort)["marker"])
    mixed = mixed_model(cohort, markers=["crp", "spo2"])
    assert dict(zip(mixed["marker"], mixed["scale"], strict=True)) == {"crp": "log", "spo2": "raw"}
    frame = _spo2_frame(small_cohort)
    history = frame.loc[frame["patient_id"] == frame["patient_id"].iloc[0]].drop(columns=["spo2"])
    obs = _read_history(history, cohort.declared_labs)
    np.testing.assert_allclose(obs.labs["crp"][1], np.log(history["crp"].dropna().to_numpy()))
    assert "spo2" not in obs.labs
