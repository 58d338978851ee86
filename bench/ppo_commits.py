"""Default ``PPO()`` on CartPole: steady and compile time of the Lerax on the
import path, for comparing two commits in alternating processes.

One process measures one commit: the wall time of
``jax.jit(train).lower(key).compile()`` (compile) and the median of 5
compiled calls (steady), ``2**16`` steps. Run it alternately for two source
trees (``PYTHONPATH=<tree>/src``) and compare medians over the processes::

    for i in 1 2 3 4 5 6 7 8; do
      PYTHONPATH=/tmp/old/src .venv/bin/python bench/ppo_commits.py old
      .venv/bin/python bench/ppo_commits.py new
    done

Prints one line: ``<label> compile_s steady_s``.
"""

import statistics
import sys
import time
from typing import Any

import equinox as eqx
import jax
import jax.random as jr

from lerax.algorithm import PPO
from lerax.env import CartPole
from lerax.policy import MLPActorCriticPolicy


def main() -> None:
    label = sys.argv[1] if len(sys.argv) > 1 else "lerax"
    env = CartPole()
    policy = MLPActorCriticPolicy(env, key=jr.key(0))
    algo = PPO()

    def train(key: jax.Array) -> Any:
        return eqx.filter(algo.learn(env, policy, 2**16, key=key), eqx.is_array)

    key = jr.key(1)
    t0 = time.perf_counter()
    compiled = jax.jit(train).lower(key).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(key))  # type: ignore[no-untyped-call]  # jax's untyped helper
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(key))  # type: ignore[no-untyped-call]  # jax's untyped helper
        times.append(time.perf_counter() - t0)
    print(f"{label} {compile_s:.3f} {statistics.median(times):.4f}")


if __name__ == "__main__":
    main()
