"""Bad input to CheckpointWriter and load is a clear error naming the
argument, the file and what is wrong; a structure that differs from ``like``
names its first differing path."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, final

import equinox as eqx
import jax.numpy as jnp
import pytest
from jaxtyping import Array, Int

from lerax.algorithm import PPO, TrainState
from lerax.checkpoint import CheckpointWriter, load, read_metadata

from .helpers import assert_bitwise_equal

State = TrainState[Any, Any, Any, Any]


@pytest.fixture
def saved(ppo_state: State, tmp_path: Path) -> Path:
    """A directory holding one checkpoint of ``ppo_state``, step 3."""
    directory = tmp_path / "run"
    with CheckpointWriter(directory) as writer:
        writer.save(3, ppo_state)
    return directory


def test_an_unwritable_directory_is_named_at_construction(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("not a directory")
    with pytest.raises(
        ValueError,
        match=rf"CheckpointWriter: directory={str(file / 'sub')!r} cannot be written: "
        "Not a directory",
    ):
        CheckpointWriter(file / "sub")
    with pytest.raises(
        ValueError, match=rf"directory={str(file)!r} cannot be written: File exists"
    ):
        CheckpointWriter(file)
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ValueError, match="cannot be written: Permission denied"):
            CheckpointWriter(locked)


@pytest.mark.parametrize("keep_last", [0, -2, True])
def test_keep_last_must_be_a_positive_integer(keep_last: int, tmp_path: Path) -> None:
    with pytest.raises(
        ValueError,
        match=rf"keep_last must be a positive integer or None, got keep_last={keep_last!r}",
    ):
        CheckpointWriter(tmp_path, keep_last=keep_last)


def test_bad_saves_are_refused(ppo_state: State, tmp_path: Path) -> None:
    writer = CheckpointWriter(tmp_path)
    with pytest.raises(ValueError, match="step must be >= 0, got step=-1"):
        writer.save(-1, ppo_state)
    with pytest.raises(TypeError, match="step must be an int, got True"):
        writer.save(True, ppo_state)
    with pytest.raises(TypeError, match="parameter 'state'|state must be a TrainState"):
        writer.save(0, ppo_state.policy)
    not_array = eqx.tree_at(lambda s: s.timesteps, ppo_state, 48.0)
    with pytest.raises(
        TypeError, match="every leaf must be an array, got float at .timesteps"
    ):
        writer.save(0, not_array)
    two_counters = eqx.tree_at(
        lambda s: s.iteration, ppo_state, jnp.zeros(2, jnp.int32)
    )
    with pytest.raises(
        ValueError,
        match=r"the leaf \.policy\.actor_torso\.layers\[0\]\.weight has shape \(4, 8\), "
        r"which does not start with the batch shape \(2,\)",
    ):
        writer.save(0, two_counters)
    with pytest.raises(
        ValueError, match="key_impls names .nothing, which is not a leaf"
    ):
        writer.save(0, ppo_state, key_impls={".nothing": "threefry2x32"})
    with pytest.raises(
        ValueError,
        match=r"key_impls names \.observation as threefry2x32 key data, which is "
        r"uint32 with trailing shape \(2,\); got float32 of shape \(2, 4\)",
    ):
        writer.save(0, ppo_state, key_impls={".observation": "threefry2x32"})
    assert os.listdir(tmp_path) == []  # nothing was written
    writer.close()
    writer.close()  # idempotent
    assert writer.closed
    with pytest.raises(RuntimeError, match="is closed"):
        writer.save(0, ppo_state)


def test_missing_checkpoints_are_named(saved: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"path='.*nowhere' does not exist"):
        load(tmp_path / "nowhere")
    file = tmp_path / "file"
    file.write_text("")
    with pytest.raises(ValueError, match="is a file, not a directory of checkpoints"):
        load(file)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(
        FileNotFoundError, match=r"no complete checkpoint in '.*empty'$"
    ):
        load(empty)


def test_a_save_that_did_not_finish_is_not_loaded(saved: Path) -> None:
    unfinished = saved / "3.orbax-checkpoint-tmp"
    os.rename(saved / "3", unfinished)
    with pytest.raises(
        FileNotFoundError,
        match=r"no complete checkpoint in .* \(only saves that did not finish: "
        r"\['3\.orbax-checkpoint-tmp'\]\)",
    ):
        load(saved)
    with pytest.raises(ValueError, match="is an incomplete checkpoint"):
        load(unfinished)
    os.rename(unfinished, saved / "3")
    os.remove(saved / "3" / "commit_success.txt")  # never committed
    with pytest.raises(
        ValueError, match=r"'.*/3' is an incomplete checkpoint \(no commit_success.txt"
    ):
        load(saved / "3")


@pytest.mark.parametrize("item", ["state", "metadata", "structure"])
def test_a_missing_item_is_named(saved: Path, item: str) -> None:
    shutil.rmtree(saved / "3" / item)
    with pytest.raises(
        FileNotFoundError,
        match=rf"the checkpoint '.*/3' is damaged: its '{item}' item \(.*/3/{item}\) is missing",
    ):
        load(saved)


def _json_item(saved: Path, item: str) -> Path:
    (path,) = [
        p for p in (saved / "3" / item).iterdir() if p.name != "commit_success.txt"
    ]
    return path


def test_corrupt_metadata_is_named(saved: Path) -> None:
    path = _json_item(saved, "metadata")
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "batch_shape": "two"}))
    with pytest.raises(
        ValueError,
        match="has corrupt metadata: batch_shape must be a list of integers, got 'two'",
    ):
        read_metadata(saved)
    path.write_text(json.dumps({**data, "format_version": 7}))
    with pytest.raises(
        ValueError, match="has format version 7; this Lerax reads version 1"
    ):
        load(saved)
    path.write_text("{not json")
    with pytest.raises(
        ValueError,
        match=r"the checkpoint '.*/3' is corrupt: its 'metadata' cannot be read",
    ):
        load(saved)


def test_corrupt_leaves_are_named(saved: Path) -> None:
    for path in (saved / "3" / "state").rglob("*"):
        if path.is_file() and path.name != "commit_success.txt":
            path.write_bytes(b"\x00garbage" * 3)
    with pytest.raises(
        ValueError,
        match=r"the checkpoint '.*/3' is corrupt: its 'state' cannot be read",
    ):
        load(saved)


def test_a_corrupt_structure_pickle_is_named(saved: Path, ppo_state: State) -> None:
    path = _json_item(saved, "structure")
    data = json.loads(path.read_text())
    path.write_text(
        json.dumps({**data, "pickle": "bm90IGEgcGlja2xl"})
    )  # "not a pickle"
    with pytest.raises(
        ValueError,
        match="structure of the checkpoint .* cannot be rebuilt .*pass like=",
    ):
        load(saved)
    # like= reads no pickle
    assert_bitwise_equal(load(saved, like=ppo_state), ppo_state)


def test_like_must_match(saved: Path, ppo_state: State) -> None:
    other_algo = PPO(num_envs=2, num_steps=16, num_epochs=1, num_minibatches=1)
    other = eqx.tree_at(lambda s: s.algorithm, ppo_state, other_algo)
    with pytest.raises(
        ValueError,
        match=r"does not match like: \.algorithm\.num_steps: the file has static 8; "
        r"the given structure has static 16$",
    ):
        load(saved, like=other)
    wider = eqx.tree_at(lambda s: s.observation, ppo_state, jnp.zeros((3, 4)))
    with pytest.raises(
        ValueError,
        match=r"\.observation: the file has shape \(2, 4\) dtype float32; the given "
        r"structure has shape \(3, 4\) dtype float32$",
    ):
        load(saved, like=wider)
    counted = eqx.tree_at(lambda s: s.iteration, ppo_state, jnp.zeros((), jnp.float32))
    with pytest.raises(
        ValueError,
        match=r"\.iteration: the file has shape \(\) dtype int32; the given structure has shape \(\) dtype float32",
    ):
        load(saved, like=counted)
    metrics = eqx.tree_at(lambda s: s.metrics, ppo_state, {"extra": jnp.zeros(())})
    with pytest.raises(
        ValueError,
        match=r"\.metrics\['extra'\]: the given structure has shape \(\) dtype float32; the file has no \.metrics\['extra'\]",
    ):
        load(saved, like=metrics)
    with pytest.raises(TypeError, match="like must be a TrainState or None, got dict"):
        load(saved, like={"policy": ppo_state.policy})  # type: ignore[call-overload]  # pyright: ignore[reportCallIssue, reportArgumentType]  # a wrong type on purpose


def test_a_structure_pickle_cannot_hold_loads_with_like(
    ppo_state: State, tmp_path: Path
) -> None:
    @final
    class Count(eqx.Module):  # local: pickle cannot find it by name
        count: Int[Array, ""]

    state = eqx.tree_at(lambda s: s.callback_state, ppo_state, Count(jnp.int32(5)))
    with CheckpointWriter(tmp_path) as writer:
        writer.save(1, state)
    meta = read_metadata(tmp_path)
    assert not meta.rebuildable
    assert meta.structure_error is not None and "Count" in meta.structure_error
    with pytest.raises(
        ValueError,
        match=r"was saved without its structure \(the structure cannot be pickled: .*\); pass like=",
    ):
        load(tmp_path)
    loaded = load(tmp_path, like=state)
    assert_bitwise_equal(loaded, state)
    assert isinstance(loaded.callback_state, Count)


CHILD = """
import json, sys
sys.modules["orbax"] = None  # as if orbax-checkpoint were not installed
import jax.numpy as jnp, jax.random as jr
import lerax
from lerax.checkpoint import CheckpointWriter, load, read_metadata
from lerax.env import CartPole
from lerax.policy import MLPQPolicy

out = {"orbax_imported": any(m.startswith("orbax.") for m in sys.modules)}
def error(call):
    try:
        call()
    except Exception as err:
        return [type(err).__name__, str(err)]
out["writer"] = error(lambda: CheckpointWriter(sys.argv[2]))
out["load"] = error(lambda: load(sys.argv[1]))
out["metadata"] = error(lambda: read_metadata(sys.argv[1]))
policy = MLPQPolicy(env=CartPole(), key=jr.key(0), hidden_sizes=(4,))
lerax.save(sys.argv[3], policy)
out["policy_round_trip"] = bool((lerax.load(sys.argv[3]).head.weight == policy.head.weight).all())
out["like_policy"] = error(lambda: lerax.load(sys.argv[3], like=3))
out["save_policy"] = error(lambda: lerax.save(sys.argv[3], {"w": jnp.zeros(2)}))
out["like_state"] = error(lambda: load(sys.argv[1], like=3))
print(json.dumps(out))
"""


def test_without_orbax_and_the_runtime_checker(saved: Path, tmp_path: Path) -> None:
    """``import lerax`` works without orbax-checkpoint, which only writing or
    reading a checkpoint needs; policy files need no orbax. In plain Python
    (no runtime checker) Lerax's own messages name the bad arguments."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            str(saved),
            str(tmp_path / "w"),
            str(tmp_path / "p.lerax"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["orbax_imported"] is False
    hint = "needs orbax-checkpoint, which is not installed: pip install 'lerax[checkpoint]'"
    assert out["writer"] == ["ImportError", f"CheckpointWriter {hint}"]
    assert out["load"] == ["ImportError", f"lerax.checkpoint.load {hint}"]
    assert out["metadata"] == ["ImportError", f"lerax.checkpoint.read_metadata {hint}"]
    assert out["policy_round_trip"] is True
    assert out["like_policy"] == [
        "TypeError",
        "lerax.load: like must be an AbstractPolicy or None, got int",
    ]
    assert out["save_policy"] == [
        "TypeError",
        "lerax.save: policy must be an AbstractPolicy, got dict",
    ]
    assert out["like_state"] == [
        "TypeError",
        "lerax.checkpoint.load: like must be a TrainState or None, got int",
    ]
    assert not (tmp_path / "w").exists() or os.listdir(tmp_path / "w") == []


def test_the_public_surface() -> None:
    """``lerax.checkpoint`` exports one Equinox module, the final
    ``CheckpointCallback`` (tests/test_package.py checks it with the other
    packages), and no exception of its own; ``lerax.save``/``lerax.load`` are
    the policy functions."""
    import lerax
    import lerax.checkpoint as checkpoint

    exported = {
        name: obj for name, obj in vars(checkpoint).items() if not name.startswith("_")
    }
    modules = {
        name
        for name, obj in exported.items()
        if isinstance(obj, type) and issubclass(obj, eqx.Module)
    }
    assert modules == {"CheckpointCallback"}
    assert not any(
        isinstance(obj, type) and issubclass(obj, BaseException)
        for obj in exported.values()
    )
    assert {
        "CheckpointWriter",
        "CheckpointMetadata",
        "LeafInfo",
        "load",
        "latest",
        "read_metadata",
        "split_keys",
        "steps",
    } <= set(exported)
    assert lerax.checkpoint is checkpoint
    assert lerax.save.__module__ == lerax.load.__module__ == "lerax._serialise"
