"""Checkpoints of training states: [`CheckpointWriter`][lerax.checkpoint.CheckpointWriter]
writes a [`TrainState`][lerax.algorithm.TrainState] with orbax-checkpoint,
asynchronously and atomically; [`load`][lerax.checkpoint.load] reads it back,
bitwise, with its batch axes and structure.

orbax-checkpoint is an optional dependency (``pip install
'lerax[checkpoint]'``), imported only when a writer is made or a checkpoint
read: ``import lerax`` works without it.

A directory of checkpoints holds one subdirectory per checkpoint, named by
its step (``directory/30/``); a checkpoint is complete once orbax has renamed
it from its temporary name (``30.orbax-checkpoint-tmp-...``) and it holds
orbax's ``commit_success.txt``. Each holds three items:

- ``state``: the leaves, ``leaf_00000``, ``leaf_00001``, ... in
  ``jax.tree.leaves`` order, as orbax's PyTree (OCDBT, TensorStore); a typed
  PRNG key as its key data;
- ``metadata``: [`CheckpointMetadata`][lerax.checkpoint.CheckpointMetadata]
  as JSON;
- ``structure``: JSON: the state's structure described (every node's type,
  static field, leaf path, shape and dtype), and pickled with
  ``jax.ShapeDtypeStruct`` leaves (base64), so that ``load`` rebuilds it from
  the checkpoint alone.
"""

from .._structure import LeafInfo as LeafInfo
from ..algorithm._loop import set_checkpoint_loader as _set_checkpoint_loader
from ._callback import CheckpointCallback as CheckpointCallback
from ._keys import split_keys as split_keys
from ._load import latest as latest
from ._load import load as load
from ._load import read_metadata as read_metadata
from ._load import steps as steps
from ._metadata import CheckpointMetadata as CheckpointMetadata
from ._metadata import ConfigValue as ConfigValue
from ._metadata import ExtraValue as ExtraValue
from ._writer import CheckpointWriter as CheckpointWriter

_set_checkpoint_loader(load)
