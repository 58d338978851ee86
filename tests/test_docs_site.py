"""docs/running-fast.md's statement about JAX's persistent compilation cache,
checked on the installed JAX: a program without a host callback is stored by
every version, one with a host callback only by JAX 0.11 and later.

(`make docs` builds the site itself; this file does not.)
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import jax

# Each program is compiled in a fresh process; the cache is written (or not)
# when it is compiled, read when a later process compiles it again.
SCRIPT = """
import logging
import sys

import jax
import jax.numpy as jnp
from jax.experimental import io_callback

jax.config.update("jax_compilation_cache_dir", sys.argv[1])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
logging.basicConfig(stream=sys.stderr, format="%(message)s")
logging.getLogger("jax._src.compiler").setLevel(logging.DEBUG)


def host(tag):
    def call(x):
        print("called", tag, flush=True)
        return x

    return call


def shape(x):
    return jax.ShapeDtypeStruct(x.shape, x.dtype)


@jax.jit
def no_callback(x):
    return (2.0 * x + 1.0).sum()


@jax.jit
def with_io_callback(x):
    return (2.0 * io_callback(host("io"), shape(x), x) + 1.0).sum()


@jax.jit
def with_ordered_io_callback(x):
    y = io_callback(host("ordered"), shape(x), x, ordered=True)
    return (2.0 * y + 1.0).sum()


@jax.jit
def with_debug_callback(x):
    jax.debug.callback(host("debug"), x)
    return (2.0 * x + 1.0).sum()


x = jnp.arange(4.0)
for f in (no_callback, with_io_callback, with_ordered_io_callback, with_debug_callback):
    assert float(f(x)) == 16.0
"""

PROGRAMS = (
    "no_callback",
    "with_io_callback",
    "with_ordered_io_callback",
    "with_debug_callback",
)
CALLBACK_TAGS = ("io", "ordered", "debug")


def _jax_version() -> tuple[int, int]:
    major, minor = re.findall(r"\d+", jax.__version__)[:2]
    return int(major), int(minor)


def _run(cache: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env["JAX_PLATFORMS"] = "cpu"
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, str(cache)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )


def _stored(cache: Path) -> set[str]:
    """The programs of PROGRAMS that have an entry in the cache directory."""
    names = {p.name for p in cache.iterdir()}
    return {f for f in PROGRAMS if any(n.startswith(f"jit_{f}-") for n in names)}


def _hits(stderr: str) -> set[str]:
    """The programs of PROGRAMS that were read from the cache, as JAX logs them."""
    found = re.findall(r"cache hit for '?jit_(\w+)'?", stderr, re.IGNORECASE)
    return set(found) & set(PROGRAMS)


def test_persistent_cache_stores_host_callbacks_from_jax_0_11(tmp_path: Path) -> None:
    cache = tmp_path / "jax-cache"
    cache.mkdir()
    stores_callbacks = _jax_version() >= (0, 11)
    expected = set(PROGRAMS) if stores_callbacks else {"no_callback"}

    first = _run(cache)
    assert _stored(cache) == expected, (jax.__version__, first.stderr[-3000:])
    assert _hits(first.stderr) == set()

    # A second process reads what the first stored, recompiles the rest and
    # still calls back to the host from a program it read from the cache.
    second = _run(cache)
    assert _stored(cache) == expected
    assert _hits(second.stderr) == expected, (jax.__version__, second.stderr[-3000:])
    for tag in CALLBACK_TAGS:
        assert f"called {tag}" in first.stdout
        assert f"called {tag}" in second.stdout, (tag, second.stdout)
