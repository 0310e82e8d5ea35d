"""The README's library example runs as written."""

from __future__ import annotations

import re

from conftest import ROOT


def test_readme_library_example_runs(capsys):
    readme = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S)[1]
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    table = namespace["table"]
    assert set(table["layer"]) == {"layer1", "layer2", "layer3", "layer4", "avgpool"}
    assert set(table["split"]) == {"train", "test"}
    assert {"nc1", "nc3_pabs", "nc3_duality", "stable_rank"} <= set(table["metric"])
    assert "nc1" in capsys.readouterr().out
