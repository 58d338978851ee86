# Minimal stubs for tensorboardX.summary: only what Lerax calls.
from collections.abc import Mapping

from .proto.summary_pb2 import Summary

def hparams(
    hparam_dict: Mapping[str, bool | int | float | str] | None = None,
    metric_dict: Mapping[str, float] | None = None,
) -> tuple[Summary, Summary, Summary]: ...
