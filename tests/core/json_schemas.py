"""Check a command's ``--json`` output against its published JSON Schema in ``docs/schemas/``.

A document names its schema (``"schema": "omha.move/1"``); the file is ``docs/schemas/omha.move.1.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def schema_for(name: str) -> dict[str, Any]:
    """The JSON Schema published for ``name`` (``omha.move/1``)."""
    base, version = name.split("/")
    doc: dict[str, Any] = json.loads((SCHEMAS / f"{base}.{version}.json").read_text())
    jsonschema.Draft202012Validator.check_schema(doc)
    return doc


def validated(text: str, expect: str) -> dict[str, Any]:
    """Parse ``text`` (a command's stdout), check that it is an ``expect`` document and valid against its schema."""
    doc: dict[str, Any] = json.loads(text)
    assert doc.get("schema") == expect, doc
    jsonschema.Draft202012Validator(schema_for(expect)).validate(doc)
    return doc
