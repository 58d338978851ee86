"""Normal against hand-computed closed forms."""

import math
from collections.abc import Callable
from typing import TypeVar, cast

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Float, PRNGKeyArray, TypeCheckError

from lerax.distribution import Normal

MEAN = np.array([0.5, -2.0, 3.0], np.float32)
LOG_STD = np.array([0.0, -1.0, 0.7], np.float32)

_T = TypeVar("_T")


def _grad(f: Callable[[_T], Float[Array, ""]]) -> Callable[[_T], _T]:
    """``jax.grad`` with the static type the untyped jax stub loses."""

    def g(x: _T) -> _T:
        return cast(_T, jax.grad(f)(x))

    return g


def _normal() -> Normal:
    return Normal(jnp.asarray(MEAN), jnp.asarray(LOG_STD))


def test_log_prob_is_the_sum_of_univariate_log_densities() -> None:
    dist = _normal()
    x = np.array([0.1, -1.5, 5.0], np.float32)
    m, s = MEAN.astype(np.float64), np.exp(LOG_STD.astype(np.float64))
    pdf = np.exp(-0.5 * ((x - m) / s) ** 2) / (s * math.sqrt(2.0 * math.pi))
    lp = dist.log_prob(jnp.asarray(x))
    assert lp.shape == () and lp.dtype == jnp.float32
    np.testing.assert_allclose(float(lp), float(np.sum(np.log(pdf))), rtol=1e-6)
    # The density peaks at the mode: -sum(log_std) - n/2 log(2 pi).
    peak = -float(np.sum(LOG_STD)) - 1.5 * math.log(2.0 * math.pi)
    np.testing.assert_allclose(float(dist.log_prob(dist.mode())), peak, rtol=1e-6)


def test_entropy_and_mode() -> None:
    dist = _normal()
    s = np.exp(LOG_STD.astype(np.float64))
    expected = float(np.sum(0.5 * np.log(2.0 * math.pi * math.e * s**2)))
    ent = dist.entropy()
    assert ent.shape == ()
    np.testing.assert_allclose(float(ent), expected, rtol=1e-6)
    np.testing.assert_array_equal(dist.mode(), MEAN)
    np.testing.assert_allclose(dist.std, s, rtol=1e-6)


def test_sample_mean_and_std() -> None:
    dist = _normal()
    n = 20_000

    def sample(key: PRNGKeyArray) -> Float[Array, " n"]:
        return dist.sample(key=key)

    samples: Array = jax.vmap(sample)(jr.split(jr.key(0), n))
    assert samples.shape == (n, 3) and samples.dtype == jnp.float32
    s = np.exp(LOG_STD.astype(np.float64))
    x = np.asarray(samples, np.float64)
    np.testing.assert_array_less(np.abs(x.mean(0) - MEAN), 5.0 * s / math.sqrt(n))
    # The sample std has standard error about s / sqrt(2 n).
    np.testing.assert_array_less(np.abs(x.std(0) - s), 5.0 * s / math.sqrt(2 * n))
    # Components are independent.
    corr = np.corrcoef(x.T)
    np.testing.assert_array_less(np.abs(corr - np.eye(3)), 5.0 / math.sqrt(n))


def test_extreme_log_std_is_finite() -> None:
    dist = Normal(jnp.zeros(2, jnp.float32), jnp.array([-20.0, 10.0], jnp.float32))
    x = dist.sample(key=jr.key(4))
    values = jnp.stack([dist.log_prob(x), dist.entropy(), dist.log_prob(dist.mode())])
    assert bool(jnp.all(jnp.isfinite(values)))
    assert bool(jnp.all(jnp.isfinite(x)))


def test_log_prob_gradient_closed_form() -> None:
    x = jnp.array([0.1, -1.5, 5.0], jnp.float32)

    def lp(params: tuple[Float[Array, " n"], Float[Array, " n"]]) -> Float[Array, ""]:
        return Normal(*params).log_prob(x)

    g_mean, g_log_std = _grad(lp)((jnp.asarray(MEAN), jnp.asarray(LOG_STD)))
    z = (np.asarray(x, np.float64) - MEAN) / np.exp(LOG_STD.astype(np.float64))
    np.testing.assert_allclose(g_mean, z / np.exp(LOG_STD), rtol=1e-5)
    np.testing.assert_allclose(g_log_std, z**2 - 1.0, rtol=1e-5, atol=1e-6)


def test_jit_and_vmap_match_eager() -> None:
    means = jr.normal(jr.key(5), (5, 2))
    log_stds = 0.3 * jr.normal(jr.key(6), (5, 2))
    xs = jr.normal(jr.key(7), (5, 2))
    keys = jr.split(jr.key(8), 5)

    def stats(
        mean: Float[Array, " n"],
        log_std: Float[Array, " n"],
        x: Float[Array, " n"],
        key: jax.Array,
    ) -> tuple[Float[Array, " n"], Float[Array, ""], Float[Array, ""]]:
        d = Normal(mean, log_std)
        return d.sample(key=key), d.log_prob(x), d.entropy()

    vmapped = jax.vmap(stats)(means, log_stds, xs, keys)
    jitted = eqx.filter_jit(stats)
    for i in range(5):
        eager = stats(means[i], log_stds[i], xs[i], keys[i])
        once = jitted(means[i], log_stds[i], xs[i], keys[i])
        for e, v, j in zip(eager, vmapped, once, strict=True):
            np.testing.assert_allclose(v[i], e, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(j, e, rtol=1e-5, atol=1e-6)


def test_checker_rejects_mismatched_shapes() -> None:
    with pytest.raises(TypeCheckError):
        Normal(jnp.zeros(2, jnp.float32), jnp.zeros(3, jnp.float32))
    with pytest.raises(TypeCheckError):
        Normal(jnp.zeros((2, 2), jnp.float32), jnp.zeros((2, 2), jnp.float32))
