"""The project as a whole: one place of dependencies, nothing that points outside it, and no
import cycle in the package."""

from __future__ import annotations

import ast
import re
import subprocess
import tomllib

import yaml
from conftest import ROOT

# Needed by the process that runs Snakemake, not by the jobs' `python -m nclayers`.
RUNNER_ONLY = {"snakemake", "snakemake-executor-plugin-slurm", "jsonschema"}


def pins(requirements: list[str]) -> dict[str, str]:
    return dict(re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", r).groups() for r in requirements)


def test_conda_env_mirrors_pyproject():
    """envs/nclayers.yaml (what `--sdm conda` jobs get) pins what pyproject.toml pins, with
    the same versions, less the packages of the Snakemake process itself, plus the `bert` extra
    (the GLUE preset's jobs need it)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "envs" / "nclayers.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    needed = [*project["dependencies"], *project["optional-dependencies"]["bert"]]
    wanted = {k: v for k, v in pins(needed).items() if k not in RUNNER_ONLY}
    assert pins([p for p in pip if "==" in p]) == wanted
    assert f"python={project['requires-python'].removeprefix('>=')}" in env["dependencies"]


def test_nothing_points_outside_the_repository():
    """No tracked file names a machine path or a design file outside the repository."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    outside = re.compile(r"/work/|/home/|/root/|DESIGN\.md|\.\./shared/DESIGN")
    offenders = []
    for name in files:
        path = ROOT / name
        if path.suffix in {".py", ".md", ".smk", ".yaml", ".tex", ".rst", ".sh", ".toml"} or \
                name in ("Snakefile", "Makefile"):
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if outside.search(line) and name != "tests/test_project.py":
                    offenders.append(f"{name}:{number}: {line.strip()}")
    assert offenders == []


PACKAGE = ROOT / "workflow" / "nclayers"


def module_name(path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_imports(path, modules: set[str]) -> set[str]:
    """The package's modules that the file at ``path`` imports anywhere in it (at the top or
    inside a function: a cycle hidden in a function is still one)."""
    name = module_name(path)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the file's package upwards
                package = name.split(".")[:len(name.split(".")) - node.level
                                            + (path.name == "__init__.py")]
                base = ".".join([*package, *([node.module] if node.module else [])])
            found |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                      for alias in node.names}
    return {m for m in found if m in modules and m != name}


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (module → the modules it imports), or None."""
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for other in sorted(graph[module]):
            if state.get(other) == "open":
                return [*path[path.index(other):], other]
            if other not in state and (found := visit(other, [*path, other])):
                return found
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module, [module])):
            return found
    return None


def test_cycle_finder_finds_a_cycle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_package_has_no_import_cycle():
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(path) for path in files}
    graph = {module_name(path): package_imports(path, modules) for path in files}
    assert "nclayers.data" in graph["nclayers.preflight"]  # the reader sees the imports
    assert cycle(graph) is None, " → ".join(cycle(graph))


def test_the_schema_defaults_of_the_thresholds_are_the_librarys():
    """The thresholds' defaults are written twice, in the schema (for a config) and in
    nclayers.vocabulary (for every library function and step): they must agree."""
    from nclayers import vocabulary

    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    measure = schema["properties"]["measure"]["properties"]
    report = schema["properties"]["report"]["properties"]
    assert report["collapse_eps"]["default"] == vocabulary.COLLAPSE_EPS
    assert measure["ncc_threshold"]["default"] == vocabulary.NCC_THRESHOLD
    assert measure["interpolation_threshold"]["default"] == vocabulary.INTERPOLATION_THRESHOLD
