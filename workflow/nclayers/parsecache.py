"""The plan of an experiment, kept once per user, so that a `snakemake` call like an earlier one
skips torch's import (2–2.5 s of every call) and the checks that build the models.

The Snakefile's plan is :func:`nclayers.preflight.prepare` (the config checked, its defaults,
runs and design) and the design job's defaults (:func:`nclayers.design.option_defaults`). It
is a pure function of what :func:`key` digests:

- the config as Snakemake loaded it, and whether jobs run on this machine;
- the schema's text and the source of every module of this package;
- the versions of the libraries the checks call (torch builds the models, torchvision and
  scikit-learn hold the datasets' readers and the digits);
- each file under the data root: its path, size, modification and change times (ctime, which
  no program can set back), so that a file added, removed or changed plans again.

A config that the key cannot cover is planned every time: one that asks for CUDA on this
machine (the check asks the driver), a BERT model (its checks read the Hugging Face cache),
and a data root of more than :data:`MAX_DATA_FILES` files (walking it would cost more than it
saves). Only a plan that passed is kept: a config with a fault is checked again, and says so.
Plans live in ``$NCLAYERS_PARSE_CACHE``, default ``~/.cache/nclayers/parse`` (one small JSON
file each, written to a temporary name and renamed), the newest :data:`KEEP` of them.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path

from nclayers.usercache import user_cache_folder
from nclayers.vocabulary import DEFAULT_ROOT

MAX_DATA_FILES = 10_000
KEEP = 200
LIBRARIES = ("torch", "torchvision", "scikit-learn", "numpy", "snakemake")
PACKAGE = Path(__file__).resolve().parent


def default_folder() -> Path:
    """``$NCLAYERS_PARSE_CACHE`` if set, else ``parse`` in the user's cache folder."""
    if os.environ.get("NCLAYERS_PARSE_CACHE"):
        return Path(os.environ["NCLAYERS_PARSE_CACHE"]).expanduser()
    return user_cache_folder() / "parse"


def _source_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(str(path.relative_to(PACKAGE)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def _data_files(root: Path) -> list | None:
    """[path, size, mtime_ns, ctime_ns] of each file under ``root`` (symbolic links followed),
    [] where there is no such folder; None past :data:`MAX_DATA_FILES` files."""
    files = []
    for folder, dirs, names in os.walk(root, followlinks=True):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(folder, name)
            try:
                st = os.stat(path)
            except OSError:  # a dangling link: as the checks see it, no file
                files.append([path, None])
                continue
            files.append([path, st.st_size, st.st_mtime_ns, st.st_ctime_ns])
            if len(files) > MAX_DATA_FILES:
                return None
    return files


def _uses(config: dict, section: str, name: str) -> bool:
    return any((entry or {}).get("name", label) == name
               for label, entry in (config.get(section) or {}).items())


def key(config: dict, *, local: bool, schema: str | Path) -> str | None:
    """The digest of everything the plan of ``config`` depends on; None where it cannot be
    known without planning (see the module's docstring)."""
    if (config.get("device") == "cuda" and local) or _uses(config, "architectures", "bert"):
        return None
    root = Path((config.get("data") or {}).get("root") or DEFAULT_ROOT)
    files = _data_files(root)
    if files is None:
        return None
    facts = [config, local, Path(schema).read_text(), _source_digest(), _versions(), files]
    text = json.dumps(facts, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def remembered(digest: str | None, compute: Callable[[], dict],
               folder: Path | None = None) -> dict:
    """The plan kept under ``digest``, else ``compute()`` (kept when ``digest`` is not None
    and the plan is plain JSON, which it reads back equal)."""
    if digest is None:
        return compute()
    folder = default_folder() if folder is None else folder
    path = folder / f"{digest}.json"
    try:
        plan = json.loads(path.read_text())
        os.utime(path)  # the newest are kept
        return plan
    except (OSError, ValueError):
        pass
    plan = compute()
    try:
        text = json.dumps(plan)
        if json.loads(text) == plan:
            _store(folder, path, text)
    except (TypeError, ValueError, OSError):  # not JSON, or no cache folder: plan each time
        pass
    return plan


def _store(folder: Path, path: Path, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{path.name}.{uuid.uuid4().hex}.tmp"
    tmp.write_text(text)
    os.replace(tmp, path)
    plans = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    for old in plans[:-KEEP]:
        old.unlink(missing_ok=True)
