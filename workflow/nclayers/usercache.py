"""The user's cache folder of nclayers, where what one working directory learnt or compiled
serves every other (a new clone, a fresh ``--directory``): ``nclayers`` under
``$XDG_CACHE_HOME``, default ``~/.cache``. What is kept there is keyed by what it depends on
(a data file's version and the source of the code that read it; the CPU and the source of a
compiled function), so that sharing it never gives one folder another's answer."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def user_cache_folder() -> Path:
    """``$XDG_CACHE_HOME/nclayers``, or ``~/.cache/nclayers`` where that is not set; a folder
    of the user's under the temporary directory where there is no home either (a job under a
    system account), so that a cache costs time there, never a failure."""
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = Path.home() / ".cache"
        except RuntimeError:  # no $HOME and no entry in the password database
            return Path(tempfile.gettempdir()) / f"nclayers-cache-{os.getuid()}"
    return Path(base).expanduser() / "nclayers"
