"""Regenerate the README's parameter table from the parameter table (``params/table.py``) and its
output-topic table from the output registry (``ros/outputs.py``): each is defined once, there.

.venv/bin/python tools/readme_tables.py          # rewrite README.md in place
.venv/bin/python tools/readme_tables.py --check  # exit 1 if README.md is stale (the tests run this)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fcn_perception.params.table import PARAMS
from fcn_perception.ros.outputs import ALWAYS, ASKED, FUSED_OUTPUTS, OUTPUTS, SUBSCRIBED

README = Path(__file__).resolve().parents[1] / "README.md"
MARKS = {
    "params": ("<!-- params:begin (tools/readme_tables.py) -->", "<!-- params:end -->"),
    "outputs": ("<!-- outputs:begin (tools/readme_tables.py) -->", "<!-- outputs:end -->"),
    "fused": ("<!-- fused:begin (tools/readme_tables.py) -->", "<!-- fused:end -->"),
}


def outputs_table(registry: dict = OUTPUTS, prefix: str = "<camera>/") -> str:
    rows = ["| topic | type | node | replay | what |", "| --- | --- | --- | --- | --- |"]
    for o in registry.values():
        msgtype = o.msgtype.replace("/msg/", "/")
        node = {ALWAYS: "always", SUBSCRIBED: "while subscribed"}.get(o.node, "—")
        replay = {ALWAYS: "always", ASKED: f"`--{o.ask}`"}.get(o.replay, "—")
        rows.append(f"| `{prefix}{o.topic}` | `{msgtype}` | {node} | {replay} | {o.description} |")
    return "\n".join(rows)


def params_table() -> str:
    rows = ["| name | type | default | range | change | description |", "| --- | --- | --- | --- | --- | --- |"]
    for p in PARAMS:
        default = "not set" if p.default == [] else f"`{json.dumps(p.default)}`"
        rng = " \\| ".join(p.choices) if p.choices else (f"{p.min} – {p.max}" if p.min is not None else "")
        rows.append(f"| `{p.name}` | {p.type} | {default} | {rng} | {'restart' if p.read_only else 'runtime'} | {p.description} |")
    return "\n".join(rows)


def render(text: str) -> str:
    for key, table in (("params", params_table()), ("outputs", outputs_table()), ("fused", outputs_table(FUSED_OUTPUTS, ""))):
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
