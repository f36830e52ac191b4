"""Model specs: the shipped ones load, bad ones are refused with a clear message."""

from __future__ import annotations

import tomllib

import pytest

from bayesct.errors import SpecError
from bayesct.modeling.spec import SPEC_NAMES, load_spec, parse_spec, specs_dir


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_shipped_specs_load_and_round_trip(name):
    spec = load_spec(name)
    assert spec.name == name
    again = parse_spec(tomllib.loads(spec.to_toml()), path=spec.path)
    assert again == spec
    assert "Priors of model" in spec.describe_priors()


def test_spec_by_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text((specs_dir() / "ct_only.toml").read_text().replace('name = "ct_only"', 'name = "mine"'))
    assert load_spec(path).name == "mine"
    assert load_spec(str(path)).markers == ("ct_score",)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"colour": 1}, "unknown top-level key"),
        ({"family": "cox"}, "family must be"),
        ({"markers": {"include": ["nlr"]}}, "must contain 'ct_score'"),
        ({"markers": {"include": ["ct_score", "CRP score"]}}, "markers.include"),
        ({"markers": {"include": ["ct_score", 3]}}, "markers.include"),
        ({"random_effects": {"slopes": ["CT score"]}}, "random_effects.slopes"),
        ({"markers": {"ct_likelihood": "normal"}}, "ct_likelihood"),
        ({"trajectory": {"knots": [50.0]}}, "knots"),
        ({"trajectory": {"boundary": [10.0, 0.0]}}, "boundary"),
        ({"random_effects": {"structure": "diagonal"}}, "structure"),
        (
            {"random_effects": {"loading_signs": "fixed"}},
            "loading_signs must be 'known'.* or 'free', got 'fixed'",
        ),
        ({"priors": {"loading": {"dist": "Normal", "mu": 0.5, "sigma": 1.0}}}, "loading.*mu = 0"),
        ({"priors": {"loading": {"dist": "Gamma", "alpha": 2.0, "beta": 1.0}}}, "loading.*magnitude"),
        ({"mortality": {"association": ["area"]}}, "association"),
        ({"priors": {"ct_phi": {"dist": "Cauchy"}}}, "unknown distribution"),
        ({"priors": {"ct_phi": 3}}, "must be a table"),
        ({"sampler": {"draws": 0}}, "sampler.draws"),
        ({"sampler": {"warmup": 500}}, "unknown setting sampler.warmup"),
        ({"sampler": {"nutpie": 300}}, r"\[sampler.nutpie\] must be a table"),
        ({"sampler": {"nutpie": {"tune": 0}}}, "sampler.nutpie.tune must be a positive integer"),
        ({"sampler": {"pymc": {"target_accept": 0.9}}}, "unknown setting sampler.pymc.target_accept"),
        ({"sampler": {"gibbs": {"tune": 10}}}, "unknown setting sampler.gibbs"),
    ],
)
def test_bad_specs_are_refused(edit, message):
    raw = tomllib.loads((specs_dir() / "joint.toml").read_text())
    for key, value in edit.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = raw[key] | value
        else:
            raw[key] = value
    with pytest.raises(SpecError, match=message):
        parse_spec(raw)


def test_unknown_name_and_missing_file(tmp_path):
    with pytest.raises(SpecError, match="unknown model 'nope'"):
        load_spec("nope")
    with pytest.raises(SpecError, match="not found"):
        load_spec(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [unclosed")
    with pytest.raises(SpecError, match="not a valid TOML"):
        load_spec(bad)


def test_missing_prior_is_a_spec_error():
    spec = load_spec("scan_logistic")
    with pytest.raises(SpecError, match="declares no prior 'loading'"):
        spec.prior("loading")


def test_loading_signs_option():
    """Shipped factor specs fix the labs' loading signs; a spec without the key keeps them free
    (so that specs saved with older fits rebuild the same model); 'free' accepts any loading prior."""
    for name in ("joint", "joint_zones"):
        spec = load_spec(name)
        assert spec.structure == "factor" and spec.loading_signs == "known"
        assert "|loading| ~ HalfNormal(sigma=1)" in spec.describe_priors()
    raw = tomllib.loads((specs_dir() / "joint.toml").read_text())
    del raw["random_effects"]["loading_signs"]
    assert parse_spec(raw).loading_signs == "free"
    raw["priors"]["loading"] = {"dist": "Normal", "mu": 0.5, "sigma": 1.0}
    spec = parse_spec(raw)  # a shifted prior is fine when the signs are free
    assert "loading signs known" not in spec.describe_priors()
    raw["random_effects"]["loading_signs"] = "known"
    raw["priors"]["loading"] = {"dist": "StudentT", "nu": 4.0, "mu": 0.0, "sigma": 1.0}
    assert "|loading| ~ HalfStudentT(nu=4, sigma=1)" in parse_spec(raw).describe_priors()
