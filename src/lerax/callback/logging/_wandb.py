"""WandbBackend: Weights & Biases, one W&B run per training run."""

import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Literal, Protocol, cast, final, runtime_checkable

from typing_extensions import override

from ._backend import AbstractLoggingBackend, HParamValue, RunInfo

WandbMode = Literal["online", "offline", "disabled"]

_INSTALL_HINT = "WandbBackend needs wandb: pip install 'lerax[wandb]'"


@runtime_checkable
class _WandbRun(Protocol):
    def log(self, data: Mapping[str, float], step: int | None = None) -> None: ...
    def finish(self) -> None: ...


def _wandb_init() -> Callable[..., _WandbRun]:
    """``wandb.init``, imported now (wandb is the optional ``lerax[wandb]`` extra).

    Raises:
        ImportError: with the install hint, if wandb is not installed.
    """
    try:
        module = importlib.import_module("wandb")
    except ImportError as err:
        raise ImportError(_INSTALL_HINT) from err
    return cast(Callable[..., _WandbRun], module.init)


@final
class WandbBackend(AbstractLoggingBackend):
    """Log to Weights & Biases: one W&B run per training run, in one group.

    Each run is created when it starts, with the hyperparameters as its
    ``config``; a single run is named after the experiment (``<algorithm>_<env>_
    <timestamp>`` or ``LoggingCallback(name=...)``), run ``i`` of a vmapped batch
    ``<name>-run<i>``. All of them share ``group`` (default: the experiment
    name), so W&B can aggregate seeds. A later ``learn`` call with the same
    logger continues the same W&B runs; ``close()`` finishes them.

    wandb is an optional dependency: ``pip install 'lerax[wandb]'``. For tests or
    machines without network use ``mode="offline"`` (or ``WANDB_MODE=offline``).

    Args:
        project: the W&B project (default: wandb's own default).
        group: the W&B group shared by the runs (default: the experiment name).
        entity: the W&B entity (user or team).
        mode: ``"online"``, ``"offline"`` or ``"disabled"``; ``None`` leaves it to
            wandb (``WANDB_MODE``).
        dir: where wandb writes its local files.
        tags: tags for every run.

    Raises:
        ImportError: if wandb is not installed (with the install hint).
        ValueError: if ``mode`` is not one of the three.
    """

    def __init__(
        self,
        project: str | None = None,
        *,
        group: str | None = None,
        entity: str | None = None,
        mode: WandbMode | None = None,
        dir: str | os.PathLike[str] | None = None,
        tags: Sequence[str] = (),
    ):
        if mode not in (None, "online", "offline", "disabled"):
            raise ValueError(
                "WandbBackend: mode must be 'online', 'offline', 'disabled' or None, "
                f"got mode={mode!r}"
            )
        self._init = _wandb_init()
        self.project = project
        self.group = group
        self.entity = entity
        self.mode = mode
        self.dir = None if dir is None else os.fspath(dir)
        self.tags = tuple(tags)
        self._run: RunInfo | None = None
        self._runs: dict[int, _WandbRun] = {}

    @override
    def open(self, run: RunInfo) -> None:
        if self._run is None:
            self._run = run

    def _wandb_run(
        self, run_index: int, config: Mapping[str, HParamValue] | None
    ) -> _WandbRun:
        existing = self._runs.get(run_index)
        if existing is not None:
            return existing
        if self._run is None:
            raise RuntimeError("WandbBackend used before open")
        info = self._run
        name = info.name if info.num_runs == 1 else f"{info.name}-run{run_index}"
        created = self._init(
            project=self.project,
            entity=self.entity,
            group=self.group or info.name,
            name=name,
            config=dict(config or {}),
            mode=self.mode,
            dir=self.dir,
            tags=list(self.tags),
            reinit="create_new",
        )
        self._runs[run_index] = created
        return created

    @override
    def log_hparams(self, hparams: Mapping[str, HParamValue], run_index: int) -> None:
        self._wandb_run(run_index, hparams)

    @override
    def log_scalars(
        self, scalars: Mapping[str, float], step: int, run_index: int
    ) -> None:
        self._wandb_run(run_index, None).log(dict(scalars), step=step)

    @override
    def finish(self, run_index: int) -> None:
        """Nothing: the W&B run stays open for a later ``learn`` call."""

    @override
    def flush(self) -> None:
        """Nothing: wandb sends in the background; ``close`` waits for it."""

    @override
    def close(self) -> None:
        for wandb_run in self._runs.values():
            wandb_run.finish()
        self._runs.clear()
