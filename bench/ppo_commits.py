"""Default ``PPO()`` on CartPole: steady and compile time of the Lerax on the
import path, for comparing two commits in alternating processes.

One process measures one commit: the wall and CPU time of
``jax.jit(train).lower(key).compile()`` (compile; the minimum of three
compilations, ``jax.clear_caches()`` before each, so that one slow moment of
the machine does not decide it) and the median of 5 compiled calls (steady),
``2**16`` steps. Run it alternately for two source
trees (``PYTHONPATH=<tree>/src``) and compare medians over the processes::

    for i in 1 2 3 4 5 6 7 8; do
      PYTHONPATH=/tmp/old/src .venv/bin/python bench/ppo_commits.py old
      .venv/bin/python bench/ppo_commits.py new
    done

Prints one line: ``<label> compile_s steady_s compile_cpu_s``.
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
    walls, cpus = [], []
    for _ in range(3):
        jax.clear_caches()  # type: ignore[no-untyped-call]  # jax leaves clear_caches unannotated
        t0, c0 = time.perf_counter(), time.process_time()
        compiled = jax.jit(train).lower(key).compile()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    jax.block_until_ready(compiled(key))  # type: ignore[no-untyped-call]  # jax's untyped helper
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(key))  # type: ignore[no-untyped-call]  # jax's untyped helper
        times.append(time.perf_counter() - t0)
    print(f"{label} {min(walls):.3f} {statistics.median(times):.4f} {min(cpus):.3f}")


if __name__ == "__main__":
    main()
