"""Regenerate the README's parameter table from :data:`PARAMS`, the one place parameters are defined.

.venv/bin/python tools/readme_tables.py          # rewrite README.md in place
.venv/bin/python tools/readme_tables.py --check  # exit 1 if README.md is stale (the tests run this)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fcn_perception.ros.node_config import PARAMS

README = Path(__file__).resolve().parents[1] / "README.md"
MARKS = {"params": ("<!-- params:begin (tools/readme_tables.py) -->", "<!-- params:end -->")}


def _type(p) -> str:
    if p.type:
        return p.type
    d = p.default
    if isinstance(d, bool):
        return "bool"
    if isinstance(d, int):
        return "int"
    if isinstance(d, float):
        return "double"
    if isinstance(d, str):
        return "string"
    return "double[]" if d and isinstance(d[0], float) else "string[]"


def params_table() -> str:
    rows = ["| name | type | default | range | change | description |", "| --- | --- | --- | --- | --- | --- |"]
    for p in PARAMS:
        default = "not set" if p.default == [] else f"`{json.dumps(p.default)}`"
        rng = " \\| ".join(p.choices) if p.choices else (f"{p.min} – {p.max}" if p.min is not None else "")
        rows.append(f"| `{p.name}` | {_type(p)} | {default} | {rng} | {'restart' if p.read_only else 'runtime'} | {p.description} |")
    return "\n".join(rows)


def render(text: str) -> str:
    for key, table in (("params", params_table()),):
        begin, end = MARKS[key]
        head, _, rest = text.partition(begin)
        _, _, tail = rest.partition(end)
        text = f"{head}{begin}\n{table}\n{end}{tail}"
    return text


if __name__ == "__main__":
    current = README.read_text()
    new = render(current)
    if "--check" in sys.argv:
        sys.exit(0 if new == current else 1)
    README.write_text(new)
