"""The conda environments, checked offline (conda itself is not reachable here): every rule's `conda:` path
resolves, every package a rule's script imports (through the library, lazily imported ones included) is in that
rule's env, each env holds only what its rules import, and every pin is the one of [tool.smdown.pins] in
pyproject.toml, within the ranges of the project's dependencies."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import tomllib
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PINS = PYPROJECT["tool"]["smdown"]["pins"]
# import name -> package name, where they differ; affine comes with rasterio
PACKAGE = {"yaml": "pyyaml", "sklearn": "scikit-learn", "tensorflow": "tensorflow-cpu", "pystac_client": "pystac-client",
           "pystac": "pystac-client", "affine": "rasterio"}
RULE = re.compile(r"^rule (\w+):\n(.*?)(?=^rule |\Z)", re.MULTILINE | re.DOTALL)


def rule_envs() -> list[tuple[str, Path, Path]]:
    """(rule, env file, script) of every rule with a script."""
    found = []
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for name, body in RULE.findall(smk.read_text()):
            env = re.search(r'conda:\s*\n\s*"([^"]+)"', body)
            script = re.search(r'script:\s*\n\s*"([^"]+)"', body)
            if script:
                assert env, f"{smk.name}: rule {name} has no conda env"
                found.append((name, (smk.parent / env.group(1)).resolve(), (smk.parent / script.group(1)).resolve()))
    return found


def env_packages(path: Path) -> dict[str, str]:
    """Package -> pinned version of a conda env file (conda `a=1.2` and pip `a==1.2` entries)."""
    packages = {}
    for entry in yaml.safe_load(path.read_text())["dependencies"]:
        for spec in entry["pip"] if isinstance(entry, dict) else [entry]:
            name, _, version = re.split(r"(==|=)", spec, maxsplit=1) if "=" in spec else (spec, "", "")
            packages[name] = version
    return packages


def _module_file(name: str) -> Path | None:
    path = ROOT.joinpath(*name.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.exists():
            return candidate
    return None


def imported_packages(script: Path) -> set[str]:
    """Third-party packages imported by a script and, transitively, by every library module it reaches."""
    seen, packages, todo = set(), set(), [script]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top == "smdown":
                    todo += [f for i in range(1, name.count(".") + 2) if (f := _module_file(".".join(name.split(".")[:i])))]
                elif top not in sys.stdlib_module_names and top not in ("snakemake", "__future__"):
                    packages.add(PACKAGE.get(top, top))
    return packages


def test_every_rule_has_an_env_that_exists():
    rules = rule_envs()
    assert len(rules) > 15
    for name, env, _ in rules:
        assert env.is_file(), f"rule {name}: conda env {env} not found"
        assert env.parent == ROOT / "envs"


def test_each_env_holds_exactly_what_its_rules_import():
    needed: dict[Path, set[str]] = {}
    for name, env, script in rule_envs():
        missing = imported_packages(script) - set(env_packages(env))
        assert not missing, f"rule {name} ({script.name}) imports {sorted(missing)}, not in {env.name}"
        needed.setdefault(env, set()).update(imported_packages(script))
    for env, packages in needed.items():
        unused = set(env_packages(env)) - packages - {"python", "pip"}
        assert not unused, f"{env.name} holds {sorted(unused)}, which none of its rules imports"


@pytest.mark.parametrize("env", sorted((ROOT / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_env_pins_are_the_projects(env):
    ranges = {Requirement(r).name.lower(): Requirement(r).specifier for r in PYPROJECT["project"]["dependencies"]}
    for package, version in env_packages(env).items():
        if package == "pip":
            continue
        assert package in PINS, f"{env.name}: {package} has no pin in [tool.smdown.pins]"
        assert version == PINS[package], f"{env.name}: {package}={version}, pyproject pins {PINS[package]}"
        if package in ranges:
            assert ranges[package].contains(version), f"{package} {version} outside the project's {ranges[package]}"


def test_env_python_admits_the_project():
    assert Requirement(f"x{PYPROJECT['project']['requires-python']}").specifier.contains(PINS["python"])


def test_no_env_installs_the_project():
    for env in (ROOT / "envs").glob("*.yaml"):
        assert "-e" not in env.read_text().split() and "../" not in env.read_text(), env.name
