"""A process killed while it writes a checkpoint leaves the previous one
loadable, bit for bit, even with ``keep_last=1``; the next writer on the
directory removes the unfinished one."""

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from lerax.algorithm import TrainState
from lerax.checkpoint import CheckpointWriter, load, steps

from .helpers import assert_bitwise_equal

# Loads checkpoint 1 and saves a large checkpoint 2 beside it with
# keep_last=1 (checkpoint 1 would be deleted once 2 is complete); says when
# save has returned, then waits for the write, which the test interrupts.
CHILD = """
import sys
import equinox as eqx
import numpy as np
from lerax.checkpoint import CheckpointWriter, load

directory = sys.argv[1]
state = load(directory)
big = np.random.default_rng(0).random((6_000_000, 4), dtype=np.float32)  # 96 MB
state = eqx.tree_at(lambda s: s.observation, state, big)
writer = CheckpointWriter(directory, keep_last=1)
writer.save(2, state)
print("saving", flush=True)
writer.wait()
print("saved", flush=True)
"""


def test_a_process_killed_mid_save_leaves_the_previous_checkpoint(
    ppo_state: TrainState[Any, Any, Any, Any], tmp_path: Path
) -> None:
    with CheckpointWriter(tmp_path) as writer:
        writer.save(1, ppo_state)
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None and child.stderr is not None
            line = child.stdout.readline()  # blocks until save has returned
            if line != "saving\n":
                child.wait(timeout=60)
                raise AssertionError(f"the child failed: {child.stderr.read()}")
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
    assert child.returncode == -signal.SIGKILL
    # killed while writing: checkpoint 2 exists only under its temporary name
    names = sorted(os.listdir(tmp_path))
    assert names == ["1", "2.orbax-checkpoint-tmp"], names
    assert steps(tmp_path) == (1,)
    assert_bitwise_equal(load(tmp_path), ppo_state)

    # the next writer clears the unfinished save (in the background) and
    # writes step 2 anew; keep_last=1 then deletes step 1
    with CheckpointWriter(tmp_path, keep_last=1) as writer:
        writer.save(2, ppo_state)
    assert sorted(os.listdir(tmp_path)) == ["2"]
    assert_bitwise_equal(load(tmp_path), ppo_state)
