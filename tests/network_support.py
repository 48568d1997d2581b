"""Shared by the network tests: one jitted network call."""

import equinox as eqx


@eqx.filter_jit
def apply(net, x, t):
    """One jitted call (eager calls of a network compile every primitive separately)."""
    return net(x, t)
