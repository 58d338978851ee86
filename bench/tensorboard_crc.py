"""What one TensorBoard scalar record costs to write: CPU time per record of
20 scalars through tensorboardX's ``EventsWriter`` (build, serialize,
check-sum, write), as ``TensorBoardBackend.log_scalars`` does on the
logger's writer thread, and the check-sum alone.

The check-sum is native when the optional ``crc32c`` package is installed
(``pip install lerax[crc32c]``), else tensorboardX's pure-Python CRC.

Usage: .venv/bin/python bench/tensorboard_crc.py
"""

import importlib.util
import os
import statistics
import sys
import tempfile
import time

from tensorboardX.crc32c import crc32c
from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto.event_pb2 import Event
from tensorboardX.proto.summary_pb2 import Summary

RECORDS, SCALARS, REPEATS = 2000, 20, 7
TAGS = [f"train/metric_{i:02d}" for i in range(SCALARS)]


def _event(step: int) -> Event:
    values = [
        Summary.Value(tag=tag, simple_value=float(step) + i * 0.5)
        for i, tag in enumerate(TAGS)
    ]
    return Event(wall_time=time.time(), step=step, summary=Summary(value=values))


def _per_record_us(writer: EventsWriter) -> float:
    start = time.process_time()
    for step in range(RECORDS):
        writer.write_event(_event(step))
    return (time.process_time() - start) / RECORDS * 1e6


def main() -> None:
    native = importlib.util.find_spec("crc32c") is not None
    with tempfile.TemporaryDirectory() as directory:
        times = []
        for repeat in range(REPEATS):
            writer = EventsWriter(os.path.join(directory, "events"), f".{repeat}")
            times.append(_per_record_us(writer))
            writer.close()
    data = _event(1).SerializeToString()
    start = time.process_time()
    for _ in range(RECORDS):
        crc32c(data)
    crc_us = (time.process_time() - start) / RECORDS * 1e6
    print(f"python {sys.version.split()[0]}; native crc32c installed: {native}")
    print(
        f"per record, us CPU: median {statistics.median(times):.1f}, "
        f"min {min(times):.1f} ({REPEATS} x {RECORDS} records of {SCALARS} scalars)"
    )
    print(f"CRC of one {len(data)}-byte record alone: {crc_us:.2f} us")


if __name__ == "__main__":
    main()
