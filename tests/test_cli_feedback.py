"""Feedback during long work: the compile notice, progress lines off a terminal, the risk grid's
days as its help states them, notes printed once."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pytest

from bayesct import cli
from bayesct.data import simulate_cohort
from bayesct.modeling import fit as fit_mod
from bayesct.modeling.fit import JointModel, ProgressLines


class _Stop(Exception):
    pass


@pytest.mark.parametrize(("cached", "told"), [(False, True), (True, False)])
def test_compile_notice_only_without_a_cache_record(monkeypatch, cached: bool, told: bool) -> None:
    from bayesct.modeling import nutpie_cache

    monkeypatch.setattr(nutpie_cache, "is_cached", lambda key: cached)

    def no_sampling(*a, **k):
        raise _Stop

    monkeypatch.setattr(fit_mod, "_sample", no_sampling)
    lines: list[str] = []
    with pytest.raises(_Stop):
        JointModel("joint").fit(simulate_cohort(12, seed=1).cohort, notify=lines.append)
    assert (lines == ["compiling the model (first fit of this model)…"]) is told
    if not told:
        assert lines == []


def test_is_cached_is_a_file_check(monkeypatch, tmp_path: Path) -> None:
    from bayesct.modeling import nutpie_cache

    monkeypatch.setattr(nutpie_cache, "_record_path", lambda key: tmp_path / f"{key}.json")
    monkeypatch.delenv("BAYESCT_NO_COMPILE_CACHE", raising=False)
    assert not nutpie_cache.is_cached("k") and not nutpie_cache.is_cached(None)
    (tmp_path / "k.json").write_text("{}")
    assert nutpie_cache.is_cached("k")
    monkeypatch.setenv("BAYESCT_NO_COMPILE_CACHE", "1")
    assert not nutpie_cache.is_cached("k")


@dataclass
class _Chain:
    finished_draws: int
    total_draws: int = 300
    divergences: int = 0
    tuning: bool = True


def test_progress_lines_every_few_seconds_and_at_the_end(monkeypatch) -> None:
    now = [100.0]
    monkeypatch.setattr(fit_mod.time, "monotonic", lambda: now[0])
    lines: list[str] = []
    cb = ProgressLines(lines.append, draws=200, tune=100, every=5.0)
    cb([_Chain(10), _Chain(20)])
    assert lines == []  # too soon
    now[0] += 6
    cb([_Chain(50), _Chain(60)])
    assert lines[-1].startswith("sampling: 2 chains, warm-up 50/100")
    now[0] += 1
    cb([_Chain(150, divergences=1), _Chain(160)])
    assert len(lines) == 1
    now[0] += 5
    cb([_Chain(150, divergences=1), _Chain(160)])
    assert "draws 50/200" in lines[-1] and "1 divergences" in lines[-1]
    cb([_Chain(300), _Chain(300)])  # finished: told at once, and once
    cb([_Chain(300), _Chain(300)])
    assert "draws 200/200" in lines[-1] and len(lines) == 3


def test_lines_mode_gives_nutpie_a_callback() -> None:
    kw = fit_mod._progress_lines("lines", print, draws=10, tune=10)
    assert isinstance(kw["progress_callback"], ProgressLines)
    assert fit_mod._progress_lines(True, print, draws=10, tune=10) == {}
    assert fit_mod._progress_lines("lines", None, draws=10, tune=10) == {}


@pytest.mark.parametrize(
    ("tty", "flag", "want"), [(False, None, "lines"), (True, None, True), (False, False, False)]
)
def test_fit_command_progress_off_a_terminal(monkeypatch, tmp_path: Path, tty, flag, want) -> None:
    data = tmp_path / "c.csv"
    simulate_cohort(12, seed=1).cohort.to_frame().to_csv(data, index=False)
    seen = {}

    def fake_fit(self, cohort, **kw):
        seen.update(kw)
        raise _Stop

    monkeypatch.setattr(JointModel, "fit", fake_fit)
    monkeypatch.setattr(cli.sys.stderr, "isatty", lambda: tty, raising=False)
    argv = ["fit", str(data), "--out", str(tmp_path / "out")]
    if flag is False:
        argv.append("--no-progress")
    args = cli.build_parser().parse_args(argv)
    with pytest.raises(_Stop):
        args.func(args)
    assert seen["progress"] == want and seen["notify"] is fit_mod.notify_stderr


def test_risk_grid_days_help_matches_the_default() -> None:
    from bayesct.risk import PERIOD_MID_DAYS, _grid_days

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    days = next(a for a in sub.choices["risk"]._actions if a.dest == "days")
    assert "0..30" not in days.help and "periods" in days.help
    for d in PERIOD_MID_DAYS.values():
        assert f"{d:g}" in days.help
    args = parser.parse_args(["risk", "fit", "--grid"])
    assert args.days is None
    assert _grid_days(args.days, args.days is None)[0] == list(PERIOD_MID_DAYS.values())


def test_notes_printed_once(tmp_path: Path, capsys) -> None:
    frame = simulate_cohort(10, seed=2).cohort.to_frame()
    frame["period"] = "x"  # ignored, with a note
    data = tmp_path / "c.csv"
    frame.to_csv(data, index=False)
    assert cli.main(["inspect", str(data)]) == 0
    out = capsys.readouterr()
    both = out.out + out.err
    assert both.count("periods are recomputed") == 1
