"""The one base of the errors a user can fix (a config key, a file, an argument)."""

from __future__ import annotations


class UserError(Exception):
    """An error whose message names the key, file or value at fault and the fix.

    ``python -m nclayers`` prints it as one line, ``nclayers <step>: error: ...``, instead of
    a traceback; the library's subclasses also derive from the matching built-in error
    (ValueError, FileNotFoundError, RuntimeError), so callers may catch either.
    """
