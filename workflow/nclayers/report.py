"""Build the LaTeX report with latexmk; generated tables and figures are found via TEXINPUTS."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from nclayers.io import atomic_path

LATEX_HINT = ("install LaTeX: `sudo apt-get install latexmk texlive-latex-extra texlive-science "
              "lmodern` (Debian/Ubuntu), or `make latex`; on other systems install TeX Live with "
              "latexmk, booktabs, siunitx and lmodern")


def build_pdf(tex: Path, results: Path, out: Path) -> None:
    """Compile ``tex``; ``\\input{tables/...}`` and figures resolve relative to ``results``."""
    if shutil.which("latexmk") is None:
        raise SystemExit(f"latexmk not found: {LATEX_HINT}")
    build = results / "build" / "latex"
    build.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    # Trailing ':' keeps TeX's default search path after ours.
    env["TEXINPUTS"] = f"{results.resolve()}/:{tex.parent.resolve()}/:"
    cmd = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error",
           f"-outdir={build.resolve()}", str(tex.resolve())]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        log = build / f"{tex.stem}.log"
        raise SystemExit(f"latexmk failed (exit {proc.returncode}); see {log}\n"
                         + proc.stdout[-3000:])
    with atomic_path(out) as tmp:
        shutil.copyfile(build / f"{tex.stem}.pdf", tmp)
