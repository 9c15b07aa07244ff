"""Families of forms: the kernels as users write them, with the exact values they
stand for (the sigmoid and softmax families, and a user's own function)."""
