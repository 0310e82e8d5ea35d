"""Build the LaTeX report with latexmk; generated tables and figures are found via TEXINPUTS."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from nclayers.io import atomic_path, write_text

LATEX_HINT = ("install LaTeX: `sudo apt-get install latexmk texlive-latex-extra texlive-science "
              "lmodern` (Debian/Ubuntu), or `make latex`; on other systems install TeX Live with "
              "latexmk, booktabs, adjustbox and lmodern")


def feature_macros(runs_table: str | Path, feature_figures: Sequence[str | Path],
                   results: str | Path) -> dict[str, str]:
    """``\\FeatureRun`` and ``\\FeatureDir`` for the report: the run whose feature figures it
    shows (the one :func:`nclayers.sweeps.figure_run` chooses) and their folder, relative to
    ``results``."""
    from nclayers.sweeps import figure_run
    from nclayers.tables import tex_escape

    if not feature_figures:  # features.runs: none; the report has no such section
        return {}
    folders = {Path(f).parent for f in feature_figures}
    if len(folders) != 1:
        raise ValueError(f"the report's feature figures must lie in one folder, got {folders}")
    folder = os.path.relpath(folders.pop(), results)
    return {"FeatureRun": tex_escape(figure_run(runs_table)), "FeatureDir": folder}


def sections(features: bool, papers: Sequence[str]) -> str:
    """The report's optional sections (paper/sections/): the feature analysis where it ran,
    then each paper's, as ``\\input`` lines for ``report_sections.tex``; before the papers',
    how their claims are decided over seeds (:data:`nclayers.papers.seeds.RULE`)."""
    from nclayers.papers.seeds import RULE
    from nclayers.tables import tex_escape

    out = "\\input{sections/features.tex}\n" if features else ""
    if papers:
        out += f"\\section*{{How the papers' claims are decided}}\n{tex_escape(RULE)}\n\n"
    return out + "".join(f"\\input{{sections/{name}.tex}}\n" for name in papers)


def overfull_boxes(log: str) -> list[str]:
    """The 'Overfull \\hbox' warnings of a LaTeX log wider than 1pt: content, a table or a
    line, that runs past the text block."""
    found = re.findall(r"^Overfull \\hbox \((\d+(?:\.\d+)?)pt too wide\)(.*)$", log, re.M)
    return [f"{width}pt too wide{where}" for width, where in found if float(width) > 1.0]


def build_pdf(tex: Path, results: Path, out: Path, macros: dict[str, str] | None = None,
              sections: str = "") -> None:
    """Compile ``tex``; ``\\input{tables/...}`` and figures resolve relative to ``results``;
    ``macros`` go to ``report_macros.tex`` and ``sections`` (:func:`sections`) to
    ``report_sections.tex`` in the build folder, which the document inputs (files, so that
    latexmk sees when they change). Content wider than the text block (an overfull box) is
    reported on stdout."""
    if shutil.which("latexmk") is None:
        raise SystemExit(f"latexmk not found: {LATEX_HINT}")
    build = results / "build" / "latex"
    build.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    # Trailing ':' keeps TeX's default search path after ours.
    env["TEXINPUTS"] = f"{build.resolve()}/:{results.resolve()}/:{tex.parent.resolve()}/:"
    write_text(build / "report_macros.tex",
               "".join(f"\\newcommand{{\\{k}}}{{{v}}}\n" for k, v in (macros or {}).items()))
    write_text(build / "report_sections.tex", sections or "% no optional section\n")
    cmd = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "-file-line-error",
           f"-outdir={build.resolve()}", str(tex.resolve())]
    # LaTeX's messages may quote text in its font encoding, which is not UTF-8.
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, encoding="utf-8",
                          errors="replace")
    log = build / f"{tex.stem}.log"
    if proc.returncode != 0:
        raise SystemExit(f"latexmk failed (exit {proc.returncode}); see {log}\n"
                         + proc.stdout[-3000:])
    for warning in overfull_boxes(log.read_text(errors="replace")):
        print(f"warning: overfull box in the report: {warning}", flush=True)
    with atomic_path(out) as tmp:
        shutil.copyfile(build / f"{tex.stem}.pdf", tmp)


# LaTeX's math commands in the captions, as the HTML report shows them
MATH = {"pm": "±", "Sigma": "Σ", "sigma": "σ", "mu": "μ", "varepsilon": "ε", "epsilon": "ε",
        "ell": "ℓ", "geq": "≥", "leq": "≤", "times": "×", "cdot": "·", "to": "→", "alpha": "α",
        "gamma": "γ", "Lambda": "Λ", "lambda": "λ", "theta": "θ", "approx": "≈", "dots": "…",
        "ldots": "…", "sum": "Σ", "infty": "∞", "star": "*"}


def figure_caption(tex: str | Path, name: str) -> str:
    """The caption that ``tex`` (the report or one of its sections) gives the figure drawn from
    ``name``.pdf, as plain text for ``snakemake --report`` (one source for both reports);
    "" where it shows no such figure. Macros filled in by the PDF's tables read "(see the PDF)"."""
    text = Path(tex).read_text()
    found = re.search(r"\\includegraphics(?:\[[^\]]*\])?\{[^}]*\b" + re.escape(name)
                      + r"\.pdf\}\s*\\caption\{", text)
    if not found:
        return ""
    depth, start = 1, found.end()
    for end in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[end], 0) if text[end - 1] != "\\" else 0
        if depth == 0:
            break
    caption = " ".join(text[start:end].split())
    for command, symbol in MATH.items():
        caption = re.sub(r"\\" + command + r"(?![A-Za-z])", symbol, caption)
    for pattern, plain in ((r"\\(?:textit|emph|texttt|textbf|mathrm|text)\{([^{}]*)\}", r"\1"),
                           (r"\\[A-Z][A-Za-z]*\{\}", "(see the PDF)"), (r"\\label\{[^}]*\}", ""),
                           (r"\$", ""), (r"~", " "), (r"\\[,;]", " "), (r"---", "—"),
                           (r"--", "–"), (r"``", "“"), (r"''", "”"), (r"\\([%&_#])", r"\1")):
        caption = re.sub(pattern, plain, caption)
    return caption


def rst_caption(tex: str | Path, name: str) -> str:
    """:func:`figure_caption` with reStructuredText's inline markup escaped (``Σ_W``, ``ℓ^*``
    are text, not a link or emphasis): what the rules hand ``workflow/report/*.rst``."""
    return re.sub(r"([*_`|\\])", r"\\\1", figure_caption(tex, name))
