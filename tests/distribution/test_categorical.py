"""Categorical against hand-computed closed forms."""

import math
from collections.abc import Callable
from typing import TypeVar, cast

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from jaxtyping import Array, Float, Int, PRNGKeyArray, TypeCheckError

from lerax.distribution import Categorical

RAW = np.array([1.5, -0.3, 0.0, 2.2, -4.0], np.float32)

_T = TypeVar("_T")


def _grad(f: Callable[[_T], Float[Array, ""]]) -> Callable[[_T], _T]:
    """``jax.grad`` with the static type the untyped jax stub loses."""

    def g(x: _T) -> _T:
        return cast(_T, jax.grad(f)(x))

    return g


def _log_softmax64(raw: np.ndarray) -> np.ndarray:
    x = raw.astype(np.float64)
    m = float(np.max(x))
    return x - (m + math.log(float(np.sum(np.exp(x - m)))))


def _sampler(dist: Categorical) -> Callable[[PRNGKeyArray], Int[Array, ""]]:
    def sample(key: PRNGKeyArray) -> Int[Array, ""]:
        return dist.sample(key=key)

    return sample


def test_logits_are_normalised_and_shift_invariant() -> None:
    dist = Categorical(jnp.asarray(RAW))
    np.testing.assert_allclose(dist.logits, _log_softmax64(RAW), rtol=0, atol=1e-6)
    np.testing.assert_allclose(float(jnp.sum(dist.probs)), 1.0, atol=1e-6)
    shifted = Categorical(jnp.asarray(RAW + np.float32(100.0)))
    np.testing.assert_allclose(shifted.logits, dist.logits, atol=1e-5)


def test_log_prob_entropy_mode_closed_form() -> None:
    dist = Categorical(jnp.asarray(RAW))
    ref = _log_softmax64(RAW)
    for i in range(RAW.shape[0]):
        lp = dist.log_prob(jnp.array(i, jnp.int32))
        assert lp.shape == () and lp.dtype == jnp.float32
        np.testing.assert_allclose(float(lp), ref[i], atol=1e-6)
    entropy = -float(np.sum(np.exp(ref) * ref))
    np.testing.assert_allclose(float(dist.entropy()), entropy, rtol=1e-6)
    mode = dist.mode()
    assert mode.shape == () and mode.dtype == jnp.int32 and int(mode) == 3
    # The uniform distribution has the maximal entropy log(n).
    uniform = Categorical(jnp.zeros(7, jnp.float32))
    np.testing.assert_allclose(float(uniform.entropy()), math.log(7), rtol=1e-6)


def test_sample_frequencies() -> None:
    dist = Categorical(jnp.asarray(RAW))
    n = 20_000
    samples: Array = jax.vmap(_sampler(dist))(jr.split(jr.key(0), n))
    assert samples.shape == (n,) and samples.dtype == jnp.int32
    counts = np.bincount(np.asarray(samples), minlength=RAW.shape[0])
    assert counts.shape == RAW.shape
    p = np.exp(_log_softmax64(RAW))
    # Five standard errors of a binomial frequency.
    tol = 5.0 * np.sqrt(p * (1.0 - p) / n)
    np.testing.assert_array_less(np.abs(counts / n - p), tol)


def test_very_negative_and_masked_logits() -> None:
    raw = jnp.array([0.0, -1e30, -jnp.inf, 1.0, -3e38], jnp.float32)
    dist = Categorical(raw)
    assert not bool(jnp.any(jnp.isnan(dist.logits)))
    entropy = float(dist.entropy())
    p = 1.0 / (1.0 + math.e)  # the two live categories: logits 0 and 1
    expected = -(p * math.log(p) + (1 - p) * math.log(1 - p))
    np.testing.assert_allclose(entropy, expected, rtol=1e-6)
    assert float(dist.log_prob(jnp.array(2, jnp.int32))) == -math.inf
    assert float(dist.log_prob(jnp.array(1, jnp.int32))) < -1e29
    samples: Array = jax.vmap(_sampler(dist))(jr.split(jr.key(1), 2000))
    assert set(np.unique(np.asarray(samples)).tolist()) == {0, 3}
    # Only one live category: zero entropy, no NaN.
    one = Categorical(jnp.array([-jnp.inf, 2.0, -jnp.inf], jnp.float32))
    assert float(one.entropy()) == 0.0
    assert int(one.mode()) == 1
    # Gradients stay finite for very negative (finite) logits.
    finite = jnp.array([0.0, -1e30, 1.0, -1e4], jnp.float32)

    def loss(logits: Float[Array, " n"]) -> Float[Array, ""]:
        d = Categorical(logits)
        return d.entropy() + d.log_prob(jnp.array(0, jnp.int32))

    grad = _grad(loss)(finite)
    assert bool(jnp.all(jnp.isfinite(grad)))


def test_log_prob_gradient_is_onehot_minus_softmax() -> None:
    def log_prob_of_1(logits: Float[Array, " n"]) -> Float[Array, ""]:
        return Categorical(logits).log_prob(jnp.array(1, jnp.int32))

    grad = _grad(log_prob_of_1)(jnp.asarray(RAW))
    expected = np.eye(RAW.shape[0])[1] - np.exp(_log_softmax64(RAW))
    np.testing.assert_allclose(grad, expected, atol=1e-6)


def test_jit_and_vmap_match_eager() -> None:
    batch = jr.normal(jr.key(2), (6, 4))
    actions = jnp.arange(6, dtype=jnp.int32) % 4
    keys = jr.split(jr.key(3), 6)

    def stats(
        logits: Float[Array, " n"], action: Int[Array, ""], key: jax.Array
    ) -> tuple[Int[Array, ""], Float[Array, ""], Float[Array, ""], Int[Array, ""]]:
        d = Categorical(logits)
        return d.sample(key=key), d.log_prob(action), d.entropy(), d.mode()

    eager = [stats(batch[i], actions[i], keys[i]) for i in range(6)]
    vmapped = jax.vmap(stats)(batch, actions, keys)
    jitted = eqx.filter_jit(stats)
    for i in range(6):
        once = jitted(batch[i], actions[i], keys[i])
        for e, v, j in zip(eager[i], vmapped, once, strict=True):
            np.testing.assert_allclose(v[i], e, rtol=1e-6)
            np.testing.assert_allclose(j, e, rtol=1e-6)


def test_checker_rejects_bad_logits() -> None:
    with pytest.raises(TypeCheckError):
        Categorical(jnp.zeros((2, 3), jnp.float32))
    with pytest.raises(TypeCheckError):
        Categorical(jnp.zeros(3, jnp.int32))
