"""Users' losses for the tests: written as users write them, not copied from the built-ins."""

import jax
import jax.numpy as jnp


def naive_bce(z, y):
    p = jax.nn.sigmoid(z)
    return -(y * jnp.log(p) + (1 - y) * jnp.log(1 - p))


def stable_bce(z, y):
    return jnp.maximum(z, 0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z)))


def focal(z, y, gamma=0.5):
    p = jax.nn.sigmoid(z)
    p_t = y * p + (1 - y) * (1 - p)
    return -((1 - p_t) ** gamma) * jnp.log(p_t)


def vector_out(z, y):
    return jnp.stack([z, y])


def branchy(z, y):
    if z > 0:
        return z
    return -z


def upcast(z, y):
    return jax.nn.softplus(z.astype(jnp.float32)) - y * z.astype(jnp.float32)


def ce_naive(logits, label):
    p = jnp.exp(logits) / jnp.sum(jnp.exp(logits))
    return -jnp.log(p[label])


NOT_A_FUNCTION = 3


def dtype_dependent(z, y):
    if z.dtype == jnp.float16:  # a different formula in one format: flagged
        return jnp.log1p(jnp.exp(z)) - y * z
    return jax.nn.softplus(z) - y * z


def with_lgamma(z, y):
    return jax.scipy.special.gammaln(1 + jnp.exp(z)) - y * z


def with_bessel(z, y):
    return jax.scipy.special.i1e(z) - y * z


def ce_take(logits, label):
    return -jnp.take_along_axis(jax.nn.log_softmax(logits), label[None], axis=0)[0]


def clipped_bce(z, y):
    p = jnp.clip(jax.nn.sigmoid(z), 1e-4, 1 - 1e-3)
    return -(y * jnp.log(p) + (1 - y) * jnp.log(1 - p))


def log_cosh(z, y):
    return jnp.log(jnp.cosh(z - y))


def optax_focal(z, y):
    import optax

    return optax.sigmoid_focal_loss(z, y)


def bce_clip(z, y):
    """BCE from probabilities clipped away from 0 and 1, as many codebases write it."""
    p = jnp.clip(jax.nn.sigmoid(z), 1e-7, 1 - 1e-7)
    return -(y * jnp.log(p) + (1 - y) * jnp.log(1 - p))


def focal_prob(z, y, gamma=2.0):
    """The focal loss from probabilities: (1 − p_t)^γ · −log p_t."""
    p = jax.nn.sigmoid(z)
    p_t = p * y + (1 - p) * (1 - y)
    return -((1 - p_t) ** gamma) * jnp.log(p_t)


def softplus_bce(z, y):
    """BCE on the logit with a hand-written softplus: log(1 + e^z) − y·z."""
    return jnp.log(1 + jnp.exp(z)) - y * z


def focal_neg(z, y, gamma=0.5):
    """The focal loss of the negative class, written by hand: p_t = 1 − σ(z)."""
    p_t = 1 - jax.nn.sigmoid(z)
    return -((1 - p_t) ** gamma) * jnp.log(p_t)


def eps_bce(z, y):
    """BCE from probabilities with an epsilon inside the logs."""
    p = jax.nn.sigmoid(z)
    return -(y * jnp.log(p + 1e-12) + (1 - y) * jnp.log(1 - p + 1e-12))


def bce_clip_wide(z, y):
    p = jnp.clip(jax.nn.sigmoid(z), 1e-3, 1 - 1e-3)  # in float16 the upper bound is 0.99902344
    return -(y * jnp.log(p) + (1 - y) * jnp.log(1 - p))


def where_div(z, y):
    """A where whose untaken branch divides by 0: the loss is fine, its gradient is
    0·∞ = NaN at every point (the cotangent 0 of the untaken branch times −1/0²)."""
    d = z - z
    r = jnp.where(z > 100.0, 1.0 / d, z)
    return r * r - y * z
