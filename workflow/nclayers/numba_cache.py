"""Numba's compiled code of UMAP and PyNNDescent kept on disk, so that a feature-analysis job
pays the compilation once per machine (or shared cache folder), not once per process.

umap-learn compiles most of its numba functions without ``cache=True``: a fresh process spends
~20–25 s compiling them before any work. :func:`enable` turns numba's own on-disk cache on for
every dispatcher of those packages that has none, before its first call. The compiled code is
the same; only where it comes from changes. Numba keys each cache entry by the function's
source file and the CPU, and writes index and data files to a temporary name, then renames
them, so concurrent jobs on a cold cache each compile and store an equal entry, and jobs on
machines with other CPUs add entries of their own instead of reading a wrong one.

The folder is ``NUMBA_CACHE_DIR``, read by numba when it is first imported: set it (as the
``features`` step does, with ``--numba-cache`` or :func:`default_folder`) before anything
imports numba. The default is one folder per user, so that a new clone or working directory
finds the code compiled by an earlier one (for the same installed umap-learn).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from nclayers.usercache import user_cache_folder

PACKAGES = ("umap", "pynndescent")
_enabled = False


def default_folder() -> Path:
    """The user's cache folder for UMAP's compiled code: ``$NCLAYERS_NUMBA_CACHE`` or numba's
    own ``$NUMBA_CACHE_DIR`` if set, else ``nclayers/numba`` under ``$XDG_CACHE_HOME``
    (default ``~/.cache``)."""
    for variable in ("NCLAYERS_NUMBA_CACHE", "NUMBA_CACHE_DIR"):
        if os.environ.get(variable):
            return Path(os.environ[variable]).expanduser()
    return user_cache_folder() / "numba"


def use_folder(folder: str | Path) -> None:
    """Make ``folder`` numba's cache folder; must run before numba is imported."""
    if "numba" in sys.modules and os.environ.get("NUMBA_CACHE_DIR") != str(folder):
        raise RuntimeError("numba is already imported: set the cache folder before importing "
                           "umap, pynndescent or numba")
    Path(folder).mkdir(parents=True, exist_ok=True)
    os.environ["NUMBA_CACHE_DIR"] = str(folder)


def enable() -> int:
    """Import UMAP and turn on numba's disk cache for each of its (and PyNNDescent's)
    dispatchers that lacks one; returns how many it turned on (0 on a second call)."""
    global _enabled
    if _enabled:
        return 0
    import umap  # noqa: F401  (imports its submodules and pynndescent)
    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    count = 0
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] not in PACKAGES:
            continue
        for value in list(vars(module).values()):
            if isinstance(value, CPUDispatcher) and isinstance(value._cache, NullCache):
                value.enable_caching()
                count += 1
    _enabled = True
    return count
