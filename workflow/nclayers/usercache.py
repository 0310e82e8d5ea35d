"""The user's cache folder of nclayers, where what one working directory learnt or compiled
serves every other (a new clone, a fresh ``--directory``, a test's temporary folder):
``nclayers`` under ``$XDG_CACHE_HOME``, default ``~/.cache``. What is kept there is keyed by
what it depends on (a data file's version, the CPU and the source of a compiled function), so
that sharing it never gives one folder another's answer."""

from __future__ import annotations

import os
from pathlib import Path


def user_cache_folder() -> Path:
    """``$XDG_CACHE_HOME/nclayers``, or ``~/.cache/nclayers`` where that is not set."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "nclayers"
