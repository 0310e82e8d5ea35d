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
    printed = capsys.readouterr().out
    # every column shown, a row per layer in depth order, layer_index 1 the first tapped layer
    assert "..." not in printed and "nc3_pabs" in printed and "nc1_ratio" in printed
    rows = [line.split()[:2] for line in printed.splitlines() if re.match(r"\d+ ", line)]
    assert rows == [["1", "layer1"], ["2", "layer2"], ["3", "layer3"], ["4", "layer4"],
                    ["5", "avgpool"]]
    spectra = namespace["spectra"]
    assert set(spectra["layer"]) == set(table["layer"]) and (spectra["share"] > 0).all()
