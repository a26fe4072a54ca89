"""The configuration reference, generated from workflow/schemas/config.schema.yaml when the site is built.

A MkDocs hook (`hooks:` in mkdocs.yml): the marker MARKER in docs/configuration.md is replaced by one table per
top-level key, a row per key with its full dotted path, type, default and description, nested objects included.
The schema is the one place a key is described and defaulted (the download settings, `acquire.*`, included); this
page is never written by hand, and the hook reads nothing but the schema.
`tests/test_docs.py` checks that every key of the schema appears in the page.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
MARKER = "<!-- config-reference -->"
NO_DEFAULT = object()


class Key(NamedTuple):
    path: str  # dotted, e.g. predict.anchor; <name> stands for a key the user chooses
    type: str
    default: object
    description: str


def load_schema(path: Path = SCHEMA) -> dict:
    return yaml.safe_load(path.read_text())


def _type_of(node: dict) -> str:
    if "enum" in node:
        return "one of " + ", ".join(_inline(v) for v in node["enum"])
    if "oneOf" in node:
        return " or ".join(_type_of(alt) for alt in node["oneOf"])
    kind = node.get("type")
    if kind is None:
        return "any"
    kinds = kind if isinstance(kind, list) else [kind]
    words = []
    for k in kinds:
        if k == "array" and isinstance(node.get("items"), dict):
            words.append(f"list of {_type_of(node['items'])}")
        elif k == "object" and "properties" not in node and isinstance(node.get("additionalProperties"), dict):
            words.append(f"mapping of name to {_type_of(node['additionalProperties'])}")
        else:
            words.append(str(k))
    return " or ".join(words)


def keys(schema: dict) -> list[Key]:
    """Every key of the schema, depth first, with its dotted path (objects before their keys)."""
    out: list[Key] = []

    def walk(node: dict, prefix: str) -> None:
        for name, sub in (node.get("properties") or {}).items():
            visit(sub, f"{prefix}{name}")
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and (extra.get("properties") or extra.get("additionalProperties")):
            visit(extra, f"{prefix}<name>")
        for alt in node.get("oneOf") or []:
            if alt.get("properties"):
                walk(alt, prefix)

    def visit(sub: dict, path: str) -> None:
        default = sub.get("default", NO_DEFAULT)
        out.append(Key(path, _type_of(sub), default, " ".join(str(sub.get("description", "")).split())))
        walk(sub, f"{path}.")

    walk(schema, "")
    return out


def _inline(value: object) -> str:
    if value is None:
        return "`null`"
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return f"`{text}`"


def _escape(text: str) -> str:
    """Markdown-safe table cell: HTML-like <run> outside code spans escaped, pipes escaped everywhere."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts).replace("|", "\\|")


def render(schema: dict) -> str:
    """The reference as Markdown: a section per top-level key, a table row per key."""
    rows = keys(schema)
    lines: list[str] = []
    tops = [k for k in rows if "." not in k.path]
    lines.append("Top-level keys: " + ", ".join(f"[`{k.path}`](#{k.path})" for k in tops) + ".")
    lines.append("")
    for top in tops:
        children = [k for k in rows if k.path.startswith(top.path + ".")]
        lines += [f"## {top.path}", ""]
        if children:  # an object: its description above its keys' table
            lines += [_escape(top.description), ""] if top.description else []
        lines += ["| key | type | default | description |", "|---|---|---|---|"]
        for k in children or [top]:
            default = "—" if k.default is NO_DEFAULT else _inline(k.default).replace("|", "\\|")
            lines.append(f"| `{k.path}` | {_escape(k.type)} | {default} | {_escape(k.description)} |")
        lines.append("")
    return "\n".join(lines)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 (MkDocs hook signature)
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render(load_schema()))
