"""WandbBackend: Weights & Biases, one W&B run per training run."""

import configparser
import importlib
import netrc
import os
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Literal, Protocol, cast, final, runtime_checkable
from urllib.parse import urlsplit

from typing_extensions import override

from ._backend import AbstractLoggingBackend, HParamValue, RunInfo

WandbMode = Literal["online", "offline", "disabled"]

_INSTALL_HINT = "WandbBackend needs wandb: pip install 'lerax[wandb]'"
_DEFAULT_BASE_URL = "https://api.wandb.ai"
_ONLINE_MODES = ("online", "run", "shared")
"""wandb's modes that talk to the server (``run`` is wandb's old name for online)."""


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

    Each W&B run's id comes from the experiment's identity
    ([`RunInfo.experiment_id`][lerax.callback.logging.RunInfo],
    ``YYYYmmdd-HHMMSS-xxxxxxxx``, with ``-run<i>`` under vmap), and runs are
    created with ``resume="allow"``, so a run resumed from a saved state
    (``train(resume_from=...)``, with any logger built the same way, in any
    process) logs into the same W&B run, steps continuing from the saved
    counters; its hyperparameters were recorded when it first started.
    Online, W&B resumes a run at its last logged step and ignores rows
    logged at a lower step: rows that a process that went on past the saved
    state logged stay, and the resumed run's rows for those steps are
    dropped (with bitwise resume they hold the same values, but for
    ``time/steps_per_second``). Offline, the resumed process writes its own
    run directory with the same id, holding every row it logged (``wandb
    sync`` uploads it into the same run).

    wandb is an optional dependency: ``pip install 'lerax[wandb]'``. For tests or
    machines without network use ``mode="offline"`` (or ``WANDB_MODE=offline``).

    Online, wandb needs an API key, and without one it would fail (or prompt)
    only once training has started, from the logger's writer thread. So an
    online backend checks at construction, without network, that a key is
    configured where wandb looks for one: ``WANDB_API_KEY`` (or
    ``WANDB_IDENTITY_TOKEN_FILE``), the netrc file (``NETRC``, ``~/.netrc``
    or ``~/_netrc``) with an entry for the W&B host (``WANDB_BASE_URL``,
    default ``api.wandb.ai``; ``wandb login`` writes it), or ``api_key`` in
    wandb's settings file. Whether the key is valid is left to wandb. Offline
    and disabled backends check nothing.

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
        ValueError: if ``mode`` is not one of the three, or if the backend
            would run online (``mode="online"``, or ``mode=None`` with
            neither ``WANDB_MODE`` nor wandb's settings file choosing another
            mode) and no API key is configured; the message says how to log
            in or to choose ``mode="offline"``.
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
        _check_api_key(mode)
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
            **self._identity(info, run_index),
        )
        self._runs[run_index] = created
        return created

    @staticmethod
    def _identity(info: RunInfo, run_index: int) -> dict[str, str]:
        """The W&B run id of run ``run_index`` and ``resume="allow"`` (nothing
        without an experiment identity: wandb then draws an id)."""
        if not info.experiment_id:
            return {}
        suffix = "" if info.num_runs == 1 else f"-run{run_index}"
        return {"id": info.experiment_id + suffix, "resume": "allow"}

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


def _check_api_key(mode: WandbMode | None) -> None:
    """Raise ``ValueError`` if wandb would run online without an API key.

    Reads only the environment and local files, never the network: the netrc
    file and wandb's settings files, the global one (``WANDB_CONFIG_DIR`` or
    ``~/.config/wandb``) and the workspace one (``wandb/settings`` under
    ``WANDB_DIR`` or the working directory).
    """
    settings = _settings_files()
    resolved, why = _resolved_mode(mode, settings)
    if resolved not in _ONLINE_MODES:
        return
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return
    if settings.get("api_key"):
        return
    base_url = os.environ.get("WANDB_BASE_URL") or settings.get("base_url")
    base_url = base_url or _DEFAULT_BASE_URL
    host = urlsplit(base_url).netloc or base_url
    path = _netrc_path()
    if path is not None and _netrc_has(path, host):
        return
    if path is None:
        netrc_text = "there is no ~/.netrc"
    elif not path.is_file():
        netrc_text = f"the netrc file {path} does not exist"
    else:
        netrc_text = f"the netrc file {path} has no password for {host}"
    raise ValueError(
        f"WandbBackend runs online ({why}) but no W&B API key is configured: "
        f"WANDB_API_KEY is not set and {netrc_text}, so wandb would fail only "
        "once training has started. Log in once with `wandb login` (or set "
        "WANDB_API_KEY), or pass mode='offline' to log locally (upload later "
        "with `wandb sync`) or mode='disabled' to log nothing."
    )


def _resolved_mode(
    mode: WandbMode | None, settings: Mapping[str, str]
) -> tuple[str, str]:
    """The mode wandb will run in, and where it comes from (for the message)."""
    if mode is not None:
        return mode, f"mode={mode!r}"
    if from_env := os.environ.get("WANDB_MODE"):
        return from_env, f"mode=None and WANDB_MODE={from_env!r}"
    if from_file := settings.get("mode"):
        return from_file, f"mode=None and wandb's settings file sets mode={from_file!r}"
    return "online", "mode=None, and wandb's default is online"


def _settings_files() -> dict[str, str]:
    """The ``[default]`` section of wandb's global and workspace settings files
    (the workspace one wins); empty if there are none or they cannot be read."""
    config_dir = os.environ.get("WANDB_CONFIG_DIR")
    system = (
        pathlib.Path(config_dir).expanduser() / "settings"
        if config_dir
        else pathlib.Path("~", ".config", "wandb", "settings").expanduser()
    )
    root = pathlib.Path(os.environ.get("WANDB_DIR") or os.getcwd()).expanduser()
    parser = configparser.ConfigParser()
    try:
        parser.read([system, root / "wandb" / "settings"])
    except (OSError, configparser.Error):
        return {}
    return dict(parser["default"]) if parser.has_section("default") else {}


def _netrc_path() -> pathlib.Path | None:
    """The netrc file wandb reads: ``NETRC``, else ``~/.netrc`` or ``~/_netrc``
    if it exists; None if none does."""
    if from_env := os.environ.get("NETRC"):
        return pathlib.Path(from_env).expanduser()
    for name in (".netrc", "_netrc"):
        candidate = pathlib.Path("~", name).expanduser()
        if candidate.exists():
            return candidate
    return None


def _netrc_has(path: pathlib.Path, host: str) -> bool:
    """Whether the netrc file at ``path`` has a password for ``host``."""
    try:
        entry = netrc.netrc(os.fspath(path)).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return False
    return entry is not None and bool(entry[2])
