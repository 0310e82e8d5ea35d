"""What is learnt from a data file (its md5, its labels' class counts, the digits split's
rows), kept across runs.

`snakemake -n` checks the data files before any job runs; hashing CIFAR10's 170 MB or
unpickling its batches at every dry run would cost seconds, and a job that loads the digits
would import scikit-learn (1.3 s) for their split, so each fact is computed once per
version of a file and kept in one JSON file per user (:func:`default_cache`), which every
working directory and clone reads: a fresh one finds what an earlier one learnt. A version
is the file's absolute path, size, mtime and ctime: the kernel sets ctime at every change of
the content and nothing can set it back, so a file rewritten with its old mtime (``tar x``,
``cp -p``, ``rsync -t``) is seen as changed too. Each fact is named by its reader, and
a fact that code derives from a file also by a digest of that code's source (``md5``,
``labels:CIFAR10:source <digest>``, ``split:0.3:scikit-learn 1.7.2:source <digest>``): a
clone or branch with other code learns its own. The cache is written through a
temporary file renamed over it, so concurrent runs never leave a torn file (one may drop what
the other learnt: it is learnt again); an unreadable cache is ignored and rewritten, one that
cannot be written costs time only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nclayers.usercache import user_cache_folder

_VERSION = 1

Stamp = list[int]  # size, mtime_ns, ctime_ns (a list: what JSON gives back)


def digest(path: Path, algorithm: str) -> str:
    """The hex digest of a file by hashlib's ``algorithm`` ("md5", "sha256"), read in blocks."""
    with Path(path).open("rb") as f:
        new = lambda: hashlib.new(algorithm, usedforsecurity=False)  # noqa: E731
        return hashlib.file_digest(f, new).hexdigest()


def md5(path: Path) -> str:
    """The hex md5 of a file, as torchvision's ``check_integrity`` compares it."""
    return digest(path, "md5")


def default_cache() -> Path:
    """The data files' cache: ``$NCLAYERS_DATA_CACHE`` if set, else ``datafiles.json`` in the
    user's cache folder (:func:`nclayers.usercache.user_cache_folder`)."""
    if os.environ.get("NCLAYERS_DATA_CACHE"):
        return Path(os.environ["NCLAYERS_DATA_CACHE"]).expanduser()
    return user_cache_folder() / "datafiles.json"


def facts(paths: Sequence[Path], reader: str, compute: Callable[[Path], Any],
          cache: str | Path | None = None) -> list[Any]:
    """``compute(path)`` for each of ``paths``, taken from ``cache`` (default
    :func:`default_cache`) where it holds fact ``reader`` of the file as it is now. New facts
    are stored, except None (a failure: tried again next time) and those of a file that
    changed while it was read."""
    cache = Path(cache or default_cache())
    known = _read(cache)
    values, learnt = [], {}
    for path in map(Path, paths):
        key, version = str(path.resolve()), stamp(path)
        entry = known.get(key)
        if entry is not None and entry["stamp"] == version and reader in entry["facts"]:
            values.append(entry["facts"][reader])
            continue
        values.append(compute(path))
        if values[-1] is not None and version is not None and stamp(path) == version:
            learnt[key] = (version, values[-1])
    if learnt:
        _store(cache, reader, learnt)
    return values


def stamp(path: str | Path) -> Stamp | None:
    """A file's version as a cache keys it: [size, mtime_ns, ctime_ns] (ctime, which no program
    can set back), None where there is no file."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _read(cache: Path) -> dict[str, dict]:
    """The cache's entries (path → stamp and facts); {} for a missing or unreadable cache."""
    try:
        content = json.loads(cache.read_text())
        files = content["files"] if content["version"] == _VERSION else {}
        return {key: entry for key, entry in files.items()
                if isinstance(entry, dict) and isinstance(entry.get("facts"), dict)
                and isinstance(entry.get("stamp"), list)}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def _store(cache: Path, reader: str, learnt: dict[str, tuple[Stamp, Any]]) -> None:
    """Add ``learnt`` to the cache as it is on disk now (what other runs wrote meanwhile
    kept), dropping the entries of files that are gone or changed."""
    files = _read(cache)
    for key, (version, value) in learnt.items():
        if files.get(key, {}).get("stamp") != version:
            files[key] = {"stamp": version, "facts": {}}
        files[key]["facts"][reader] = value
    current = {key: entry for key, entry in files.items() if stamp(key) == entry["stamp"]}
    _write(cache, {"version": _VERSION, "files": current})


def _write(cache: Path, content: dict) -> None:
    """Write ``content`` as JSON to ``cache`` atomically (temporary file, then os.replace);
    a cache that cannot be written costs time on the next run, nothing else."""
    # A name of its own (not mkstemp's: its files are private, this one follows the umask).
    tmp = cache.with_name(f".{cache.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("x") as f:
            json.dump(content, f)
        os.replace(tmp, cache)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
