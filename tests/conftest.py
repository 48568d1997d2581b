"""Shared test configuration: 64-bit off, strict dtype promotion, a fixed-seed key."""

import jax
import pytest

jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def key():
    return jax.random.key(20260522)
