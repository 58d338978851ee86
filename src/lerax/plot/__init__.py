"""Pictures of training: [`learning_curves`][lerax.plot.learning_curves] draws
what a [`HistoryCallback`][lerax.callback.history.HistoryCallback] recorded.

Drawn with matplotlib, an optional dependency (``pip install 'lerax[plot]'``):
``import lerax`` does not import this package, and importing it without
matplotlib raises an ``ImportError`` that says so.
"""

try:
    import matplotlib as _matplotlib  # noqa: F401  # checked here, used in ._curves
except ImportError as _error:
    raise ImportError(
        "lerax.plot draws with matplotlib, which is not installed: "
        "pip install 'lerax[plot]' (or pip install matplotlib)"
    ) from _error

from ._curves import BANDS as BANDS
from ._curves import CurveData as CurveData
from ._curves import learning_curve_data as learning_curve_data
from ._curves import learning_curves as learning_curves
