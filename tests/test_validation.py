"""Simulation-based calibration (bayesct.validation, ``bayesct validate``).

Unit tier: the rank and coverage arithmetic, the JSON layout, the truth of the generators and a
prior-predictive cohort, without fits. Slow tier (real fits on dask.distributed): a
``LocalCluster`` of two workers and its resumption, a scheduler and a worker started as
processes and reached through the command line, and one joint-family fit scored against a
generator's truth.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bayesct.cli import main
from bayesct.constants import CT, DIED, LABS
from bayesct.modeling.spec import load_spec
from bayesct.validation import (
    REPLICATE_DIR,
    SUMMARY_FILE,
    ReplicateTask,
    calibration_cohort,
    covered,
    data_scaled,
    generator_truth,
    normalised_rank,
    replicate_seeds,
    run_replicate,
    run_validation,
    scalar_draws,
    score,
    summarise,
    thin_indices,
    truth_rank,
)

FIT: dict[str, Any] = {"draws": 100, "tune": 100, "chains": 2}


# -- arithmetic ---------------------------------------------------------------------------------------
def test_rank_counts_the_draws_below_the_truth():
    draws = np.array([0.1, 0.5, 0.2, 0.9])
    assert truth_rank(0.0, draws) == 0
    assert truth_rank(0.3, draws) == 2
    assert truth_rank(1.0, draws) == 4
    assert truth_rank(0.5, draws) == 2  # a tie counts half, rounded down


def test_thinning_is_even_and_clipped():
    np.testing.assert_array_equal(thin_indices(10, 5), [0, 2, 4, 7, 9])
    assert thin_indices(10, 0).tolist() == [0]
    assert thin_indices(10, 50).size == 10


def test_ranks_of_a_calibrated_truth_are_uniform(rng):
    """The truth drawn from the same law as the draws: ranks uniform on 0..L."""
    L = 9
    ranks = [truth_rank(rng.normal(), rng.normal(size=L)) for _ in range(4000)]
    counts = np.bincount(ranks, minlength=L + 1)
    assert counts.size == L + 1
    np.testing.assert_allclose(counts / 4000, 1 / (L + 1), atol=0.025)
    assert normalised_rank(0, L) == pytest.approx(0.05) and normalised_rank(L, L) == pytest.approx(0.95)


def test_central_interval_coverage():
    draws = np.linspace(0, 1, 1001)
    assert covered(0.5, draws, 0.5) and covered(0.26, draws, 0.5) and not covered(0.2, draws, 0.5)
    assert covered(0.06, draws, 0.9) and not covered(0.04, draws, 0.9)


def test_score_ranks_among_thinned_draws_and_covers_with_all():
    post = {"a": np.arange(200, dtype=float).reshape(2, 100), "b[x]": np.zeros((2, 100))}
    rec, kept = score(post, {"a": 100.5, "b[x]": 5.0, "missing": 1.0}, keep=20)
    assert kept == 20 and set(rec) == {"a", "b[x]"}
    assert rec["a"]["out_of"] == 20 and 9 <= rec["a"]["rank"] <= 11
    assert rec["a"]["central_50"] and rec["a"]["central_90"]
    assert rec["b[x]"]["rank"] == 20 and not rec["b[x]"]["central_90"]


def test_seeds_differ_between_replicates():
    assert replicate_seeds(0, 0) != replicate_seeds(0, 1) != replicate_seeds(1, 0)
    assert replicate_seeds(3, 2) == replicate_seeds(3, 2)


def _record(r: int, *, passed: bool = True, error: str | None = None) -> dict:
    if error:
        return {"replicate": r, "error": error}
    scores = {
        "mort_intercept": {"truth": 0.0, "rank": r, "out_of": 10, "central_50": r < 2, "central_90": True},
        "mort_beta[age]": {"truth": 1.0, "rank": 9, "out_of": 10, "central_50": False, "central_90": r == 0},
    }
    gates = {"passed": passed, "failures": [] if passed else ["bulk ESS 80 < 400"]}
    return {"replicate": r, "error": None, "scores": scores, "gates": gates, "wall_seconds": 1.0}


def test_summary_layout_is_strict_json():
    from bayesct.files import dumps_json

    settings = {"model": "scan_logistic", "generator": None, "patients": 40, "seed": 0}
    records = [_record(2), _record(0), _record(1, passed=False), _record(3, error="ValueError: boom")]
    s = summarise(records, requested=5, settings=settings)
    json.loads(dumps_json(s))  # strict: no NaN
    assert s["replicates"] == 3 and s["requested"] == 5 and s["passed_gates"] == 2
    assert s["replicate_ids"] == [0, 1, 2]
    assert s["ranks"]["mort_intercept"] == [0, 1, 2] and s["out_of"]["mort_intercept"] == [10, 10, 10]
    assert s["coverage"]["mort_intercept"] == {"central_50": 2 / 3, "central_90": 1.0, "n": 3}
    assert s["coverage"]["mort_beta[age]"]["central_90"] == pytest.approx(1 / 3)
    assert s["failed"] == [
        {"replicate": 1, "stage": "gates", "reason": "bulk ESS 80 < 400"},
        {"replicate": 3, "stage": "fit", "reason": "ValueError: boom"},
    ]
    assert [g["replicate"] for g in s["gates"]] == [0, 1, 2] and s["gates"][1]["passed"] is False
    assert s["mode"] == "calibration"


def test_generator_truth_maps_the_mortality_part():
    spec = load_spec("joint")
    truth = generator_truth(spec, "joint")
    assert truth["mort_intercept"] == -4.6 and truth["mort_beta[age]"] == 5.2
    assert truth["mort_beta[male]"] == 2.0
    # SD of 0.3 (u0 + 0.4 u1 + v_ct) + 3.5 u1 under s0 1.43, s1 1.3, rho 0.91, tau_ct 0.25
    s0, s1, rho, tau = 1.43, 1.3, 0.91, 0.25
    cov = np.array([[s0**2, rho * s0 * s1], [rho * s0 * s1, s1**2]])
    w = np.array([0.3, 0.3 * 0.4 + 3.5])
    assert truth["mort_assoc_sd"] == pytest.approx(np.sqrt(w @ cov @ w + 0.09 * tau**2))
    zones = generator_truth(spec, "zones")
    assert zones["mort_beta[age]"] == 1.8 and zones["mort_assoc_sd"] > 0
    from bayesct.validation import ValidationError

    with pytest.raises(ValidationError, match="no parameters that map"):
        generator_truth(load_spec("scan_logistic"), "joint")


def test_data_scaled_priors_are_flagged():
    spec = load_spec("joint")
    flagged = data_scaled(spec, ["mort_beta[age]", "loading_lab[nlr]", "noise_sd[ldh]", "ct_phi"])
    assert flagged == ["loading_lab[nlr]", "noise_sd[ldh]"]


def test_a_prior_predictive_cohort_keeps_the_design_and_replaces_the_values():
    from bayesct.data import simulate_cohort

    spec = load_spec("joint")
    cohort, truth = calibration_cohort(spec, 25, design_seed=4, prior_seed=5)
    design = simulate_cohort(25, seed=4).cohort
    assert cohort.n_patients == 25 and cohort.n_scans == design.n_scans
    for marker in (CT, *LABS):
        assert (cohort.visits[marker].isna() == design.visits[marker].isna()).all()
    assert not np.array_equal(cohort.visits[CT].dropna(), design.visits[CT].dropna())
    ct = cohort.visits[CT].dropna()
    assert ((ct >= 0) & (ct <= 24) & (ct == ct.round())).all()
    assert set(cohort.patients[DIED].unique()) <= {0, 1}
    assert {"mort_intercept", "mort_assoc_sd", "severity_sd[intercept]", "ct_phi"} <= set(truth)
    assert truth["severity_sd[intercept]"] > 0
    again, truth2 = calibration_cohort(spec, 25, design_seed=4, prior_seed=5)
    assert truth2 == truth and again.visits[CT].equals(cohort.visits[CT])


def test_scan_logistic_replicates_one_scan_per_patient():
    spec = load_spec("scan_logistic")
    cohort, truth = calibration_cohort(spec, 30, design_seed=1, prior_seed=2)
    assert cohort.n_scans == cohort.n_patients == 30
    assert set(truth) == {"mort_intercept", "mort_beta[ct_score]", "mort_beta[day]"}


def test_scalar_draws_names_vector_coordinates():
    import xarray as xr

    ds = xr.Dataset(
        {
            "mort_beta": (("chain", "draw", "covariate"), np.zeros((1, 3, 2))),
            "severity_cov_stds": (("chain", "draw", "severity_cov_stds_dim_0"), np.ones((1, 3, 2))),
            "mort_intercept": (("chain", "draw"), np.zeros((1, 3))),
        },
        coords={"covariate": ["age", "male"]},
    )
    names = set(scalar_draws(ds))
    assert names == {
        "mort_beta[age]",
        "mort_beta[male]",
        "severity_sd[intercept]",
        "severity_sd[slope]",
        "mort_intercept",
    }


def test_cli_validate_keeps_the_data_check_and_refuses_a_mix(tmp_path, capsys):
    from bayesct.data import simulate_cohort, write_cohort

    path = write_cohort(simulate_cohort(8, seed=0).cohort, tmp_path / "c.csv")
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert main(["inspect", str(path)]) == 0
    assert capsys.readouterr().out == out
    assert main(["validate", str(path), "--replicates", "3"]) == 2
    assert "bayesct inspect DATA" in capsys.readouterr().err
    assert main(["validate"]) == 2
    assert "--out DIR" in capsys.readouterr().err
    assert main(["validate", "--out", str(tmp_path / "v"), "--patients", "many"]) == 2
    assert "--patients" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["validate", "--help"])
    text = capsys.readouterr().out
    assert "simulation-based calibration" in text and "bayesct inspect DATA" in text


# -- real fits on dask.distributed --------------------------------------------------------------------
def _replicate_files(out: Path) -> dict[str, float]:
    return {p.name: p.stat().st_mtime_ns for p in sorted((out / REPLICATE_DIR).glob("replicate-*.json"))}


@pytest.mark.slow
def test_local_cluster_runs_and_resumes(tmp_path):
    pytest.importorskip("distributed")
    out = tmp_path / "sbc"
    lines: list[str] = []
    t0 = time.perf_counter()
    s = run_validation(
        replicates=3,
        patients=40,
        model="scan_logistic",
        seed=1,
        out_dir=out,
        workers=2,
        progress=lines.append,
        **FIT,
    )
    first = time.perf_counter() - t0
    assert s["replicates"] == 3 and s["replicate_ids"] == [0, 1, 2]
    assert s["parameters"] == ["mort_intercept", "mort_beta[ct_score]", "mort_beta[day]"]
    assert all(len(s["ranks"][p]) == 3 for p in s["parameters"])
    assert all(
        0 <= r <= n for p in s["parameters"] for r, n in zip(s["ranks"][p], s["out_of"][p], strict=True)
    )
    assert set(s["coverage"]["mort_intercept"]) == {"central_50", "central_90", "n"}
    assert len(s["gates"]) == 3  # 2 x 100 draws cannot reach the ESS gate: listed as failed at "gates"
    assert {f["stage"] for f in s["failed"]} <= {"gates"}
    on_disk = json.loads((out / SUMMARY_FILE).read_text())
    assert on_disk["ranks"] == s["ranks"]
    assert (out / "rank_histograms.png").stat().st_size > 0 and (out / "ecdf_difference.png").is_file()
    assert sum("replicate" in line and "done" in line for line in lines) == 3
    files = _replicate_files(out)
    assert len(files) == 3 and not list((out / REPLICATE_DIR).glob(".*"))

    # a rerun with one replicate more fits only that one, and leaves the others' files alone
    lines.clear()
    s2 = run_validation(
        replicates=4,
        patients=40,
        model="scan_logistic",
        seed=1,
        out_dir=out,
        workers=1,
        progress=lines.append,
        **FIT,
    )
    assert s2["replicates"] == 4 and s2["ranks"]["mort_intercept"][:3] == s["ranks"]["mort_intercept"]
    assert [line for line in lines if "done" in line] == [lines[-1]] and "replicate 3" in lines[-1]
    after = _replicate_files(out)
    assert {k: after[k] for k in files} == files and len(after) == 4
    # other settings into the same folder are refused before any fit
    from bayesct.validation import ValidationError

    with pytest.raises(ValidationError, match="another validation"):
        run_validation(replicates=2, patients=30, model="scan_logistic", seed=1, out_dir=out, **FIT)
    print(f"local cluster, 3 replicates: {first:.0f} s")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dask(*args: str) -> list[str]:
    exe = Path(sys.executable).with_name("dask")
    return [str(exe), *args] if exe.exists() else [sys.executable, "-m", "distributed.cli.dask_" + args[0]]


@pytest.mark.slow
def test_cli_validate_on_a_running_scheduler(tmp_path, capsys):
    pytest.importorskip("distributed")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = os.environ | {"PYTHONWARNINGS": "ignore"}
    procs = [
        subprocess.Popen(
            _dask("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
    ]
    try:
        time.sleep(3)
        procs.append(
            subprocess.Popen(
                _dask("worker", address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard"),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
        )
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(1, timeout=90)
        out = tmp_path / "remote"
        code = main(
            [
                "validate",
                "--replicates",
                "2",
                "--patients",
                "40",
                "--model",
                "scan_logistic",
                "--draws",
                "100",
                "--tune",
                "100",
                "--chains",
                "2",
                "--scheduler",
                address,
                "--out",
                str(out),
            ]
        )
        captured = capsys.readouterr()
        assert code == 0, captured.err
        assert "replicate 0: done" in captured.err and "replicate 1: done" in captured.err
        assert "mort_beta[ct_score]" in captured.out
        s = json.loads((out / SUMMARY_FILE).read_text())
        assert s["replicates"] == 2 and len(_replicate_files(out)) == 2
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


@pytest.mark.slow
def test_a_joint_fit_is_scored_against_the_generator_truth():
    """Coverage mode on the joint family, in process: the mapped parameters are ranked."""
    task = ReplicateTask(0, load_spec("joint"), 40, "joint", 2, **FIT)
    record = run_replicate(task)
    assert record["error"] is None, record["error"]
    assert set(record["scores"]) == {"mort_intercept", "mort_beta[age]", "mort_beta[male]", "mort_assoc_sd"}
    for rec in record["scores"].values():
        assert 0 <= rec["rank"] <= rec["out_of"] == record["thinned_draws"]
    assert record["scores"]["mort_beta[age]"]["truth"] == 5.2
    assert {"passed", "failures", "rhat_max", "ess_bulk_min"} <= set(record["gates"])
