"""The package's house rules: one home per stage, each module's name its own."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_no_two_modules_of_the_package_share_a_name():
    names = Counter(path.stem for path in (ROOT / "smdown").rglob("*.py") if path.stem != "__init__")
    assert not [name for name, count in names.items() if count > 1], names


def test_no_script_reads_the_whole_config():
    scripts = sorted((ROOT / "workflow" / "scripts").glob("*.py"))
    assert scripts
    assert not [s.name for s in scripts if "snakemake.config" in s.read_text()]
