"""The plan of an experiment, kept once per user, so that a `snakemake` call like an earlier one
skips torch's import (2–2.5 s of every call) and the checks that build the models.

The Snakefile's plan is :func:`nclayers.preflight.prepare` (the config checked, its defaults,
runs and design) and the design job's defaults (:func:`nclayers.design.option_defaults`). It
is a pure function of what :func:`key` digests:

- the config as Snakemake loaded it, its keys in their order (the runs and axes follow it),
  and whether jobs run on this machine;
- the schema's text, the source of every module of this package and the versions of Python
  and of the libraries the checks call (torch builds the models, torchvision and scikit-learn
  hold the datasets' readers and the digits, jsonschema and PyYAML read the config);
- each file under the data root: its path, size, modification and change times (ctime, which
  no program can set back), so that a file added, removed or changed plans again.

Whatever the key cannot cover is planned every time: a config that is not plain JSON (the
schema then says what is wrong with it), one that asks for CUDA on this machine (the check asks
the driver), a BERT model (its checks read the Hugging Face cache), a data root of more than
:data:`MAX_DATA_ENTRIES` entries, a link loop or a folder it cannot list. A plan is kept only
when it passed and the key is the same after planning as before (a file that arrived while
planning plans again), and read only from a folder of the user's own that no one else can
write to. A fault is checked again, and said. Plans live in ``$NCLAYERS_PARSE_CACHE``, default
``~/.cache/nclayers/parse`` (one small JSON file each, written to a temporary name and
renamed), the newest :data:`KEEP` of them.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import re
import stat
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from nclayers.datacache import stamp
from nclayers.usercache import user_cache_folder
from nclayers.vocabulary import DEFAULT_ROOT

MAX_DATA_ENTRIES = 10_000
KEEP = 200
LIBRARIES = ("torch", "torchvision", "scikit-learn", "numpy", "snakemake", "jsonschema",
             "referencing", "PyYAML")
PACKAGE = Path(__file__).resolve().parent
_PLAN = re.compile(r"[0-9a-f]{64}\.json")


class _Uncovered(Exception):
    """What the key cannot cover: plan every time."""


def default_folder() -> Path:
    """``$NCLAYERS_PARSE_CACHE`` if set, else ``parse`` in the user's cache folder."""
    if os.environ.get("NCLAYERS_PARSE_CACHE"):
        return Path(os.environ["NCLAYERS_PARSE_CACHE"]).expanduser()
    return user_cache_folder() / "parse"


def _source_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name.startswith("."):  # an editor's lock or backup file, not a module
            continue
        digest.update(str(path.relative_to(PACKAGE)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": sys.version}
    for name in LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def _data_files(root: Path) -> list:
    """[path, its :func:`~nclayers.datacache.stamp`] of each file under ``root`` (links
    followed), [] where there is no such folder. _Uncovered past
    :data:`MAX_DATA_ENTRIES` files and folders, at a link loop or a folder it cannot list."""
    def cannot_list(error: OSError) -> None:
        if not (error.filename == str(root) and isinstance(error, FileNotFoundError)):
            raise _Uncovered(f"cannot list {error.filename}")

    files: list = []
    seen: set[tuple[int, int]] = set()
    for folder, dirs, names in os.walk(root, followlinks=True, onerror=cannot_list):
        st = os.stat(folder)
        if (st.st_dev, st.st_ino) in seen:  # a folder reached twice: a link back up would
            raise _Uncovered(f"link loop at {folder}")  # never end, another link repeats
        seen.add((st.st_dev, st.st_ino))
        dirs.sort()
        # a dangling link as None: as the checks see it, no file
        files += [[os.path.join(folder, name), stamp(os.path.join(folder, name))]
                  for name in sorted(names)]
        if len(files) + len(seen) > MAX_DATA_ENTRIES:
            raise _Uncovered(f"more than {MAX_DATA_ENTRIES} entries under {root}")
    return files


def _uses(config: dict, section: str, name: str) -> bool:
    return any((entry or {}).get("name", label) == name
               for label, entry in (config.get(section) or {}).items())


def _key(config: dict, local: bool, schema: str | Path) -> str:
    text = json.dumps(config)  # not JSON (a date, a key that is no string): TypeError
    if repr(json.loads(text)) != repr(config):  # int keys made strings, int subclasses
        raise _Uncovered("the config is not plain JSON")
    if (config.get("device") == "cuda" and local) or _uses(config, "architectures", "bert"):
        raise _Uncovered("the checks ask this machine")
    root = Path((config.get("data") or {}).get("root") or DEFAULT_ROOT)
    facts = [text, local, Path(schema).read_text(), _source_digest(), _versions(),
             _data_files(root)]
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()


def key(config: dict, *, local: bool, schema: str | Path) -> str | None:
    """The digest of everything the plan of ``config`` depends on; None where that cannot be
    known without planning (see the module's docstring), or where reading it fails: a config
    the schema refuses is then refused by planning, with its message."""
    try:
        return _key(config, local, schema)
    except Exception:  # noqa: BLE001 (whatever it is, planning says it or plans without)
        return None


def _own(folder: Path) -> bool:
    """``folder`` is the user's and no one else can write to it (else a plan put there by
    someone else would skip the checks); made so where it is missing."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = folder.stat()
    except OSError:
        return False
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def remembered(digest: Callable[[], str | None], compute: Callable[[], dict],
               fields: Iterable[str], folder: Path | None = None) -> dict:
    """The plan kept under ``digest()``, a dict of exactly ``fields``; else ``compute()``,
    kept when ``digest()`` gives the same key after it and the plan reads back from JSON the
    same (types and order)."""
    folder = default_folder() if folder is None else folder
    before = digest()
    if before is None or not _own(folder):
        return compute()
    path = folder / f"{before}.json"
    try:
        plan = json.loads(path.read_text())
        if isinstance(plan, dict) and sorted(plan) == sorted(fields):
            with contextlib.suppress(OSError):
                os.utime(path)  # the newest are kept
            return plan
    except (OSError, ValueError):
        pass
    plan = compute()
    text = json.dumps(plan, default=repr)
    if repr(json.loads(text)) == repr(plan) and digest() == before:
        with contextlib.suppress(OSError):  # a full disk: plan again next time
            _store(folder, path, text)
    return plan


def _store(folder: Path, path: Path, text: str) -> None:
    from nclayers.io import write_text  # (pandas, which planning has imported already)

    write_text(path, text)
    plans = []
    for entry in folder.iterdir():
        if _PLAN.fullmatch(entry.name):  # only plans: the folder may hold other files
            with contextlib.suppress(OSError):  # pruned by another process meanwhile
                plans.append((entry.stat().st_mtime_ns, entry))
    for _, old in sorted(plans)[:-KEEP]:
        old.unlink(missing_ok=True)
