"""The package's wings: the modelling wing is usable without Hydra, and imports run one way
(run wing -> modelling wing -> data), as README's Layout draws them."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pyro_vae"


def imported_modules(path: Path) -> set:
    """Every module ``path`` imports, absolute (relative imports resolved against its package)."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            module = f"{base}.{node.module}" if node.level and node.module else (node.module or base)
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


@pytest.mark.parametrize(
    "wing, forbidden",
    [
        ("modelling", ("omegaconf", "hydra", "pyro_vae.runs")),
        ("data", ("omegaconf", "hydra", "pyro_vae.runs", "pyro_vae.modelling")),
    ],
)
def test_a_wing_imports_nothing_above_it(wing, forbidden):
    for path in sorted((PACKAGE / wing).glob("*.py")):
        bad = {m for m in imported_modules(path) if m.split(".")[0] in forbidden or m.startswith(forbidden)}
        assert not bad, f"{path.name} imports {sorted(bad)}"


# The run wing's sub-wings, each importing only those before it (docs/layout.md draws them).
RUN_SUB_WINGS = ("configuration", "directory", "loop", "tasks", "sweeps")


def test_the_quality_wing_imports_nothing_of_the_run_wing():
    for path in sorted((PACKAGE / "quality").glob("*.py")):
        bad = {m for m in imported_modules(path) if m.startswith("pyro_vae.runs")}
        assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("index", range(len(RUN_SUB_WINGS)))
def test_a_sub_wing_of_the_run_wing_imports_none_after_it(index):
    wing, later = RUN_SUB_WINGS[index], tuple(f"pyro_vae.runs.{name}" for name in RUN_SUB_WINGS[index + 1 :])
    paths = sorted((PACKAGE / "runs" / wing).glob("*.py"))
    assert paths, wing
    for path in paths:
        bad = {m for m in imported_modules(path) if later and m.startswith(later)}
        assert not bad, f"runs/{wing}/{path.name} imports {sorted(bad)}"


def test_the_run_wing_has_no_module_outside_its_sub_wings():
    assert sorted(path.name for path in (PACKAGE / "runs").glob("*.py")) == ["__init__.py"]
    assert sorted(
        path.name for path in (PACKAGE / "runs").iterdir() if path.is_dir() and path.name != "__pycache__"
    ) == sorted(RUN_SUB_WINGS)


@pytest.mark.slow  # a fresh process
def test_the_modelling_wing_loads_without_hydra_or_the_run_wing():
    code = (
        "import sys, pyro_vae.modelling.vae, pyro_vae.modelling.estimators, pyro_vae.modelling.objectives;"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.startswith(('omegaconf', 'hydra'))}"
        " | {m for m in sys.modules if m.startswith('pyro_vae.runs')}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_the_python_api_keeps_its_import_paths():
    import pyro_vae

    for name in ("load", "compose_config", "run_experiment", "VAE", "build_vae"):
        assert callable(getattr(pyro_vae, name))


@pytest.mark.slow  # a fresh process
def test_the_api_page_trains_a_step_from_python_without_hydra():
    page = (PACKAGE.parent / "docs" / "api.md").read_text()
    snippet = page.split("```python\n", 1)[1].split("```", 1)[0]
    check = (
        "\nimport sys\nassert not [m for m in sys.modules if m.startswith(('hydra', 'omegaconf', 'pyro_vae.runs'))]\n"
    )
    result = subprocess.run([sys.executable, "-c", snippet + check], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "ELBO per image:" in result.stdout
