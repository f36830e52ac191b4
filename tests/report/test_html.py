"""The HTML report: structure, self-containment, escaping, risk printing and colours (no MCMC)."""

from __future__ import annotations

import base64
import itertools
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.report.conftest import EVIL_ID, failed

from bayesct.report import html as rh

SECTION_IDS = (
    "convergence",
    "cohort",
    "classical",
    "bayesian",
    "ct-period",
    "mortality",
    "risk-grid",
    "ppc",
    "mixing",
    "spec",
    "software",
)


class _Page(HTMLParser):
    """Tags and attributes of a page, and its text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def ids(page: _Page) -> set[str]:
    return {a["id"] for _, a in page.tags if "id" in a}


def self_contained(html: str) -> None:
    """No reference leaves the page: every src/href is a data: URI or an in-page anchor."""
    page = parse(html)
    assert "http://" not in html.replace("http://www.w3.org", "")
    assert "https://" not in html
    for tag, attrs in page.tags:
        for key in ("src", "href", "srcset", "action", "data", "poster"):
            if key in attrs:
                value = attrs[key]
                assert value.startswith(("data:", "#")), (tag, key, value[:60])
        assert tag not in ("script", "link", "iframe", "object", "embed", "base"), tag
        if tag == "img":
            assert attrs["src"].startswith("data:image/"), attrs["src"][:40]
            assert attrs.get("alt")
            if attrs["src"].startswith("data:image/svg+xml;base64,"):
                svg = base64.b64decode(attrs["src"].split(",", 1)[1]).decode("utf-8")
                for ref in re.findall(r'(?:xlink:)?href="([^"]*)"', svg):
                    assert ref.startswith("#"), ref
                assert "<script" not in svg and "<image" not in svg


@pytest.fixture(scope="module")
def bare_page(report_fit) -> str:
    """The page of the mocked fit alone (no check, no grid)."""
    return rh.render_html_report(report_fit, sensitivity=False)


@pytest.fixture(scope="module")
def full_page(report_fit, report_check, report_grid) -> str:
    """The page with the check and the risk grid."""
    return rh.render_html_report(report_fit, check=report_check, grid=report_grid)


def test_every_section_is_present(full_page: str) -> None:
    page = parse(full_page)
    assert set(SECTION_IDS) <= ids(page)
    for anchor in ("#convergence", "#cohort", "#classical", "#risk-grid", "#ppc", "#mixing", "#software"):
        assert ("a", {"href": anchor}) in page.tags
    assert "No check folder given" not in full_page
    assert "No risk grid given" not in full_page


def test_no_banner_when_every_gate_passed(full_page: str, bare_page: str) -> None:
    for html in (full_page, bare_page):
        assert 'id="convergence-warning"' not in html
        assert "FAILED" not in html


def test_banner_when_a_gate_failed(report_fit) -> None:
    html = rh.render_html_report(failed(report_fit), sensitivity=False)
    page = parse(html)
    assert "convergence-warning" in ids(page)
    # the banner comes first in the body, before the header
    body_tags = [t for t, _ in page.tags]
    assert body_tags.index("div") < body_tags.index("header")
    assert "R-hat 1.200 &gt; 1.01 (worst: severity_rho)" in html
    assert '<td class="fail">FAILED</td>' in html
    text = "".join(page.text)
    assert "R-hat, largest" in text and "1.200" in text


def test_absent_inputs_say_so_in_one_line(bare_page: str) -> None:
    page = parse(bare_page)
    assert set(SECTION_IDS) <= ids(page)
    absent = [
        "".join(page.text[i + 1 : i + 2])
        for i, (tag, a) in enumerate(page.tags)
        if tag == "p" and a.get("class") == "absent"
    ]
    text = "".join(page.text)
    assert "No check folder given (--check)" in text
    assert "No risk grid given (--grid)" in text
    assert 'class="absent"' in bare_page
    assert len(re.findall(r'<p class="absent">', bare_page)) == 3  # CT bands, risk grid, PPC
    del absent


def test_page_is_self_contained(full_page: str, bare_page: str) -> None:
    self_contained(full_page)
    self_contained(bare_page)
    assert 'http-equiv="Content-Security-Policy"' in full_page
    assert "default-src 'none'" in full_page


def test_images_are_data_uris(full_page: str) -> None:
    imgs = [a for t, a in parse(full_page).tags if t == "img"]
    assert len(imgs) >= 4  # CT by period, odds ratios, PPC intervals, chains
    assert all(a["src"].startswith("data:image/svg+xml;base64,") for a in imgs)


def test_patient_id_with_markup_is_printed_as_text(evil_fit) -> None:
    html = rh.render_html_report(evil_fit, sensitivity=False, n_slowest=3)
    assert EVIL_ID not in html
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the slowest-mixing table names the patient
    page = parse(html)
    assert any(EVIL_ID in t for t in page.text)  # read back as text, not as a tag
    assert all(tag != "script" for tag, _ in page.tags)


def test_header_facts(full_page: str, report_fit) -> None:
    from bayesct import __version__
    from bayesct.modeling.fit import data_fingerprint

    text = " ".join(parse(full_page).text)
    assert f"{report_fit.cohort.n_patients} patients ({report_fit.cohort.n_deaths} died)" in text
    assert data_fingerprint(report_fit.cohort)["sha256"] in text
    assert __version__ in text
    assert "joint" in text


def test_ppc_table_names_and_ppp(full_page: str, report_check) -> None:
    page = parse(full_page)
    text = " ".join(page.text)
    # user-facing names, never the internal keys
    assert "tau_sign_" not in full_page
    assert "kendall_tau[" not in text and "ct_mw_p[" not in text and "logistic_coef[" not in text
    assert "Kendall tau-b, CT score with LDH (U/L)" in text
    assert "CT score, survivors vs non-survivors, days 6-10: Mann-Whitney p" in text
    assert "Kendall tau of the CT score with Lymphocyte count (G/L) is negative" in text
    # PPP defined once, shown with its Monte Carlo error
    assert len(re.findall(r"<dfn\b", full_page)) == 1
    assert re.search(
        r"<dfn id=\"def-ppp\"><abbr title=\"posterior predictive p-value\">PPP</abbr></dfn>", full_page
    )
    assert re.search(r"\d\.\d{3} ± \d\.\d{3}", text)
    # counts as integers: valid replicates out of those computed
    n = len(report_check.replicated)
    assert re.search(rf"\b\d+ of {n}\b", text)
    assert not re.search(rf"\bof {n}\.0\b", text)
    # the share of replicates reproducing each finding
    assert "share of replicates reproducing it" in text
    assert re.search(r"\b\d{1,3}%", text)


def test_pareto_k_caveat_follows_the_check(report_fit, report_check) -> None:
    checks = rh.CheckTables.from_result(report_check)
    checks.loo = dict(checks.loo or {}, n_bad_k=3, max_pareto_k=1.4, n_patients=40)
    html = rh.render_html_report(report_fit, check=checks, sensitivity=False)
    assert "Pareto k &gt; 0.7 for 3 of 40 patients" in html
    checks.loo = dict(checks.loo, n_bad_k=0, max_pareto_k=0.4)
    html = rh.render_html_report(report_fit, check=checks, sensitivity=False)
    assert "Caveat: Pareto k" not in html


def test_check_read_from_its_folder(tmp_path: Path, report_fit, report_check) -> None:
    (tmp_path / "ppc.json").write_text(report_check.to_json(), encoding="utf-8")
    from_dir = rh.render_html_report(report_fit, check=tmp_path, sensitivity=False)
    text = " ".join(parse(from_dir).text)
    assert "Kendall tau-b, CT score with LDH (U/L)" in text
    assert "Dynamic prediction at landmark days" in text
    assert "Mortality calibration" in text
    with pytest.raises(Exception, match=r"ppc\.json"):
        rh.render_html_report(report_fit, check=tmp_path / "nothing", sensitivity=False)


def test_risk_grid_heat_map(full_page: str, report_grid: pd.DataFrame) -> None:
    text = " ".join(parse(full_page).text)
    assert "for a patient of age 60, female" in text
    # 25 CT scores x 5 periods, each cell coloured by a band
    assert len(re.findall(r'class="risk band-\d"', full_page)) >= 25 * 5
    assert not re.search(r"(?<![\d.])0\.0%", full_page)


def test_grid_from_csv_with_patient(tmp_path: Path, report_fit, report_grid: pd.DataFrame) -> None:
    path = tmp_path / "grid.csv"
    report_grid.to_csv(path, index=False)
    html = rh.render_html_report(
        report_fit, grid=path, grid_patient={"age": 71, "sex": "male"}, sensitivity=False
    )
    assert "for a patient of age 71, male" in html
    html = rh.render_html_report(report_fit, grid=path, sensitivity=False)
    assert "covariates not recorded with the grid" in html


def test_small_risks_print_below_half_a_percent() -> None:
    assert rh.fmt_risk(0.0) == "<0.5%"
    assert rh.fmt_risk(0.0049) == "<0.5%"
    assert rh.fmt_risk(0.005) == "0.5%"
    assert rh.fmt_risk(0.1234) == "12.3%"
    assert rh.fmt_risk(float("nan")) == "NA"
    assert rh.fmt_risk_interval(0.001, 0.0, 0.02) == "<0.5% [<0.5%, 2.0%]"
    grid = pd.DataFrame(
        {"ct_score": [0, 1], "day": [8.0, 8.0], "median": [1e-5, 0.2], "lo": [0.0, 0.1], "hi": [0.003, 0.3]}
    )
    table = rh.risk_heatmap(grid, interval_in_cell=True)
    cells = [c.text for row in table.rows for c in row[1:]]
    assert "<0.5% [<0.5%, <0.5%]" in cells
    assert not any(re.search(r"(?<![\d.])0(\.0+)?%", c) for c in cells)
    html = (
        rh._environment()
        .from_string("{% from 'macros.html.j2' import table %}{{ table(t) }}")
        .render(t=table)
    )
    assert "&lt;0.5%" in html and "<0.5%" not in html


def test_colours_run_green_to_red_as_risk_rises() -> None:
    hues = [rh.colour_hue(c) for c in rh.RISK_COLOURS]
    assert 80 <= hues[0] <= 160  # green
    assert hues[-1] <= 15 or hues[-1] >= 345  # red
    assert all(a > b for a, b in itertools.pairwise(hues))  # every step towards red
    risks = np.linspace(0.0, 1.0, 201)
    bands = [rh.risk_band_index(float(p)) for p in risks]
    assert bands == sorted(bands)
    assert bands[0] == 0 and bands[-1] == len(rh.RISK_COLOURS) - 1
    assert rh.risk_colour(0.01)[0] == rh.RISK_COLOURS[0]
    assert rh.risk_colour(0.9)[0] == rh.RISK_COLOURS[-1]
    # the paper's band edges (5%, 30%, 50%)
    assert [rh.risk_band_index(p) for p in (0.049, 0.05, 0.299, 0.30, 0.499, 0.50)] == [0, 1, 1, 2, 2, 3]
    # in a heat map, a rising risk never goes back to a greener band
    grid = pd.DataFrame({"ct_score": range(25), "day": 8.0, "median": np.linspace(0.001, 0.95, 25)})
    grid["lo"], grid["hi"] = grid["median"] / 2, np.minimum(1.0, grid["median"] * 1.5)
    table = rh.risk_heatmap(grid)
    colours = [row[1].bg for row in reversed(table.rows)]  # lowest CT score first
    order = [rh.RISK_COLOURS.index(c) for c in colours]
    assert order == sorted(order) and order[0] == 0 and order[-1] == 3


def test_statistic_and_finding_labels() -> None:
    assert (
        rh.statistic_label("kendall_tau[lymphocyte_count]")
        == "Kendall tau-b, CT score with Lymphocyte count (G/L)"
    )
    assert rh.statistic_label("ct_auc[>20]").startswith("CT score, days >20")
    assert rh.statistic_label("n_deaths") == "Number of deaths"
    assert "ct_score" not in rh.statistic_label("logistic_coef[ct_score]")
    assert rh.finding_label("period_0-5_no_difference").endswith("days 0-5")
    assert rh.finding_label("period_6-10_difference").endswith("days 6-10")
    assert "negative" in rh.finding_label("tau_sign_lymphocyte_count")
    assert "tau_sign" not in rh.finding_label("tau_sign_ldh")


def test_mortality_in_user_units(report_fit) -> None:
    table = rh.mortality_table(report_fit)
    assert list(table["label"]) == ["CT trajectory, per SD", "age, per 10 years", "male vs female"]
    beta = report_fit.posterior["mort_beta"].sel(covariate="age").values.ravel()
    scale = float(report_fit.design.covariate_scale[list(report_fit.design.covariate_names).index("age")])
    assert table["median"].iloc[1] == pytest.approx(float(np.median(np.exp(beta * 10 / scale))))
    assert all(re.fullmatch(r"[\d.]+ \[[\d.]+, [\d.]+\]", e) for e in table["estimate"])


def test_slowest_parameters(evil_fit) -> None:
    table, draws = rh.slowest_parameters(evil_fit.posterior, n=3)
    assert len(table) == 3 and list(draws) == list(table["parameter"])
    assert table["ess_bulk"].is_monotonic_increasing
    assert any(EVIL_ID in p for p in table["parameter"])
    assert all(d.shape == (2, evil_fit.posterior.sizes["draw"]) for d in draws.values())


def test_plots_return_figures_on_log_scale_for_p_values(report_check) -> None:
    from matplotlib.figure import Figure

    from bayesct.report import figures

    stats = report_check.statistics
    fig = figures.plot_ppc_intervals(statistics=stats, labels=rh.FAMILY_TITLES)
    assert isinstance(fig, Figure)
    scales = {ax.get_title(loc="left"): ax.get_xscale() for ax in fig.axes}
    assert scales[rh.FAMILY_TITLES["ct_mw_p"]] == "log"
    assert scales[rh.FAMILY_TITLES["kendall_tau"]] == "linear"
    for ax in fig.axes:
        assert ax.get_xlabel()
    fig = figures.plot_chains(
        draws={"a": np.random.default_rng(0).normal(size=(2, 50))}, ess_bulk={"a": 87.4}
    )
    assert isinstance(fig, Figure)
    assert "bulk ESS 87)" in fig.axes[0].get_title(loc="left")
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes)


def test_importing_the_report_sets_no_backend() -> None:
    code = (
        "import sys, matplotlib; before = dict.__getitem__(matplotlib.rcParams, 'backend'); "
        "import bayesct.report.html, bayesct.report.figures; "
        "print('matplotlib.pyplot' in sys.modules, dict.__getitem__(matplotlib.rcParams, 'backend') == before)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_write_and_cli(tmp_path: Path, report_fit, report_grid: pd.DataFrame) -> None:
    from bayesct.cli import main

    fit_dir = report_fit.save(tmp_path / "fit")
    grid = tmp_path / "grid.csv"
    report_grid.to_csv(grid, index=False)
    out = tmp_path / "page" / "report.html"
    assert (
        main(
            ["report", str(fit_dir), "--grid", str(grid), "--age", "60", "--sex", "female", "--out", str(out)]
        )
        == 0
    )
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert "for a patient of age 60, female" in html
    assert "No check folder given" in html
    assert main(["report", str(tmp_path / "missing"), "--out", str(out)]) == 2


def test_per_scan_model_says_what_it_cannot_show(small_cohort) -> None:
    from tests.report.conftest import mock_fit

    fit = mock_fit(small_cohort, "scan_logistic", draws=60)
    html = rh.render_html_report(fit)
    text = " ".join(parse(html).text)
    assert set(SECTION_IDS) <= ids(parse(html))
    assert "does not generate CT scores: no predictive bands" in text
    assert "it has no posterior predictive check" in text
    assert "CT score, per point" in text  # its odds ratio in user units
    self_contained(html)


def test_bayesct_report_is_the_html_writer(report_fit, tmp_path):
    import bayesct as bc

    page = bc.report(report_fit, path=tmp_path / "page.html", sensitivity=False)
    assert page == tmp_path / "page.html"
    assert page.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")


def test_patients_of_unknown_outcome_are_noted(small_cohort) -> None:
    from tests.report.conftest import mock_fit

    from bayesct.data.simulate import blank_outcomes
    from bayesct.report.markdown import fit_section

    cohort = blank_outcomes(small_cohort, 2, seed=3)
    fit = mock_fit(cohort, "ct_only", draws=40)
    text = " ".join(parse(rh.render_html_report(fit, sensitivity=False)).text)
    assert text.count(str(cohort.outcome_note)) == 1
    assert "The tables by outcome: 2 patients of unknown outcome" in text
    assert f"Note: {cohort.outcome_note}." in fit_section(Path("unused"), fit)
