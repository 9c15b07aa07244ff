"""Families of forms: the kernels as users write them, with the exact values they
stand for (the sigmoid and softmax families, and a user's own function)."""

from . import sigmoid, softmax  # noqa: E402,F401  (the built-in families register themselves)
