"""The top-level API (``import bayesct as bc``) and the direction of the package's layers."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import bayesct as bc

SRC = Path(bc.__file__).parent
HEAVY = ("pymc", "pytensor", "numba", "nutpie", "matplotlib", "arviz")
PUBLIC = [name for name in bc.__all__ if not name.startswith("__")]
_EXAMPLES = re.compile(r"^\s*Examples\n\s*-{8,}\n", re.MULTILINE)


def _imports(path: Path) -> list[str]:
    """Every module a source file imports (absolute names; relative imports made absolute)."""
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            names.append(base)
            names += [f"{base}.{a.name}" for a in node.names]
    return names


def test_all_is_sorted_and_complete():
    expected = {
        "Cohort",
        "FitResult",
        "JointModel",
        "classical_tables",
        "compare",
        "load_default_cohort",
        "load_fit",
        "patient_risks",
        "posterior_predictive_check",
        "read_cohort",
        "report",
        "risk_grid",
        "risk_query",
        "simulate_cohort",
    }
    assert expected <= set(PUBLIC)
    assert set(PUBLIC) <= set(dir(bc))
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = bc.nothing_here  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_resolves_with_examples(name):
    obj = getattr(bc, name)
    assert callable(obj), name
    doc = obj.__doc__ or ""
    assert doc.strip(), f"bayesct.{name} has no docstring"
    assert _EXAMPLES.search(doc), f"bayesct.{name}'s docstring has no Examples section"
    assert "import bayesct as bc" in doc


def test_names_are_the_library_functions():
    from bayesct.checks.calibration import compare_models
    from bayesct.classical import run_all
    from bayesct.modeling.fit import FitResult
    from bayesct.report.markdown import write_report

    assert bc.compare is compare_models
    assert bc.classical_tables is run_all
    assert bc.FitResult is FitResult
    assert bc.load_fit.__module__ == "bayesct.modeling.fit"
    # the report package, callable, stays so whichever of its modules were imported first
    import bayesct.report.format  # noqa: F401

    assert callable(bc.report) and bc.report.markdown.write_report is write_report


def test_import_bayesct_is_light():
    code = (
        "import json, sys, time\n"
        "t = time.perf_counter()\n"
        "import bayesct, bayesct.modeling, bayesct.report\n"
        "seconds = time.perf_counter() - t\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(json.dumps({'seconds': seconds, 'heavy': heavy, 'version': bayesct.__version__}))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    out = json.loads(run.stdout)
    assert out["heavy"] == [], out
    assert out["version"] == bc.__version__
    assert out["seconds"] < 1.0, out


def test_fitting_code_imports_no_checks_or_report():
    """The layers point one way: the model knows nothing of the checks or the report."""
    for path in sorted((SRC / "modeling").glob("*.py")):
        bad = [m for m in _imports(path) if m.startswith(("bayesct.checks", "bayesct.report"))]
        assert not bad, f"{path.name} imports {bad}"


def test_only_the_report_and_the_command_import_the_report():
    """data -> model -> fit -> checks / risk -> report -> CLI: nothing below the report imports it."""
    above = {"cli.py", "demo.py", "__init__.py"}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        if rel.parts[0] == "report" or str(rel) in above:
            continue
        bad = [m for m in _imports(path) if m.startswith("bayesct.report")]
        assert not bad, f"{rel} imports {bad}"


def test_only_the_cli_imports_argparse():
    users = sorted(str(path.relative_to(SRC)) for path in SRC.rglob("*.py") if "argparse" in _imports(path))
    assert users == ["cli.py"]
    assert not [p.name for p in SRC.rglob("*.py") if re.search(r"^def run_cli\b", p.read_text(), re.M)]
