"""The command line end to end: simulate, validate, classical; errors as one line and exit code 2."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayesct.cli import main
from bayesct.data import load_default_cohort

TABLES = [
    "baseline.csv",
    "admission.csv",
    "period_comparison.csv",
    "mixed_model.csv",
    "mortality_logistic.csv",
    "kendall.csv",
    "summary.md",
]


@pytest.fixture(scope="module")
def default_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "default.csv"
    assert main(["simulate", "--out", str(path)]) == 0
    return path


def test_every_subcommand_has_help(capsys):
    for sub in [
        "simulate",
        "validate",
        "classical",
        "fit",
        "priors",
        "prior-check",
        "check",
        "sensitivity",
        "compare",
        "risk",
        "demo",
    ]:
        with pytest.raises(SystemExit) as exc:
            main([sub, "--help"])
        assert exc.value.code == 0
        assert "usage: bayesct " + sub in capsys.readouterr().out


def test_simulate_default_and_sized(default_csv, tmp_path):
    frame = pd.read_csv(default_csv)
    assert frame["patient_id"].nunique() == 93
    out = tmp_path / "sim.parquet"
    assert main(["simulate", "--patients", "12", "--seed", "4", "--out", str(out)]) == 0
    assert pd.read_parquet(out)["patient_id"].nunique() == 12


def test_classical_on_the_default_cohort_agrees_with_scipy(default_csv, tmp_path, capsys):
    out = tmp_path / "tables"
    assert main(["classical", str(default_csv), "--out", str(out)]) == 0
    for name in TABLES:
        assert (out / name).is_file(), name
    cohort = load_default_cohort()
    scans = cohort.scans()
    kendall = pd.read_csv(out / "kendall.csv").set_index("marker")
    for lab in cohort.labs:
        both = scans[["ct_score", lab]].dropna()
        tau, p = stats.kendalltau(both["ct_score"], both[lab], variant="b")
        assert kendall.loc[lab, "tau"] == pytest.approx(tau, abs=1e-9)
        assert kendall.loc[lab, "p_value"] == pytest.approx(p, rel=1e-6)
    periods = pd.read_csv(out / "period_comparison.csv").set_index("period")
    for period, rows in scans.groupby("period", observed=True):
        surv = rows.loc[rows["died"] == 0, "ct_score"]
        dead = rows.loc[rows["died"] == 1, "ct_score"]
        if len(surv) and len(dead):
            p = stats.mannwhitneyu(dead, surv, alternative="two-sided", method="asymptotic").pvalue
            assert periods.loc[str(period), "p_value"] == pytest.approx(p, rel=1e-9)
    import statsmodels.api as sm

    X = sm.add_constant(scans[["ct_score", "day"]].to_numpy(dtype=float))
    fit = sm.Logit(scans["died"].to_numpy(dtype=float), X).fit(disp=0)
    logistic = pd.read_csv(out / "mortality_logistic.csv").set_index("term")
    assert logistic.loc["ct_score", "coef"] == pytest.approx(fit.params[1], rel=1e-6)
    assert logistic.loc["day", "coef"] == pytest.approx(fit.params[2], rel=1e-6)
    assert np.isfinite(pd.read_csv(out / "mixed_model.csv")["p_value"]).any()


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        ("patient_id,day,ct_score,died\nP1,3,31,0\n", ["row 2", "ct_score"]),
        ("patient_id,day,ct_score,died\nP1,-2,3,0\n", ["row 2", "day"]),
        ("patient_id,day,ct_score,died\nP1,2,3,0\nP1,6,4,1\n", ["row 3", "died"]),
        ("patient_id,day,ct_score,ldh,died\nP1,2,3,-5,0\n", ["row 2", "ldh"]),
        ("patient_id,day,ct_score,lymphocyte_pct,died\nP1,2,3,140,0\n", ["row 2", "lymphocyte_pct"]),
        (
            "patient_id,day,ct_score,neutrophil_pct,died\nP1,2,3,100,0\n",
            ["row 2", "neutrophil_pct", "strictly between 0 and 100", "logit(value/100)"],
        ),
        (
            "patient_id,day,ct_score,lymphocyte_pct,died\nP1,2,3,0,0\n",
            ["row 2", "lymphocyte_pct", "strictly"],
        ),
        ("patient_id,ct_score,died\nP1,3,0\n", ["day"]),
        ("patient_id,day,ct_score,died\n", ["no data rows"]),
        ("", ["empty"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, content, needles):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert str(path) in err
    for needle in needles:
        assert needle.lower() in err.lower(), (needle, err)


def test_binary_file_is_refused(tmp_path, capsys):
    path = tmp_path / "image.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    assert main(["classical", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "error:" in capsys.readouterr().err


def test_priors_and_unknown_model(capsys):
    assert main(["priors", "--model", "joint"]) == 0
    assert "mort_gamma" in capsys.readouterr().out
    assert main(["priors", "--model", "nope"]) == 2
    assert "unknown model" in capsys.readouterr().err


def test_simulate_from_a_zone_generator_with_zone_columns(tmp_path, capsys):
    out = tmp_path / "zones.csv"
    assert (
        main(["simulate", "--patients", "15", "--generator", "zones", "--zone-columns", "--out", str(out)])
        == 0
    )
    assert "zones generator" in capsys.readouterr().out
    df = pd.read_csv(out)
    zones = df[["zone_ru", "zone_rm", "zone_rl", "zone_lu", "zone_lm", "zone_ll"]].to_numpy()
    np.testing.assert_array_equal(zones.sum(axis=1), df["ct_score"].to_numpy())
    assert main(["validate", str(out)]) == 0
    # a generator needs a simulated cohort, not the default one
    assert main(["simulate", "--generator", "skewed", "--out", str(tmp_path / "x.csv")]) == 2
    assert "need --patients" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


# -- column mapping: --map and --columns (through validate, which fits nothing) ---------------------------
STATISTICIANS_CSV = (
    "Patient ID,Days since admission,Total CT,LDH (U/L),Outcome\nP1,2,4,210,0\nP1,7,9,260,0\nP2,4,12,480,1\n"
)


def test_validate_with_map(tmp_path, capsys):
    path = tmp_path / "visits.csv"
    path.write_text(STATISTICIANS_CSV)
    argv = [
        "validate",
        str(path),
        "--map",
        'day="Days since admission",ct_score=Total CT',
        "--map",
        "died=Outcome",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "patients: 2 (1 died)" in out and "markers: ct_score, ldh" in out


def test_validate_with_a_columns_file(tmp_path, capsys):
    path = tmp_path / "visits.csv"
    path.write_text(STATISTICIANS_CSV)
    toml = tmp_path / "columns.toml"
    toml.write_text('[columns]\nday = "Days since admission"\nct_score = "Total CT"\ndied = "Outcome"\n')
    assert main(["validate", str(path), "--columns", str(toml)]) == 0
    assert "CT scans: 3" in capsys.readouterr().out
    # --map overrides the file name by name
    toml.write_text('[columns]\nday = "nope"\nct_score = "Total CT"\ndied = "Outcome"\n')
    assert main(["validate", str(path), "--columns", str(toml), "--map", "day=Days since admission"]) == 0


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["--map", "dya=Days since admission"], ["--map", "did you mean 'day'"]),
        (["--map", "day=Days since admision"], ["no header", "did you mean 'Days since admission'"]),
        (["--map", "day"], ["NAME=HEADER"]),
        (["--columns", "missing.toml"], ["missing.toml", "not found"]),
    ],
)
def test_bad_column_mapping_is_one_line_and_exit_2(tmp_path, capsys, extra, needles):
    path = tmp_path / "visits.csv"
    path.write_text(STATISTICIANS_CSV)
    assert main(["validate", str(path), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and err.count("\n") == 1
    for needle in needles:
        assert needle in err, (needle, err)


def test_validate_notes_unused_columns_and_derived_days(tmp_path, capsys):
    path = tmp_path / "visits.csv"
    path.write_text(
        "Patient ID,Onset date,Scan date,CT score,CRP (mg/L),Died\n"
        "P1,2020-02-01,2020-02-03,4,12,0\nP1,2020-02-01,2020-02-10,9,40,0\nP2,2020-02-28,2020-03-01,12,8,1\n"
    )
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out  # the notes are printed once, with the summary
    assert "day derived from the dates" in out
    assert "'CRP (mg/L)' not used" in out


# -- declared labs: --lab NAME:TRANSFORM[:DIRECTION] -------------------------------------------------------
def test_inspect_with_a_declared_lab(tmp_path, capsys):
    path = tmp_path / "visits.csv"
    path.write_text(
        "Patient ID,Days since admission,Total CT,LDH (U/L),Outcome,CRP (mg/L)\n"
        "P1,2,4,210,0,12\nP1,7,9,260,0,40\nP2,4,12,480,1,8\nP2,6,14,500,1,8\n"
    )
    base = ["inspect", str(path), "--map", 'day="Days since admission",ct_score=Total CT,died=Outcome']
    assert main(base) == 0
    assert "'CRP (mg/L)' not used" in capsys.readouterr().out  # undeclared: noted, not used
    assert main([*base, "--lab", "crp:log"]) == 0
    out = capsys.readouterr().out
    assert "markers: ct_score, ldh, crp" in out and "declared labs: crp (log, up)" in out
    assert "not used" not in out and "covariates" not in out
    # a declared lab is validated like the built-in ones, naming file, row and column
    path.write_text(path.read_text().replace("260,0,40", "260,0,-4"))
    assert main([*base, "--lab", "crp:log"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {path}, row 3, column 'CRP (mg/L)': crp must be a positive number (> 0), got -4\n"


@pytest.mark.parametrize(
    ("lab", "needles"),
    [
        ("crp", ["--lab", "NAME:TRANSFORM[:DIRECTION]"]),
        ("crp:sqrt", ["unknown transform 'sqrt'", "log", "pct"]),
        ("ct_score:log", ["'ct_score' is a column bayesct knows"]),
        ("ldh:log", ["built-in lab"]),
    ],
)
def test_bad_lab_declarations_are_one_line_and_exit_2(tmp_path, capsys, lab, needles):
    path = tmp_path / "visits.csv"
    path.write_text(STATISTICIANS_CSV)
    assert main(["validate", str(path), "--map", "died=Outcome", "--lab", lab]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and err.count("\n") == 1
    for needle in needles:
        assert needle in err, (needle, err)


# -- patients of unknown outcome (a blank died) -------------------------------------------------------------
UNKNOWN_NOTE = "2 patients of unknown outcome (blank died: "


def test_simulate_with_unknown_outcomes_and_validate_notes_them_once(tmp_path, capsys):
    path = tmp_path / "sim.csv"
    argv = ["simulate", "--patients", "12", "--seed", "4", "--unknown-outcome", "2", "--out", str(path)]
    assert main(argv) == 0
    assert "2 of unknown outcome (blank died)" in capsys.readouterr().out
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    per_patient = raw.groupby("patient_id")["died"].first()
    assert (per_patient == "").sum() == 2 and set(per_patient) <= {"", "0", "1"}
    assert main(["validate", str(path)]) == 0
    captured = capsys.readouterr()
    assert (captured.out + captured.err).count(UNKNOWN_NOTE) == 1
    assert main([*argv[:-2], "--unknown-outcome", "13", "--out", str(path)]) == 2


@pytest.mark.slow
def test_a_real_cohort_fits_mapped_header_dates_declared_lab_unknown_outcome(tmp_path, capsys):
    """A cohort as a user brings it: headers with spaces and units (one mapped with --map), dates
    instead of days, a CRP column declared with --lab, one patient still in hospital. It fits from
    the CLI, says once that the patient's outcome is unknown, keeps the declaration in the fit,
    and answers a risk query from a history with CRP values."""
    from tests.modeling.conftest import crp_frame

    from bayesct.data import simulate_cohort

    frame = crp_frame(simulate_cohort(30, seed=5, unknown_outcome=1).cohort, seed=1)
    onset = pd.Timestamp("2020-02-01") + pd.to_timedelta(frame["patient_id"].str[1:].astype(int), unit="D")
    frame["onset_date"] = onset.dt.strftime("%Y-%m-%d")
    frame["scan_date"] = (onset + pd.to_timedelta(frame["day"], unit="D")).dt.strftime("%Y-%m-%d")
    users = frame.drop(columns=["day"]).rename(
        columns={"ct_score": "CT score", "ldh": "LDH (U/L)", "crp": "CRP (mg/L)", "died": "Outcome"}
    )
    data = tmp_path / "visits.csv"
    users.to_csv(data, index=False)
    fit_dir = tmp_path / "fit"
    argv = ["fit", str(data), "--map", "died=Outcome", "--lab", "crp:log", "--out", str(fit_dir)]
    argv += ["--no-progress", "--draws", "200", "--tune", "200", "--chains", "2", "--loglik-draws", "100"]
    assert main(argv) == 0
    fitted = capsys.readouterr()
    assert "loading_lab[crp]" in fitted.out and "labs.json" in fitted.out
    assert (fit_dir / "labs.json").is_file()
    history = tmp_path / "history.csv"
    first = frame.loc[frame["patient_id"] == frame["patient_id"].iloc[0]]
    first[["day", "ct_score", "ldh", "crp", "age", "sex"]].to_csv(history, index=False)
    assert main(["risk", str(fit_dir), "--history", str(history), "--json", "--draws", "100"]) == 0
    risk = capsys.readouterr()
    n_labs = int(first[["ldh", "crp"]].notna().to_numpy().sum())
    assert f'"n_lab_values": {n_labs}' in risk.out
    every = fitted.out + fitted.err + risk.out + risk.err
    assert every.count("1 patient of unknown outcome") == 1, every
    from bayesct.modeling.fit import load_fit

    fit = load_fit(fit_dir)
    assert fit.cohort.n_outcome_unknown == 1
    assert fit.tree["observed_data"]["died_obs"].sizes["outcome_patient"] == 29
    np.testing.assert_array_equal(fit.cohort.visits["day"], frame["day"])


@pytest.mark.slow
def test_sensitivity_refits_a_saved_fit_with_scaled_priors(tmp_path, capsys):
    """``bayesct sensitivity``: a saved scan_logistic fit refitted with its priors' SDs x0.25 and x4
    (in this process), every quantity's median [95% CrI] printed and written whole to the CSV."""
    data = tmp_path / "cohort.csv"
    assert main(["simulate", "--patients", "40", "--seed", "11", "--out", str(data)]) == 0
    fit_dir = tmp_path / "fit"
    argv = ["fit", str(data), "--model", "scan_logistic", "--draws", "300", "--tune", "300", "--chains", "2"]
    assert main([*argv, "--seed", "2", "--out", str(fit_dir)]) == 0
    capsys.readouterr()
    out_csv = tmp_path / "refits.csv"
    argv = ["sensitivity", str(fit_dir), "--factors", "0.25,4", "--workers", "1", "--out", str(out_csv)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Mortality priors refitted" in out and "x0.25:" in out and "x4:" in out
    assert "P(death | CT 12, day 8)" in out
    table = pd.read_csv(out_csv)
    assert set(table["priors"]) == {"as fitted", "x0.25", "x4"}
    assert not list(tmp_path.glob(".*.tmp"))
    assert main(["sensitivity", str(tmp_path / "nowhere")]) != 0


def test_sensitivity_refuses_bad_factors_with_a_message(tmp_path, capsys):
    for bad in ("0,2", "x", "-1", ""):
        with pytest.raises(SystemExit) as exc:
            main(["sensitivity", str(tmp_path), "--factors", bad])
        assert exc.value.code == 2
        assert "positive factors like 0.5,2" in capsys.readouterr().err
