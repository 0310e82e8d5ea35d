"""The settings ledger of a paper's full preset (docs/presets/<paper>.md): every leaf of
workflow/presets/<paper>/full.yaml (and the paper's other full-scale presets, e.g. glue.yaml)
with the paper's value and its source, or "not stated: our choice, because …".

  python scripts/ledger.py <paper>     print the ledger's rows for the leaves it lacks

A ledger row is ``| `key` | `value` | the paper's value | source |``: the key as a dotted path
(``groups.mlp.train.lr``), the preset's value as JSON, then the paper's value and where it
says so (a section, figure, table or equation, or a file of the authors' code), or "not
stated: our choice, because …". tests/test_presets.py holds every ledger to its presets.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|\s*`([^`]*)`\s*\|(.*)\|(.*)\|\s*$")


def presets(paper: str) -> list[Path]:
    """The paper's full-scale presets: every preset but smoke.yaml."""
    return sorted(p for p in (ROOT / "workflow" / "presets" / paper).glob("*.yaml")
                  if p.name != "smoke.yaml")


def leaves(entry, prefix: str = "") -> dict[str, object]:
    """Dotted key → value of every leaf of a config (a list is one leaf: its values)."""
    if isinstance(entry, dict) and entry:
        out = {}
        for key, value in entry.items():
            out.update(leaves(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: entry}


def shown(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def preset_leaves(paper: str) -> dict[str, object]:
    """Every leaf of the paper's full-scale presets; a key of several presets (glue.yaml
    beside full.yaml) is prefixed with its file's stem where the values differ."""
    found: dict[str, list[tuple[str, object]]] = {}
    for path in presets(paper):
        for key, value in leaves(yaml.safe_load(path.read_text())).items():
            found.setdefault(key, []).append((path.stem, value))
    out = {}
    for key, values in found.items():
        if len({shown(v) for _, v in values}) == 1:
            out[key] = values[0][1]
        else:
            out.update({f"{stem}:{key}": value for stem, value in values})
    return out


def ledger_rows(path: Path) -> dict[str, tuple[str, str, str]]:
    """Key → (value as written, the paper's value, source) of a ledger's table rows."""
    rows = {}
    for line in path.read_text().splitlines():
        match = ROW.match(line)
        if match:
            key, value, paper, source = (g.strip() for g in match.groups())
            rows[key] = (value, paper, source)
    return rows


def main() -> None:
    paper = sys.argv[1]
    path = ROOT / "docs" / "presets" / f"{paper}.md"
    have = ledger_rows(path) if path.exists() else {}
    for key, value in preset_leaves(paper).items():
        if key not in have:
            print(f"| `{key}` | `{shown(value)}` |  |  |")


if __name__ == "__main__":
    main()
