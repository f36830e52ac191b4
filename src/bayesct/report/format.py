"""One way to print an estimate: ``median [low, high]`` at :data:`~bayesct.constants.CI_PROB`."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import xarray as xr

from bayesct.constants import CI_PROB
from bayesct.modeling.diagnostics import interval


def sig_digits(value: float, mcse: float | None = None, default: int = 3) -> int:
    """Decimals worth printing: no finer than the Monte Carlo error (when given)."""
    if mcse is not None and mcse > 0 and math.isfinite(mcse):
        return max(0, -math.floor(math.log10(2 * mcse)))
    if value == 0 or not math.isfinite(value):
        return default
    return max(0, default - 1 - math.floor(math.log10(abs(value))))


def fmt_estimate(
    median: float, lo: float, hi: float, *, decimals: int | None = None, percent: bool = False
) -> str:
    """``median [lo, hi]``; probabilities as percentages when ``percent``."""
    scale = 100.0 if percent else 1.0
    m, a, b = median * scale, lo * scale, hi * scale
    if decimals is None:
        decimals = max(sig_digits(m), 0) if abs(m) >= 1 else sig_digits(m)
        decimals = min(decimals, 4)
    unit = "%" if percent else ""
    return f"{m:.{decimals}f}{unit} [{a:.{decimals}f}, {b:.{decimals}f}]"


def mortality_association_lines(post: xr.Dataset, *, ci_prob: float = CI_PROB) -> list[str]:
    """The combined mortality association as an odds ratio per SD, and a note on the gammas.

    ``mort_assoc_sd`` is the log-odds of death per SD of the patient's trajectory term
    (:mod:`bayesct.modeling.builders`); its odds ratio ``exp`` is summarised by the
    median and central interval of the draws. Empty when the fit has no such variable.
    """
    if "mort_assoc_sd" not in post:
        return []
    odds = np.exp(np.asarray(post["mort_assoc_sd"].values, dtype=float))
    lines = [
        f"odds ratio of death per SD of the patient's CT trajectory (exp mort_assoc_sd, median "
        f"[{ci_prob:.0%} CrI]): {fmt_draws(odds, ci_prob=ci_prob)}"
    ]
    if "mort_gamma" in post and post["mort_gamma"].size // (post.sizes["chain"] * post.sizes["draw"]) > 1:
        g = post["mort_gamma"]
        other = [d for d in g.dims if d not in ("chain", "draw")]
        flat = np.asarray(g.stack(_s=("chain", "draw")).transpose(*other, "_s").values, dtype=float)
        flat = flat.reshape(-1, flat.shape[-1])
        labels = [str(x) for x in g[other[0]].values] if other and other[0] in g.coords else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            corr = np.corrcoef(flat)
        off = np.triu(np.nan_to_num(corr), k=1)  # each pair once
        i, j = np.unravel_index(int(np.argmax(np.abs(off))), off.shape)
        pair = f"mort_gamma[{labels[i]}] and [{labels[j]}]" if labels else "two of them"
        lines.append(
            f"note: the mort_gamma coefficients are correlated a posteriori ({pair}: r = {corr[i, j]:.2f}); "
            "they split one trajectory effect between them, so read the odds ratio above, not any one alone."
        )
    return lines


def fmt_draws(
    draws: np.ndarray, *, ci_prob: float = CI_PROB, percent: bool = False, decimals: int | None = None
) -> str:
    med, lo, hi = interval(draws, ci_prob)
    return fmt_estimate(med, lo, hi, percent=percent, decimals=decimals)


def odds_ratio_lines(table: pd.DataFrame) -> list[str]:
    """The mortality odds ratios in user units (:meth:`~bayesct.modeling.fit.FitResult.odds_ratios`), printed.

    A heading, one line per effect (``median [low, high]``) and the scaling each rests on;
    empty when the table is.
    """
    if table.empty:
        return []
    ci = table.attrs.get("ci_prob", CI_PROB)
    lines = [f"Mortality, odds ratios of death in user units (median [{ci:.0%} CrI]):"]
    width = max(len(str(e)) for e in table["effect"])
    for r in table.itertuples():
        est = fmt_estimate(float(r.median), float(r.lo), float(r.hi))  # type: ignore[arg-type]
        lines.append(f"  {r.effect!s:<{width}}  {est}   ({r.parameter}: {r.scaling})")
    return lines
