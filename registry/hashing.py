"""The definition hash of a tool: what the registry compares to notice a changed ("rug-pulled") tool."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def tool_definition_hash(
    name: str,
    description: str,
    input_schema: Mapping[str, Any],
    output_schema: Mapping[str, Any] | None,
) -> str:
    """sha256 hex of the canonical JSON of the definition; key order and whitespace do not matter."""
    document = {"name": name, "description": description, "inputSchema": input_schema, "outputSchema": output_schema}
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
