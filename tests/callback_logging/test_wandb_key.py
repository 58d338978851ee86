"""WandbBackend online checks at construction, without network, that an API
key is configured, and says how to log in or go offline; offline and disabled
backends check nothing."""

import re
import socket
from pathlib import Path
from typing import Literal

import pytest

from lerax.callback.logging import WandbBackend

pytest.importorskip("wandb", reason="wandb is the optional lerax[wandb] extra")

HINT = (
    "so wandb would fail only once training has started. Log in once with "
    "`wandb login` (or set WANDB_API_KEY), or pass mode='offline' to log locally "
    "(upload later with `wandb sync`) or mode='disabled' to log nothing."
)


@pytest.fixture(autouse=True)
def bare_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No W&B credentials or settings anywhere, and no network: HOME and the
    working directory are an empty temporary directory."""
    for name in (
        "WANDB_API_KEY",
        "WANDB_IDENTITY_TOKEN_FILE",
        "WANDB_MODE",
        "WANDB_BASE_URL",
        "WANDB_CONFIG_DIR",
        "WANDB_DIR",
        "NETRC",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the API key check must not use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return tmp_path


def test_online_without_a_key_says_how_to_log_in() -> None:
    with pytest.raises(ValueError) as info:
        WandbBackend(project="p", mode="online")
    assert str(info.value) == (
        "WandbBackend runs online (mode='online') but no W&B API key is "
        "configured: WANDB_API_KEY is not set and there is no ~/.netrc, " + HINT
    )


def test_default_mode_is_online_and_checked() -> None:
    with pytest.raises(
        ValueError,
        match=re.escape(
            "WandbBackend runs online (mode=None, and wandb's default is online) "
            "but no W&B API key is configured"
        ),
    ):
        WandbBackend(project="p")


def test_wandb_mode_online_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "online")
    with pytest.raises(
        ValueError,
        match=re.escape("(mode=None and WANDB_MODE='online') but no W&B API key"),
    ):
        WandbBackend(project="p")


def test_api_key_in_the_environment_is_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    WandbBackend(project="p", mode="online")


def test_netrc_entry_from_wandb_login_is_enough(bare_machine: Path) -> None:
    (bare_machine / ".netrc").write_text(
        "machine api.wandb.ai\n  login user\n  password " + "0" * 40 + "\n"
    )
    (bare_machine / ".netrc").chmod(0o600)
    WandbBackend(project="p", mode="online")


def test_netrc_without_the_wandb_host_is_refused(bare_machine: Path) -> None:
    netrc = bare_machine / ".netrc"
    netrc.write_text("machine example.com login user password secret\n")
    with pytest.raises(ValueError) as info:
        WandbBackend(project="p", mode="online")
    assert str(info.value) == (
        "WandbBackend runs online (mode='online') but no W&B API key is "
        f"configured: WANDB_API_KEY is not set and the netrc file {netrc} has no "
        "password for api.wandb.ai, " + HINT
    )


def test_netrc_variable_is_followed(
    bare_machine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = bare_machine / "creds" / "netrc"
    monkeypatch.setenv("NETRC", str(elsewhere))
    with pytest.raises(
        ValueError, match=re.escape(f"the netrc file {elsewhere} does not exist")
    ):
        WandbBackend(project="p", mode="online")
    elsewhere.parent.mkdir()
    elsewhere.write_text("machine api.wandb.ai login user password key\n")
    WandbBackend(project="p", mode="online")


def test_self_hosted_server_needs_its_own_entry(
    bare_machine: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.com")
    (bare_machine / ".netrc").write_text(
        "machine api.wandb.ai login user password key\n"
    )
    with pytest.raises(ValueError, match="has no password for wandb.example.com"):
        WandbBackend(project="p", mode="online")
    (bare_machine / ".netrc").write_text(
        "machine wandb.example.com login user password key\n"
    )
    WandbBackend(project="p", mode="online")


def test_wandb_settings_file_is_read(bare_machine: Path) -> None:
    """``wandb offline`` writes ``mode = offline`` into the workspace settings;
    an ``api_key`` there counts as a key."""
    workspace = bare_machine / "wandb" / "settings"
    workspace.parent.mkdir()
    workspace.write_text("[default]\nmode = offline\n")
    WandbBackend(project="p")
    with pytest.raises(ValueError, match=re.escape("(mode='online')")):
        WandbBackend(project="p", mode="online")  # the argument wins
    workspace.write_text("[default]\napi_key = " + "0" * 40 + "\n")
    WandbBackend(project="p", mode="online")


@pytest.mark.parametrize("mode", ["offline", "disabled"])
def test_offline_and_disabled_check_nothing(
    mode: Literal["offline", "disabled"],
) -> None:
    backend = WandbBackend(project="p", mode=mode)
    assert backend.mode == mode


def test_wandb_mode_offline_checks_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    WandbBackend(project="p")
