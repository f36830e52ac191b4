"""Faults survived, nothing corrupted: strict JSON, atomic output folders, interruption, refusing partial fits."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from bayesct.cli import main
from bayesct.data import simulate_cohort, write_cohort
from bayesct.errors import IncompleteFitError, Interrupted, OutputExistsError
from bayesct.files import atomic_dir, check_output_dir, dumps_json, shown, to_jsonable, write_json
from bayesct.interrupts import catch_signals, raise_if_interrupted, received
from bayesct.modeling.diagnostics import Diagnostics, compute_diagnostics
from bayesct.modeling.fit import COMPLETE_MARKER, FitResult, JointModel
from bayesct.modeling.mcmc_stats import diagnose_dataset
from bayesct.modeling.spec import load_spec


def _strict_loads(text: str):
    def refuse(name: str):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


# -- strict JSON ------------------------------------------------------------------------------------
@dataclass
class _Point:
    x: float
    label: str


def test_to_jsonable_makes_strict_json_of_non_finite_and_numpy_values():
    obj = {
        "nan": float("nan"),
        "inf": float("inf"),
        "-inf": -np.inf,
        "f32": np.float32(1.5),
        "f32_nan": np.float32("nan"),
        "i64": np.int64(7),
        "bool": np.bool_(True),
        "array": np.array([[1.0, np.nan], [np.inf, 2.0]]),
        "ints": np.arange(3),
        "tuple": (1, np.float64(-np.inf)),
        np.int64(3): "numpy key",
        "path": Path("a") / "b",
        "point": _Point(float("nan"), "p"),
        "nested": [{"x": np.float64("nan")}],
    }
    out = to_jsonable(obj)
    assert out["nan"] is None and out["inf"] is None and out["-inf"] is None
    assert out["f32"] == 1.5 and type(out["f32"]) is float and out["f32_nan"] is None
    assert out["i64"] == 7 and type(out["i64"]) is int
    assert out["bool"] is True
    assert out["array"] == [[1.0, None], [None, 2.0]]
    assert out["ints"] == [0, 1, 2] and all(type(v) is int for v in out["ints"])
    assert out["tuple"] == [1, None]
    assert out["3"] == "numpy key"
    assert out["path"] == str(Path("a") / "b")
    assert out["point"] == {"x": None, "label": "p"}
    assert out["nested"] == [{"x": None}]
    text = dumps_json(obj)
    assert "NaN" not in text and "Infinity" not in text
    assert _strict_loads(text)["array"] == [[1.0, None], [None, 2.0]]
    with pytest.raises(TypeError, match="not JSON serialisable"):
        to_jsonable(object())


def test_write_json_is_strict_and_leaves_nothing_on_failure(tmp_path):
    path = write_json(tmp_path / "out.json", {"a": np.float64("nan"), "b": np.int32(2)})
    assert _strict_loads(path.read_text()) == {"a": None, "b": 2}
    with pytest.raises(TypeError):
        write_json(tmp_path / "out.json", {"a": object()})
    assert _strict_loads(path.read_text()) == {"a": None, "b": 2}  # the old file is intact
    assert _leftovers(tmp_path) == []


def test_diagnostics_json_round_trip_of_non_finite_gates():
    diag = Diagnostics(
        rhat_max=float("nan"),
        ess_bulk_min=float("inf"),
        ess_tail_min=-np.inf,
        divergences=0,
        bfmi_min=float("nan"),
        passed=False,
        sampler="nutpie",
        draws=10,
        chains=1,
        wall_seconds=1.0,
    )
    back = Diagnostics.from_dict(_strict_loads(dumps_json(diag.to_dict())))
    assert math.isnan(back.rhat_max) and math.isnan(back.ess_bulk_min) and math.isnan(back.bfmi_min)
    assert "R-hat max nan" in back.message()


# -- atomic output folders --------------------------------------------------------------------------
def test_atomic_dir_appears_only_when_complete(tmp_path):
    final = tmp_path / "sub" / "out"
    with atomic_dir(final) as tmp:
        assert tmp.parent == final.parent and tmp.name.startswith(".out.partial-")
        (tmp / "a.txt").write_text("a")
        assert not final.exists()
        assert shown(tmp / "a.txt") == final / "a.txt"
    assert (final / "a.txt").read_text() == "a"
    assert _leftovers(final.parent) == []


def test_atomic_dir_leaves_nothing_on_an_exception(tmp_path):
    final = tmp_path / "out"
    with pytest.raises(RuntimeError, match="boom"), atomic_dir(final) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("boom")
    assert not final.exists()
    assert _leftovers(tmp_path) == []


def test_atomic_dir_refuses_a_non_empty_folder_and_replaces_it_only_when_complete(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with pytest.raises(OutputExistsError, match="--force"), atomic_dir(final):
        pass
    with pytest.raises(RuntimeError), atomic_dir(final, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
        raise RuntimeError("failed half-way")
    assert sorted(p.name for p in final.iterdir()) == ["old.txt"]  # untouched by the failed run
    with atomic_dir(final, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
        assert (final / "old.txt").is_file()  # still there while the new one is written
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
    assert _leftovers(tmp_path) == []
    # an empty folder is simply filled; a file is never an output folder
    empty = tmp_path / "empty"
    empty.mkdir()
    with atomic_dir(empty) as tmp:
        (tmp / "x").write_text("x")
    assert (empty / "x").is_file()
    (tmp_path / "file").write_text("f")
    with pytest.raises(OutputExistsError, match="not a folder"):
        check_output_dir(tmp_path / "file", overwrite=True)


def test_force_never_replaces_the_current_folder(tmp_path, monkeypatch):
    (tmp_path / "keep.txt").write_text("mine")
    monkeypatch.chdir(tmp_path)
    for path in (".", str(tmp_path), ".."):
        with (
            pytest.raises(OutputExistsError, match="holds the current folder"),
            atomic_dir(path, overwrite=True),
        ):
            pass
    assert (tmp_path / "keep.txt").is_file() and _leftovers(tmp_path) == []
    assert not [p for p in tmp_path.parent.iterdir() if ".partial-" in p.name]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_inside_an_atomic_dir_leaves_nothing(tmp_path, sig):
    final = tmp_path / "out"
    with catch_signals():
        with pytest.raises(KeyboardInterrupt), atomic_dir(final) as tmp:
            (tmp / "a").write_text("a")
            os.kill(os.getpid(), sig)
            time.sleep(1)  # the handler raises before this ends
        assert received() == sig
    assert not final.exists() and _leftovers(tmp_path) == []


def test_a_swallowed_signal_still_stops_the_atomic_dir(tmp_path):
    """A library that catches the KeyboardInterrupt and returns (as nutpie.sample does) is caught at the rename."""
    final = tmp_path / "out"
    with catch_signals():
        with pytest.raises(Interrupted, match="SIGTERM"), atomic_dir(final) as tmp:
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)
            except KeyboardInterrupt:
                pass  # "return the trace so far"
            (tmp / "partial").write_text("x")
        with pytest.raises(Interrupted):
            raise_if_interrupted()
    assert not final.exists() and _leftovers(tmp_path) == []
    with catch_signals():  # a new run starts with a clean record
        raise_if_interrupted()


# -- fits: a cheap stand-in for sampling ------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_cohort():
    return simulate_cohort(12, seed=2).cohort


def _fake_fit(cohort, *, nan: float = 0.0, draws: int = 40, seed: int = 0) -> FitResult:
    """A scan_logistic FitResult of normal draws (no sampling); ``nan``: the share of draws left NaN."""
    rng = np.random.default_rng(seed)
    shape = (2, draws)
    post = xr.Dataset(
        {
            "mort_intercept": (("chain", "draw"), rng.normal(size=shape)),
            "mort_beta": (("chain", "draw", "term"), rng.normal(0.1, 0.02, size=(*shape, 2))),
            "coef_per_unit": (("chain", "draw", "term"), rng.normal(0.1, 0.02, size=(*shape, 2))),
        },
        coords={"chain": [0, 1], "draw": np.arange(draws), "term": ["ct_score", "day"]},
    )
    if nan:
        cut = int(draws * (1 - nan))
        post = post.where(post["draw"] < cut)  # an interrupted chain: its last draws never came
    tree = xr.DataTree.from_dict({"posterior": post})
    diag = compute_diagnostics(post, None, sampler="nutpie", wall_seconds=0.1)
    return FitResult(tree, load_spec("scan_logistic"), cohort, diag, settings={"sampler": "nutpie"})


def test_the_gate_on_non_finite_draws_says_refit_never_reparameterise(tiny_cohort):
    fit = _fake_fit(tiny_cohort, nan=0.5)
    diag = fit.diagnostics
    assert not diag.passed
    assert len(diag.failures) == 1
    assert "non-finite draws in mort_intercept (40)" in diag.failures[0]
    assert "the run was interrupted or the log-density overflowed; refit" in diag.failures[0]
    assert "reparameterise" not in diag.message() and "increase --draws" not in diag.message()
    _strict_loads(dumps_json(diag.to_dict()))
    # all NaN, infinite, and no draws at all: never a crash
    post = fit.posterior.copy(deep=True)
    post["mort_intercept"][:] = np.nan
    post["mort_beta"][0, 0, 0] = np.inf
    stats = diagnose_dataset(post)
    assert np.isnan(float(stats["rhat"]["mort_intercept"])) and np.isnan(
        float(stats["ess_bulk"]["mort_beta"][0])
    )
    assert "non-finite" in compute_diagnostics(post, None, sampler="x", wall_seconds=0).failures[0]
    empty = post.isel(draw=slice(0, 0))
    energy = xr.Dataset(
        {
            "energy": (("chain", "draw"), np.zeros((2, 0))),
            "diverging": (("chain", "draw"), np.zeros((2, 0), bool)),
        }
    )
    none = compute_diagnostics(empty, energy, sampler="x", wall_seconds=0)
    assert none.failures == ["no posterior draws: the run was interrupted; refit."]


def test_save_writes_a_completion_marker_and_refuses_non_finite_draws(tiny_cohort, tmp_path):
    out = _fake_fit(tiny_cohort).save(tmp_path / "fit")
    assert (out / COMPLETE_MARKER).is_file()
    for name in ("diagnostics.json", "fingerprint.json", COMPLETE_MARKER):
        _strict_loads((out / name).read_text())
    assert FitResult.load(out).posterior.sizes["draw"] == 40
    with pytest.raises(OutputExistsError):
        _fake_fit(tiny_cohort, seed=1).save(out)
    _fake_fit(tiny_cohort, seed=1, draws=30).save(out, overwrite=True)
    assert FitResult.load(out).posterior.sizes["draw"] == 30
    with pytest.raises(IncompleteFitError, match="non-finite draws"):
        _fake_fit(tiny_cohort, nan=0.5).save(tmp_path / "nan_fit")
    assert not (tmp_path / "nan_fit").exists() and _leftovers(tmp_path) == []


@pytest.fixture
def saved_fit(tiny_cohort, tmp_path) -> Path:
    return _fake_fit(tiny_cohort).save(tmp_path / "fit")


def test_load_refuses_a_partial_folder(saved_fit):
    (saved_fit / "data.csv").unlink()
    with pytest.raises(IncompleteFitError, match=r"is not a complete fit: missing data\.csv.*refit"):
        FitResult.load(saved_fit)


@pytest.mark.parametrize(
    ("name", "cut_short"),
    [("diagnostics.json", b'{"rhat_max": 1.0, "ess'), ("posterior.nc", b"\x89HDF\r\n"), ("spec.toml", b"[a")],
)
def test_load_refuses_an_unreadable_file(saved_fit, name, cut_short):
    FitResult.load(saved_fit)  # read once: a cached handle must not hide the new content
    (saved_fit / name).write_bytes(cut_short)
    with pytest.raises(IncompleteFitError, match=rf"{name.replace('.', '[.]')} cannot be read.*refit"):
        FitResult.load(saved_fit)


def test_load_refuses_non_finite_draws(saved_fit):
    with xr.open_datatree(saved_fit / "posterior.nc", engine="h5netcdf") as stored:
        post = stored.load()["posterior"].to_dataset()
    post["mort_intercept"][:, 20:] = np.nan
    xr.DataTree.from_dict({"posterior": post}).to_netcdf(saved_fit / "posterior.nc", engine="h5netcdf")
    with pytest.raises(
        IncompleteFitError, match=r"non-finite draws in mort_intercept \(40\).*interrupted.*refit"
    ):
        FitResult.load(saved_fit)


def test_load_accepts_a_complete_folder_without_the_marker(saved_fit):
    """As written before fit folders had a completion marker: every file there and readable."""
    (saved_fit / COMPLETE_MARKER).unlink()
    assert FitResult.load(saved_fit).spec.name == "scan_logistic"


@pytest.mark.parametrize(
    "command", [["risk", "{fit}", "--ct-score", "8", "--day", "5"], ["compare", "{fit}", "{fit}"]]
)
def test_commands_on_a_partial_fit_exit_with_the_message(saved_fit, command, capsys):
    (saved_fit / "spec.toml").unlink()
    code = main([c.format(fit=saved_fit) for c in command])
    err = capsys.readouterr().err
    assert code == 2
    assert "is not a complete fit: missing spec.toml" in err and "refit" in err
    assert "Traceback" not in err


def test_check_on_a_partial_fit_leaves_no_output(saved_fit, tmp_path, capsys):
    (saved_fit / "posterior.nc").unlink()
    out = tmp_path / "check"
    assert main(["check", str(saved_fit), "--out", str(out), "--replicates", "2"]) == 2
    assert "is not a complete fit" in capsys.readouterr().err
    assert not out.exists() and _leftovers(tmp_path) == []


# -- the commands: --force, and interruption ------------------------------------------------------
@pytest.fixture
def cohort_csv(tiny_cohort, tmp_path) -> Path:
    return write_cohort(tiny_cohort, tmp_path / "cohort.csv")


def _fit_args(data: Path, out: Path, *extra: str) -> list[str]:
    return ["fit", str(data), "--out", str(out), "--model", "scan_logistic", "--draws", "40", *extra]


def test_fit_refuses_a_non_empty_out_before_fitting_and_force_replaces_it(
    tiny_cohort, cohort_csv, tmp_path, monkeypatch, capsys
):
    calls = []

    def fake(self, cohort, **kw):
        calls.append(kw)
        return _fake_fit(cohort)

    monkeypatch.setattr(JointModel, "fit", fake)
    out = tmp_path / "fit"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(_fit_args(cohort_csv, out)) == 2
    err = capsys.readouterr().err
    assert "already exists and is not empty" in err and "--force" in err
    assert calls == [] and (out / "keep.txt").read_text() == "mine"
    assert main([*_fit_args(cohort_csv, out), "--force"]) == 0
    assert not (out / "keep.txt").exists() and (out / COMPLETE_MARKER).is_file()
    assert f"Fit written to {out}" in capsys.readouterr().out
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "command",
    [
        ["classical", "{data}", "--out", "{out}"],
        ["check", "{fit}", "--out", "{out}"],
        ["demo", "--out", "{out}"],
    ],
)
def test_folder_commands_refuse_a_non_empty_out(cohort_csv, tmp_path, command, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = [c.format(data=cohort_csv, out=out, fit=tmp_path) for c in command]
    assert main(args) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    assert "--force" in " ".join(
        a.option_strings[0] for a in _subparser(command[0])._actions if a.option_strings
    )


def _subparser(name: str):
    from bayesct.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if hasattr(a, "choices") and isinstance(a.choices, dict))
    return sub.choices[name]


@pytest.mark.parametrize(
    ("sig", "then_raise"),
    [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)],
)
def test_an_interrupted_fit_exits_130_and_writes_nothing(
    tiny_cohort, cohort_csv, tmp_path, monkeypatch, capsys, sig, then_raise
):
    """As nutpie does: the sampler catches the KeyboardInterrupt and returns a partial trace
    (or fails on its way out); the command still stops with nothing at --out."""

    def interrupted_fit(self, cohort, **kw):
        try:
            os.kill(os.getpid(), sig)
            time.sleep(1)
        except KeyboardInterrupt:
            if then_raise:
                raise ValueError("Sampler has no results to take") from None
        return _fake_fit(cohort, nan=0.5)

    monkeypatch.setattr(JointModel, "fit", interrupted_fit)
    out = tmp_path / "fit"
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert main(_fit_args(cohort_csv, out)) == 130
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines()[-1] == "interrupted"
    assert "Traceback" not in captured.err and "Fit written" not in captured.out
    assert not out.exists() and _leftovers(tmp_path) == []
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers  # restored


# -- a real `bayesct fit`, interrupted --------------------------------------------------------------
def _run_and_interrupt(
    data: Path, out: Path, sig: signal.Signals, when: str, delay: float, timeout: float = 240.0
):
    """Run ``bayesct fit`` with stderr on a terminal (so nutpie draws its progress) and send ``sig``
    ``delay`` seconds after a line with ``when`` shows on stderr ("Fitting model": the model is
    being built and compiled; "Draws": nutpie's progress, from when it starts its sampler)."""
    import pty
    import select

    exe = Path(sys.executable).with_name("bayesct")
    master, slave = pty.openpty()
    # Many draws: sampling lasts long after the progress first shows; the signal cuts it short.
    argv = [*_fit_args(data, out)[:-2], "--draws", "200000", "--tune", "200", "--chains", "2", "--seed", "5"]
    proc = subprocess.Popen(
        [str(exe), *argv, "--progress"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    err = b""
    seen_at = sent_at = None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                err += chunk
            if seen_at is None and re.search(re.escape(when.encode()) + rb"[^\n]*\n", err):  # a whole line
                seen_at = time.monotonic()
            if sent_at is None and seen_at is not None and time.monotonic() >= seen_at + delay:
                proc.send_signal(sig)
                sent_at = time.monotonic()
            if proc.poll() is not None and not ready:
                break
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert sent_at is not None, err.decode(errors="replace")[-2000:]
    return rc, err.decode(errors="replace"), time.monotonic() - sent_at


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and terminals")
def test_bayesct_fit_interrupted_at_three_moments(tmp_path):
    # The modeling tests' small cohort and the fit CLI test's model, so the compilation is shared.
    data = write_cohort(simulate_cohort(40, seed=7).cohort, tmp_path / "cohort.csv")
    moments = [
        (signal.SIGINT, "Fitting model", 0.0),  # building and compiling the model
        (signal.SIGINT, "Draws", 0.0),  # nutpie starting its sampler
        (signal.SIGTERM, "Draws", 1.5),  # sampling
    ]
    for i, (sig, when, delay) in enumerate(moments):
        out = tmp_path / f"fit{i}"
        rc, err, stop_s = _run_and_interrupt(data, out, sig, when, delay)
        assert rc == 130, err[-2000:]
        assert err.strip().splitlines()[-1].strip() == "interrupted", err[-2000:]
        assert "Traceback" not in err
        assert stop_s < 30
        assert not out.exists()
        assert _leftovers(tmp_path) == []
