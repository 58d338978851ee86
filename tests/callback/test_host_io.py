"""Getting data out of the compiled program: public JAX only, records never
dropped whatever the user's transform, one run per vmapped member."""

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array

from lerax.algorithm import PPO
from lerax.callback import JSONLBackend, LoggingCallback
from lerax.env.classic_control import CartPole
from lerax.policy import MLPActorCriticPolicy

SRC = Path(__file__).resolve().parents[2] / "src" / "lerax"
ENV = CartPole()
POLICY = MLPActorCriticPolicy(env=ENV, key=jr.key(0))
ALGO = PPO(num_envs=2, num_steps=16, num_epochs=1, num_minibatches=1)
ITERATIONS = 3
TOTAL = ITERATIONS * ALGO.steps_per_iteration


def _rows(path: Path) -> list[tuple[int, int]]:
    """``(run, iteration)`` of every JSONL record, iteration by iteration.
    Records come in batches per run, each run's in order."""
    lines = path.read_text().splitlines()
    rows = [(r["run"], r["time/iteration"]) for r in map(json.loads, lines)]
    for run in {run for run, _ in rows}:
        mine = [it for r, it in rows if r == run]
        assert mine == sorted(mine), (run, mine)
    return sorted(rows, key=lambda row: (row[1], row[0]))


def _every(runs: int) -> list[tuple[int, int]]:
    return [(run, it) for it in range(1, ITERATIONS + 1) for run in range(runs)]


def test_source_uses_public_jax_only() -> None:
    forbidden = re.compile(r"jax\._src|\bjaxlib\b|jax\.interpreters|\bctypes\b")
    beyond_covered = re.compile(r"io_callback|custom_vmap|unvmap_any|unvmap_max")
    users: set[str] = set()
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        assert not forbidden.search(text), path
        if beyond_covered.search(text):
            users.add(path.relative_to(SRC).as_posix())
    assert users == {"_host.py"}


def test_every_record_is_written_when_the_user_jits_and_keeps_only_the_policy(
    tmp_path: Path,
) -> None:
    """XLA removes effect-free host calls whose results are dropped; Lerax's
    are effects, so all records arrive when only the policy leaves the
    program (jax.jit) or nothing does (eqx.filter_jit returning a constant)."""
    for name, wrap in (
        ("jit", lambda f: jax.jit(f)),
        ("filter_jit", lambda f: eqx.filter_jit(lambda k: (f(k), 0)[1])),
    ):
        path = tmp_path / f"{name}.jsonl"
        with LoggingCallback(JSONLBackend(path), log_every=1) as logger:

            def learn(key: Array, logger: LoggingCallback = logger) -> Any:
                return ALGO.learn(ENV, POLICY, TOTAL, key=key, callback=logger)

            wrap(learn)(jr.key(1))  # leaving the block waits for the program
        assert _rows(path) == _every(1), name


def test_filter_vmap_alone_gives_one_run_per_seed(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    with LoggingCallback(JSONLBackend(path), log_every=1) as logger:
        eqx.filter_vmap(
            lambda k: ALGO.learn(ENV, POLICY, TOTAL, key=k, callback=logger)
        )(jr.split(jr.key(2), 3))
    assert _rows(path) == _every(3)


def test_runs_are_told_apart_by_whatever_is_vmapped(tmp_path: Path) -> None:
    """The run index anchors on the key, the policy, the environment, the
    callback and the algorithm: vmapping any of them alone gives one run each."""
    gravities = jnp.array([9.8, 5.0, 1.6], jnp.float32)
    envs = eqx.filter_vmap(lambda g: eqx.tree_at(lambda e: e.gravity, ENV, g))(
        gravities
    )
    policies = eqx.filter_vmap(lambda k: MLPActorCriticPolicy(env=ENV, key=k))(
        jr.split(jr.key(3), 3)
    )
    key = jr.key(4)
    cases: dict[str, Callable[[LoggingCallback], object]] = {
        "env": lambda logger: eqx.filter_vmap(
            lambda e: ALGO.learn(e, POLICY, TOTAL, key=key, callback=logger)
        )(envs),
        "policy": lambda logger: eqx.filter_vmap(
            lambda p: ALGO.learn(ENV, p, TOTAL, key=key, callback=logger)
        )(policies),
    }
    for name, run in cases.items():
        path = tmp_path / f"{name}.jsonl"
        with LoggingCallback(JSONLBackend(path), log_every=1) as logger:
            run(logger)
        assert _rows(path) == _every(3), name
