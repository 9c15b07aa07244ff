"""Numerics: formats and their lattices, classification against exact values, and the
exact evaluator with its tiers. Nothing here knows of families, sweeps or output."""
