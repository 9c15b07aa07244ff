"""A user's loss of about 30 operations (value and gradient), for scripts/bench_sweep.py --check."""

import jax


def smoothed_focal(z, y, eps=0.1, gamma=2.0, zloss=1e-4):
    """Label-smoothed binary focal loss on a logit, with a z-loss penalty."""
    y_s = y * (1 - eps) + 0.5 * eps
    p = jax.nn.sigmoid(z)
    ce = -(y_s * jax.nn.log_sigmoid(z) + (1 - y_s) * jax.nn.log_sigmoid(-z))
    p_t = y_s * p + (1 - y_s) * (1 - p)
    return (1 - p_t) ** gamma * ce + zloss * z * z
