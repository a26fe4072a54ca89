"""The documentation site: the configuration reference generated from the schema lists every key of it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = ROOT / "docs" / "hooks" / "config_reference.py"


@pytest.fixture(scope="module")
def reference():
    spec = importlib.util.spec_from_file_location("config_reference", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def schema_paths(node: dict, prefix: str = "") -> list[str]:
    """Every key of a JSON schema as a dotted path, walked here independently of the generator."""
    paths = []
    for name, sub in (node.get("properties") or {}).items():
        paths.append(prefix + name)
        paths += schema_paths(sub, f"{prefix}{name}.")
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and (extra.get("properties") or extra.get("additionalProperties")):
        paths.append(prefix + "<name>")
        paths += schema_paths(extra, f"{prefix}<name>.")
    for alternative in node.get("oneOf") or []:
        paths += schema_paths(alternative, prefix)
    return paths


def test_every_schema_key_is_in_the_reference(reference):
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    page = reference.render(schema)
    paths = schema_paths(schema)
    assert len(paths) > 100
    missing = [p for p in paths if f"`{p}`" not in page]
    assert not missing, f"keys of the schema missing from the configuration reference: {missing}"


def test_a_dropped_key_is_caught(reference):
    schema = {"type": "object", "properties": {
        "predict": {"type": "object", "properties": {"anchor": {"enum": ["coarse", "smoothed"], "default": "smoothed",
                                                                "description": "What the correction pins."}}}}}
    page = reference.render(schema)
    assert "| `predict.anchor` | one of `coarse`, `smoothed` | `smoothed` | What the correction pins. |" in page
    schema["properties"]["predict"]["properties"]["block_cells"] = {"type": "integer", "default": 1}
    dropped = page  # the page of the schema before the key was added
    assert not all(f"`{p}`" in dropped for p in schema_paths(schema))


def test_the_page_has_its_marker_and_the_nav_its_pages(reference):
    assert reference.MARKER in (ROOT / "docs" / "configuration.md").read_text()
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    assert "docs/hooks/config_reference.py" in config["hooks"]

    def pages(nav):
        for entry in nav:
            value = next(iter(entry.values())) if isinstance(entry, dict) else entry
            yield from pages(value) if isinstance(value, list) else [value]

    assert all((ROOT / "docs" / page).exists() for page in pages(config["nav"]))
