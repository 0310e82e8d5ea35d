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
    assert set(table["layer"]) == {"input", "2", "3"}
    assert set(table["split"]) == {"train", "test"}
    assert "nc1" in capsys.readouterr().out
