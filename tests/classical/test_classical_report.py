"""run_all / write_tables / summary.md and the paper's findings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayesct.classical import (
    PAPER_TAU,
    TABLE_KEYS,
    findings,
    format_p,
    markdown_table,
    run_all,
    summary_markdown,
    write_tables,
)
from bayesct.constants import CT, DIED, MARKER_LABELS, PERIOD_LABELS


@pytest.fixture(scope="module")
def tables(paper_sized):
    return run_all(paper_sized)


def test_run_all_keys(tables):
    assert list(tables) == list(TABLE_KEYS)
    assert set(TABLE_KEYS) == {
        "baseline",
        "admission",
        "period_comparison",
        "mixed_model",
        "mortality_logistic",
        "mortality_grid",
        "kendall",
    }
    assert all(isinstance(t, pd.DataFrame) for t in tables.values())


def test_write_tables(tables, tmp_path):
    paths = write_tables(tables, tmp_path / "out")
    names = sorted(p.name for p in paths)
    assert names == sorted([f"{k}.csv" for k in TABLE_KEYS] + ["summary.md"])
    assert all(p.exists() and p.stat().st_size > 0 for p in paths)
    back = pd.read_csv(tmp_path / "out" / "kendall.csv")
    np.testing.assert_allclose(back["tau"], tables["kendall"]["tau"])


def test_summary_mentions_each_finding(tables, tmp_path):
    write_tables(tables, tmp_path)
    text = (tmp_path / "summary.md").read_text(encoding="utf-8")
    for label in PERIOD_LABELS:
        assert f"days {label}" in text
    assert "0.412" in text
    for lab in PAPER_TAU:
        assert MARKER_LABELS[lab] in text
    assert "coefficient > 0" in text and "day coefficient < 0" in text
    assert "this cohort shows it" in text or "this cohort does not show it" in text
    assert "| period |" in text  # tables rendered as markdown
    assert "Table 3 - mortality probability" in text


def test_findings_values(tables):
    f = findings(tables).set_index("finding")
    p1 = tables["period_comparison"]["p_value"].iloc[0]
    assert f.loc["period_0-5_no_difference", "reproduced"] == (p1 >= 0.05)
    for label in PERIOD_LABELS[1:]:
        p = tables["period_comparison"].set_index("period").loc[label, "p_value"]
        assert f.loc[f"period_{label}_difference", "reproduced"] == (p < 0.05)
    ml = tables["mortality_logistic"].set_index("term")
    assert f.loc["ct_coef_positive", "reproduced"] == (ml.loc["ct_score", "coef"] > 0)
    assert f.loc["day_coef_negative", "reproduced"] == (ml.loc["day", "coef"] < 0)
    kd = tables["kendall"].set_index("marker")
    for lab, tau in PAPER_TAU.items():
        assert f.loc[f"tau_sign_{lab}", "reproduced"] == (np.sign(kd.loc[lab, "tau"]) == np.sign(tau))
    assert f["reproduced"].dtype == "boolean"


def test_findings_na_when_not_assessable(make_cohort):
    c = make_cohort(labs=("nlr",))
    died = np.zeros(c.n_patients, dtype=np.int64)
    t = run_all(c.with_values({DIED: died}))  # nobody died: no test, no logistic fit
    f = findings(t).set_index("finding")
    not_tau = [i for i in f.index if not i.startswith("tau_sign_")]
    assert f.loc[not_tau, "reproduced"].isna().all()
    assert f.loc["tau_sign_nlr", "reproduced"] is not pd.NA  # taus do not depend on the outcome
    assert f.loc["tau_sign_ldh", "reproduced"] is pd.NA  # lab absent
    assert "cannot" in f.loc["tau_sign_ldh", "sentence"]
    assert t["mortality_logistic"]["coef"].isna().all()
    text = summary_markdown(t)
    assert "cannot assess" in text


def test_markdown_table_and_format_p():
    frame = pd.DataFrame(
        {"name": ["a|b", "c"], "p_value": [0.0001, np.nan], "x": [1.23456, 2.0], "ok": [True, False]}
    )
    md = markdown_table(frame)
    lines = md.splitlines()
    assert lines[0] == "| name | p_value | x | ok |"
    assert lines[1] == "|---|---|---|---|"
    assert lines[2] == "| a\\|b | <0.001 | 1.235 | yes |"
    assert lines[3] == "| c | NA | 2 | no |"
    assert markdown_table(frame.iloc[:0]) == "(empty)"
    assert format_p(0.0412) == "0.041" and format_p(0.0004) == "<0.001" and format_p(float("nan")) == "NA"


def test_run_all_without_ct(cohort):
    t = run_all(cohort.with_values({CT: np.full(cohort.n_visits, np.nan)}))
    assert t["mortality_grid"].empty
    assert t["period_comparison"]["p_value"].isna().all()
    summary_markdown(t)
