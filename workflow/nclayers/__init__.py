"""nclayers: neural collapse in the layers of classifiers.

``from nclayers import measure`` gives the library's entry point, the function
:func:`nclayers.measurement.measure` (and ``weight_spectra`` with ``find_consumers``, the
weights that read each layer), imported on first use, so that
``import nclayers`` (and ``python -m nclayers``) stays free of torch.
"""

from __future__ import annotations

_LAZY = {"measure": "nclayers.measurement", "weight_spectra": "nclayers.measurement",
         "find_consumers": "nclayers.weights"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
