"""The import rules of docs/architecture.md, checked on the source: imports point one way."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hybrid_pipeline", "adapters", "planner", "verifier")

# Each unit of the code and the units it may import (besides itself). Keep in step with
# docs/architecture.md. A module that belongs to no unit here fails the test: place it on purpose.
CORE = {"hybrid_pipeline", "hybrid_pipeline.config", "hybrid_pipeline.threads"}
ALLOWED: dict[str, set[str]] = {
    "hybrid_pipeline": set(),
    "hybrid_pipeline.config": set(),
    "hybrid_pipeline.threads": set(),
    "hybrid_pipeline.arc": set(),
    "hybrid_pipeline.runs": {"hybrid_pipeline.arc"},
    "hybrid_pipeline.dsl": {"hybrid_pipeline.arc"},
    "verifier": {"hybrid_pipeline.arc"},
    "adapters": {"verifier"},
    "hybrid_pipeline.backbones": {"hybrid_pipeline.arc"},
    "hybrid_pipeline.training": {"hybrid_pipeline.arc", "hybrid_pipeline.runs"},
    "hybrid_pipeline.trm": {"hybrid_pipeline.arc", "hybrid_pipeline.runs", "hybrid_pipeline.training"},
    "hybrid_pipeline.processor": {"hybrid_pipeline.arc", "hybrid_pipeline.backbones", "hybrid_pipeline.trm"},
    "hybrid_pipeline.hybrid": {"hybrid_pipeline.arc", "hybrid_pipeline.backbones", "hybrid_pipeline.trm", "adapters",
                               "hybrid_pipeline.processor"},
    "hybrid_pipeline.joint": {"hybrid_pipeline.arc", "hybrid_pipeline.runs", "hybrid_pipeline.training",
                              "hybrid_pipeline.trm", "hybrid_pipeline.hybrid"},
    "hybrid_pipeline.baseline": {"hybrid_pipeline.arc", "hybrid_pipeline.runs", "hybrid_pipeline.backbones"},
    "hybrid_pipeline.merge": {"hybrid_pipeline.arc", "hybrid_pipeline.runs"},
    "planner": {"hybrid_pipeline.arc", "hybrid_pipeline.runs", "hybrid_pipeline.dsl", "hybrid_pipeline.backbones",
                "hybrid_pipeline.trm", "hybrid_pipeline.hybrid", "verifier", "adapters"},
    "hybrid_pipeline.cli": None,  # composes everything; heavy imports inside each subcommand
}


def unit_of(module: str) -> str:
    """`hybrid_pipeline.trm.model` -> `hybrid_pipeline.trm`; `planner.run` -> `planner`."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "hybrid_pipeline" and len(parts) > 1 else parts[0]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, module: str | None = None) -> set[str]:
    """Every project module `path` (the module `module`, by default from its place) imports, relative
    imports resolved, `from pkg import name` read as `pkg.name` (a submodule or an attribute: unit_of
    treats both alike)."""
    package = (module or module_name(path)).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES + ("experiments",)}


def source_files() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_every_module_belongs_to_a_unit_of_the_import_table():
    assert [str(p) for p in source_files() if unit_of(module_name(p)) not in ALLOWED] == []


def test_imports_point_one_way_and_nothing_imports_experiments_or_the_cli():
    wrong = []
    for path in source_files():
        here = unit_of(module_name(path))
        allowed = ALLOWED.get(here)
        for name in sorted(imported_modules(path)):
            there = unit_of(name)
            if name.split(".")[0] == "experiments" or (there == "hybrid_pipeline.cli" and here != there):
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
            elif allowed is not None and there != here and there not in allowed | CORE:
                wrong.append(f"{path.relative_to(ROOT)} ({here}) imports {name} ({there})")
    assert wrong == []


def test_the_checker_resolves_relative_imports_and_sees_a_forbidden_one(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import numpy\nfrom .grids import x\nfrom ..trm import model\n")
    found = imported_modules(probe, "hybrid_pipeline.dsl.probe")
    assert found == {"hybrid_pipeline.dsl.grids.x", "hybrid_pipeline.trm.model"}
    assert unit_of("hybrid_pipeline.trm.model") not in ALLOWED["hybrid_pipeline.dsl"] | CORE
