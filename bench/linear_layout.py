"""Lerax's ``(in, out)`` affine layer vs ``eqx.nn.Linear`` in a default ``PPO()``.

``MLPActorCriticPolicy`` stores each weight ``(in, out)`` and computes
``x @ W + b``; ``eqx.nn.Linear`` stores ``(out, in)`` and computes ``W @ x + b``.
This script builds the default policy, then a copy whose every layer is an
``eqx.nn.Linear`` holding the transposed weight (same numbers, so both train
the same function), and compares on CartPole with ``2**16`` steps:

- compile time: ``eqx.filter_jit(train).lower(...).compile()`` wall time,
  alternating the variants, each compile in a fresh jit wrapper;
- steady time: compiled calls interleaved A B B A ..., medians.

It also checks that both variants give the same parameters up to float
rounding (the products are summed in a different order).

Usage: .venv/bin/python bench/linear_layout.py [pairs]
"""

import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from lerax.algorithm import PPO
from lerax.env import CartPole
from lerax.policy import MLPActorCriticPolicy

TOTAL = 2**16
Policy = MLPActorCriticPolicy[Any]


def to_eqx_linear(policy: Policy) -> Policy:
    """The same policy with every affine layer an ``eqx.nn.Linear``."""

    def is_layer(x: object) -> bool:
        return (
            hasattr(x, "weight")
            and hasattr(x, "bias")
            and not isinstance(x, eqx.nn.Linear)
        )

    def convert(layer: Any) -> eqx.nn.Linear:
        weight, bias = layer.weight, layer.bias  # Lerax's private (in, out) layer
        linear = eqx.nn.Linear(weight.shape[0], weight.shape[1], key=jr.key(0))
        out: eqx.nn.Linear = eqx.tree_at(
            lambda m: (m.weight, m.bias), linear, (weight.T, bias)
        )
        return out

    converted: Policy = jax.tree.map(
        lambda x: convert(x) if is_layer(x) else x, policy, is_leaf=is_layer
    )
    return converted


def make_train(policy: Policy) -> Callable[[jax.Array], Any]:
    """The training call, returning the trained policy's arrays."""
    env = CartPole()
    algo = PPO()

    def train(key: jax.Array) -> Any:
        trained = algo.learn(env, policy, total_timesteps=TOTAL, key=key)
        return eqx.filter(trained, eqx.is_array)

    return train


def block(tree: object) -> None:
    for leaf in jax.tree.leaves(tree):
        if isinstance(leaf, jax.Array):
            leaf.block_until_ready()


def init_times() -> tuple[dict[str, float], dict[str, float]]:
    """Build the default policy's layers both ways: Lerax's batched orthogonal
    init vs one ``jax.nn.initializers.orthogonal`` per ``eqx.nn.Linear``."""
    shapes = ((64, 4), (64, 64), (64, 4), (64, 64), (2, 64), (1, 64))
    gains = (2**0.5,) * 4 + (0.01, 1.0)

    def lerax_init(key: jax.Array) -> object:
        return MLPActorCriticPolicy(CartPole(), key=key)

    def eqx_init(key: jax.Array) -> object:
        keys = jr.split(key, len(shapes))
        layers = []
        for k, (out, inp), g in zip(keys, shapes, gains, strict=True):
            linear = eqx.nn.Linear(inp, out, key=k)
            w = jax.nn.initializers.orthogonal(scale=g)(k, (out, inp), jnp.float32)
            layers.append(
                eqx.tree_at(lambda m: (m.weight, m.bias), linear, (w, jnp.zeros(out)))
            )
        return layers

    first: dict[str, float] = {}
    steady: dict[str, float] = {}
    for name, fn in (
        ("lerax batched orthogonal (policy init)", lerax_init),
        ("eqx.nn.Linear + nn.initializers.orthogonal", eqx_init),
    ):
        jitted = eqx.filter_jit(fn)
        t0 = time.perf_counter()
        block(jitted(jr.key(5)))
        first[name] = time.perf_counter() - t0
        times = []
        for i in range(20):
            t0 = time.perf_counter()
            block(jitted(jr.key(6 + i)))
            times.append(time.perf_counter() - t0)
        steady[name] = statistics.median(times)
    return first, steady


def main() -> None:
    pairs = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    env = CartPole()
    base = MLPActorCriticPolicy(env, key=jr.key(1))
    variants = {"lerax (in,out)": base, "eqx.nn.Linear": to_eqx_linear(base)}
    key = jr.key(2)

    compile_s: dict[str, list[float]] = {name: [] for name in variants}
    compiled = {}
    for r in range(3):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in order:
            fn = jax.jit(make_train(variants[name]))
            t0 = time.perf_counter()
            compiled[name] = fn.lower(key).compile()
            compile_s[name].append(time.perf_counter() - t0)

    # Equivalence after one iteration (longer runs diverge chaotically from
    # rounding differences).
    one = PPO().steps_per_iteration
    results = {
        name: PPO().learn(env, variants[name], total_timesteps=one, key=key)
        for name in variants
    }
    leaves_a = jax.tree.leaves(
        eqx.filter(to_eqx_linear(results["lerax (in,out)"]), eqx.is_array)
    )
    leaves_b = jax.tree.leaves(eqx.filter(results["eqx.nn.Linear"], eqx.is_array))
    worst = max(
        float(jnp.max(jnp.abs(a - b))) for a, b in zip(leaves_a, leaves_b, strict=True)
    )

    steady: dict[str, list[float]] = {name: [] for name in variants}
    for name in variants:  # warm-up
        block(compiled[name](key))
    names = list(variants)
    for i in range(pairs):
        order = names if i % 2 == 0 else list(reversed(names))
        for name in order:
            t0 = time.perf_counter()
            block(compiled[name](key))
            steady[name].append(time.perf_counter() - t0)

    print(f"jax {jax.__version__}, equinox {eqx.__version__}, numpy {np.__version__}")
    print(f"PPO() on CartPole, {TOTAL} steps, {pairs} interleaved pairs")
    print(f"largest parameter difference after one iteration: {worst:.2e}")
    init_first, init_steady = init_times()
    print(
        "initialisation of the default policy's 6 layers (jitted, first call incl. "
        "compile / steady):"
    )
    for name in init_first:
        print(
            f"  {name:<40} {init_first[name]:.3f} s / {init_steady[name] * 1e3:.2f} ms"
        )
    ref = names[0]
    print(
        f"{'variant':<16} {'compile s (median of 3)':>24} {'steady s (median)':>18} "
        f"{'steady ratio':>13} {'compile ratio':>14}"
    )
    for name in names:
        c = statistics.median(compile_s[name])
        s = statistics.median(steady[name])
        print(
            f"{name:<16} {c:>24.2f} {s:>18.3f} "
            f"{s / statistics.median(steady[ref]):>13.3f} "
            f"{c / statistics.median(compile_s[ref]):>14.3f}"
        )
    paired = [b / a for a, b in zip(steady[names[0]], steady[names[1]], strict=True)]
    print(
        f"paired steady ratios eqx/lerax: min {min(paired):.3f} "
        f"median {statistics.median(paired):.3f} max {max(paired):.3f}"
    )


if __name__ == "__main__":
    main()
