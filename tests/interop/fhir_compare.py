"""Compare two FHIR ndjson exports "ids aside": resource ids, orthoreg record identifiers and the ids inside
references are replaced by each resource's position in its file (both exports list records in the order they
were created, which an import keeps)."""

from __future__ import annotations

import json
import re
from pathlib import Path

RECORD_ID = re.compile(r"^urn:orthoreg:[0-9a-f]{12}:")


def load(directory: Path) -> dict[str, list[dict]]:
    out = {}
    for path in sorted(Path(directory).glob("*.ndjson")):
        out[path.stem] = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return out


def normalised(export: dict[str, list[dict]]) -> dict[str, list]:
    position = {}
    for resource_type, resources in export.items():
        for n, resource in enumerate(resources):
            position[f"{resource_type}/{resource.get('id')}"] = f"{resource_type}/#{n}"

    def clean(value):
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                if key == "id":
                    continue
                if key == "reference" and isinstance(item, str):
                    out[key] = position.get(item, item)
                elif key == "identifier":
                    items = item if isinstance(item, list) else [item]
                    kept = [clean(i) for i in items if not RECORD_ID.match(i.get("system", ""))]
                    if kept:
                        out[key] = kept
                else:
                    out[key] = clean(item)
            return out
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, str) and RECORD_ID.match(value):
            return "<record id>"
        return value

    return {resource_type: [clean(r) for r in resources] for resource_type, resources in export.items()}
