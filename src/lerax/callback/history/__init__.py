"""Learning curves as data:
[`HistoryCallback`][lerax.callback.history.HistoryCallback] records chosen
scalars on device into its
[`HistoryState`][lerax.callback.history.HistoryState], which ``train`` returns
(per run under ``eqx.filter_vmap``); [`lerax.plot`][lerax.plot] draws them.

Also importable from [`lerax.callback`][lerax.callback].
"""

from ._callback import HistoryCallback as HistoryCallback
from ._callback import HistoryState as HistoryState
