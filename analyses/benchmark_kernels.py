"""Benchmark: time per joint step of each kernel against the bare prior-network work it needs.

Not a test. For y = 0.5 x + 0.5 n on 28 x 28 x 1 images with two score-network priors (random
weights, timing only; by default a channel-last conv net of 3 layers x 16 channels with a time
embedding, ``--width``/``--layers``; ``--network unet`` for bayesnoise's U-Net, far slower),
this prints for every kernel, number of chains and driver mode

- **step ms**: one joint step of ``num_chains`` trajectories: the jitted, vmapped step that
  :func:`bayesnoise.sample` runs, built by ``bayesnoise.inference._runner`` itself, called once
  per step from Python (``loop``) or as one ``lax.scan`` over all steps (``scan``; ``sample``
  scans chunks of ``num_steps // 10`` steps: the same per-step cost, a few more dispatches);
- **bare ms**: the prior-network evaluations that step needs, and nothing else, jitted and
  vmapped over the same trajectories and driven the same way;
- **ratio** = step / bare: the kernel's overhead over its network work (the goal is <= 1.10).

What the step needs, per step and prior (the two priors' networks are evaluated together, as
one pytree, in the bare program as in the kernels):

==========================  ================================================================
kernel                      network evaluations per step and prior
==========================  ================================================================
pigdm (tweedie covariance)  1 forward (linearised) + m JVPs + 1 VJP, m = CG matrix-vector
                            products of that step (each is one JVP through the network)
pigdm-scalar                1 forward + 1 VJP (the CG only touches the linear operators)
predictor_corrector         2 x (1 forward + m JVPs + 1 VJP): corrector and predictor both
                            use the tweedie PiGDM score (corrector_steps=1)
annealed_langevin           1 forward + m JVPs + 1 VJP (steps_per_level=1, not the default 5,
                            so that one step is one score evaluation like the others)
dps                         1 forward + 1 VJP (gradient of the residual norm)
data_consistency            1 forward (the likelihood gradient does not touch the networks)
projection                  1 forward (the pseudo-inverse CG does not touch the networks)
==========================  ================================================================

m is data dependent, and a vmapped ``while_loop`` runs until its slowest trajectory has
converged. It is measured, not guessed: before timing, one trajectory per tweedie kernel and
chain count runs with ``bayesnoise.guidance.cg`` replaced by ``jax.scipy.sparse.linalg.cg``
whose matrix-vector product reports each call to the host. The bare program then applies that
many chained JVPs in each step: one to a zero vector (jax's CG forms b - A(0)), the others in
a ``fori_loop``. The CG's vector arithmetic, the time and key handling, the noise draws and the
NaN guard are kernel overhead and count in the numerator only. With random weights m is not
what a trained network gives; the ratio, not m, is the point.

``convs`` counts the ``convolution`` instructions of the compiled kernel program and of its
bare program (a loop body counted once): more in the kernel would mean network passes that XLA
did not deduplicate. Times are the best of up to ``--repeats`` trajectories, kernel and bare
alternating so that both see the same load (fewer once they took ``--max-seconds``; a cheap
first pair is dropped as a warm-up): on a shared machine noise only adds time.

Run (about 6 minutes at load average 4-5 on 2 shared CPU cores, 40 % of it compiling)::

    python analyses/benchmark_kernels.py --chains 1 8 64 --steps 10 --json benchmark.json
    python analyses/benchmark_kernels.py --quick     # smoke run: 8 chains, 5 steps, ~2 minutes
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import math
import os
import platform
import re
import sys
import time as wallclock
import warnings
from typing import NamedTuple
from unittest import mock

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.sparse.linalg import cg as jax_cg

import bayesnoise.guidance
from bayesnoise.inference import _initial_positions, _runner, _split_options
from bayesnoise.kernels import SAMPLERS
from bayesnoise.model import joint_model
from bayesnoise.nets import Conv2d, SinusoidalEmbedding, build_network
from bayesnoise.operators import Scale
from bayesnoise.priors import ScoreNetPrior
from bayesnoise.sde import VPSDE, time_grid
from bayesnoise.target import posterior_target

IMAGE_SHAPE = (28, 28, 1)
MODES = ("loop", "scan")
STEP_SIZES = {"x": 0.5, "n": 0.5}


class Row(NamedTuple):
    """One line of the table: a sampler, its options, and the network work one step needs."""

    sampler: str
    options: dict
    plan: tuple[str, ...]  # per step, in order: "forward", "forward+vjp" or "tweedie"


ROWS = {
    "pigdm": Row("pigdm", {}, ("tweedie",)),
    "pigdm-scalar": Row("pigdm", {"covariance": "scalar"}, ("forward+vjp",)),
    "predictor_corrector": Row("predictor_corrector", {"corrector_steps": 1}, ("tweedie",) * 2),
    "annealed_langevin": Row("annealed_langevin", {"steps_per_level": 1}, ("tweedie",)),
    "dps": Row("dps", {"step_sizes": STEP_SIZES}, ("forward+vjp",)),
    "data_consistency": Row("data_consistency", {"step_sizes": STEP_SIZES}, ("forward",)),
    "projection": Row("projection", {"step_sizes": STEP_SIZES}, ("forward",)),
}
PLAN_TEXT = {"forward": "f", "forward+vjp": "f+vjp", "tweedie": "f+m·jvp+vjp"}


# --------------------------------------------------------------------------- the problem


class SmallScoreNet(eqx.Module):
    """A small channel-last conv net ``net(x, t)``: conv layers, the time embedding added.

    ``num_layers`` 3 x 3 convolutions (1 -> width -> ... -> width -> 1) with SiLU between them
    and a projection of a sinusoidal time embedding added after the first one.
    """

    embedding: SinusoidalEmbedding
    time_projection: eqx.nn.Linear
    convolutions: list[Conv2d]

    def __init__(self, width: int = 16, num_layers: int = 3, *, key):
        keys = jax.random.split(key, num_layers + 1)
        sizes = [IMAGE_SHAPE[-1]] + [width] * (num_layers - 1) + [IMAGE_SHAPE[-1]]
        self.embedding = SinusoidalEmbedding(32)
        self.time_projection = eqx.nn.Linear(32, width, key=keys[0])
        self.convolutions = [
            Conv2d(c_in, c_out, 3, key=k)
            for c_in, c_out, k in zip(sizes[:-1], sizes[1:], keys[1:], strict=True)
        ]

    def __call__(self, x, t):
        h = self.convolutions[0](x) + self.time_projection(self.embedding(t))
        for convolution in self.convolutions[1:]:
            h = convolution(jax.nn.silu(h))
        return h


def make_network(kind: str, width: int, num_layers: int, key):
    """The prior network: the small conv net above, or bayesnoise's U-Net at its smallest."""
    if kind == "conv":
        return SmallScoreNet(width, num_layers, key=key)
    network_key, output_key = jax.random.split(key)
    network = build_network(
        "unet",
        {"channels": [width], "num_res_blocks": 1, "embedding_dim": 32, "groups": 8},
        key=network_key,
    )
    # The U-Net's last convolution starts at zero (score 0); give it weights so that the
    # Jacobians, and hence the CG, are not trivial.
    weight = network.conv_out.weight
    random_weight = jax.random.normal(output_key, weight.shape) / math.sqrt(weight[..., 0].size)
    return eqx.tree_at(lambda n: n.conv_out.weight, network, random_weight)


class Problem(NamedTuple):
    target: object
    priors: dict
    observations: jax.Array


def build_problem(network_kind: str, width: int, num_layers: int, seed: int = 0) -> Problem:
    """y = 0.5 x + 0.5 n + N(0, 0.01^2) with two score-network priors under a VP SDE."""
    signal_key, noise_key, data_key = jax.random.split(jax.random.key(seed), 3)
    sde = VPSDE()
    priors = {
        name: ScoreNetPrior(
            network=make_network(network_kind, width, num_layers, key), sde=sde, shape=IMAGE_SHAPE
        )
        for name, key in [("x", signal_key), ("n", noise_key)]
    }
    model = joint_model(
        priors["x"],
        priors["n"],
        signal_operator=Scale(IMAGE_SHAPE, 0.5),
        noise_operator=Scale(IMAGE_SHAPE, 0.5),
        measurement_std=0.01,
    )
    observations = jax.random.uniform(data_key, (1, *IMAGE_SHAPE))
    return Problem(posterior_target(model), priors, observations)


# --------------------------------------------------------------------------- the kernel step


def _driver_setup(problem: Problem, row: Row, num_chains: int, num_steps: int):
    """What :func:`bayesnoise.sample` builds before its loop (start_time = 1)."""
    grid = time_grid(num_steps, 1.0)
    options = {"time_step": float(grid[0] - grid[1]), "start_time": 1.0, **row.options}
    traced_options, static_options = _split_options(options)
    algorithm = SAMPLERS[row.sampler].as_top_level_api(
        problem.target, problem.observations[0], **traced_options, **dict(static_options)
    )
    init_key, step_key = jax.random.split(jax.random.key(0))
    positions = _initial_positions(problem.target, init_key, problem.observations, num_chains, 1.0)

    def fresh():  # the step donates its states, so every run starts from a copy
        states = jax.vmap(jax.vmap(algorithm.init))(jax.tree.map(jnp.copy, positions))
        diverged = jnp.zeros((problem.observations.shape[0], num_chains), dtype=bool)
        return states, diverged

    return traced_options, static_options, grid, step_key, fresh


def best_of_pairs(run_step, run_bare, repeats: int, max_seconds: float) -> tuple[float, float]:
    """The fastest of up to ``repeats`` alternating runs of each; fewer once they took long.

    Alternating the two makes them see the same load from other processes; the minimum is
    the run least disturbed by it (the noise of a shared machine only ever adds time). The
    first pair, a program's first execution, is dropped as a warm-up when it was cheap.
    """
    step_seconds, bare_seconds = [run_step()], [run_bare()]
    if step_seconds[0] + bare_seconds[0] < 0.1 * max_seconds:
        step_seconds, bare_seconds = [], []
    while not step_seconds or (
        len(step_seconds) < repeats and sum(step_seconds) + sum(bare_seconds) < max_seconds
    ):
        step_seconds.append(run_step())
        bare_seconds.append(run_bare())
    return min(step_seconds), min(bare_seconds)


def _count_convolutions(compiled) -> int:
    return len(re.findall(r"\bconvolution\(", compiled.as_text()))


def prepare_step(problem, row, num_chains, num_steps, mode):
    """The driver's compiled step: a function timing one trajectory, compile seconds, convs."""
    traced, static, grid, step_key, fresh = _driver_setup(problem, row, num_chains, num_steps)
    length = 1 if mode == "loop" else num_steps
    states, diverged = fresh()
    first = jnp.asarray(0)
    started = wallclock.perf_counter()
    advance = (
        _runner(problem.target, row.sampler, static, length)
        .lower(states, diverged, step_key, first, problem.observations, traced, grid)
        .compile()
    )
    compile_seconds = wallclock.perf_counter() - started

    def run():
        states, diverged = jax.block_until_ready(fresh())
        residual_traces = []
        started = wallclock.perf_counter()
        for first in range(0, num_steps, length):  # as in bayesnoise.sample
            (states, diverged), residuals = advance(
                states, diverged, step_key, jnp.asarray(first), problem.observations, traced, grid
            )
            residual_traces.append(residuals)
        jax.block_until_ready(states.position)
        return wallclock.perf_counter() - started

    return run, compile_seconds, _count_convolutions(advance)


def count_matvecs(problem, row, num_chains, num_steps):
    """CG matrix-vector products per step and tweedie call: shape (num_steps, calls).

    Runs one loop-mode trajectory with ``bayesnoise.guidance.cg`` swapped for
    ``jax.scipy.sparse.linalg.cg`` whose matvec reports to the host. Under vmap the loop body,
    and so the report, runs once per iteration of the slowest trajectory.
    """
    num_calls = row.plan.count("tweedie")
    traced, static, grid, step_key, fresh = _driver_setup(problem, row, num_chains, num_steps)
    site_numbers = itertools.count()
    reports = []

    def reporting_cg(matvec, b, **kwargs):
        site = next(site_numbers)  # at trace time: which guidance call of the step this is

        def reporting_matvec(v):
            jax.debug.callback(lambda: reports.append(site))
            return matvec(v)

        return jax_cg(reporting_matvec, b, **kwargs)

    states, diverged = fresh()
    with mock.patch.object(bayesnoise.guidance, "cg", reporting_cg):
        # a fresh jit (not the cached one the timing uses) traced with the reporting CG
        advance = _runner.__wrapped__(problem.target, row.sampler, static, 1)
        advance = advance.lower(
            states, diverged, step_key, jnp.asarray(0), problem.observations, traced, grid
        ).compile()
    if next(site_numbers) != num_calls:
        raise RuntimeError(f"{row} made a different number of CG solves than its plan says.")
    counts = np.zeros((num_steps, num_calls), dtype=np.int32)
    for step in range(num_steps):
        reports.clear()
        (states, diverged), _ = advance(
            states, diverged, step_key, jnp.asarray(step), problem.observations, traced, grid
        )
        jax.block_until_ready(states)
        jax.effects_barrier()
        for site, count in collections.Counter(reports).items():
            counts[step, site] = count
    return counts


# --------------------------------------------------------------------------- the bare work


def _bare_step(priors, plan):
    """One trajectory's network work for one step; both priors are evaluated as one pytree."""

    def score_fn(time):
        return lambda position: {name: priors[name].score(position[name], time) for name in priors}

    def step(position, time, matvecs):
        scores = score_fn(time)
        tweedie_calls = 0
        for kind in plan:
            if kind == "forward":
                output = scores(position)
            elif kind == "forward+vjp":
                output, pullback = jax.vjp(scores, position)
                (output,) = pullback(output)
            else:
                output, jvp = jax.linearize(scores, position)
                # as jax's CG: one product with its zero start (XLA folds the first layers),
                # then one per iteration
                start = jvp(jax.tree.map(jnp.zeros_like, position))
                output = jax.lax.fori_loop(
                    1, matvecs[tweedie_calls], lambda _, v, jvp=jvp: jvp(v), output
                )
                output = jax.tree.map(jnp.add, output, start)
                (output,) = jax.linear_transpose(jvp, position)(output)
                tweedie_calls += 1
            # the next evaluation depends on this one (no CSE), and values stay bounded
            position = jax.tree.map(lambda p, o: p + 1e-3 * jnp.tanh(o), position, output)
        return position

    over_trajectories = jax.vmap(step, in_axes=(0, None, None))
    return jax.vmap(over_trajectories, in_axes=(0, None, None))


def _bare_program(problem, plan, num_chains, num_steps, mode):
    """The compiled bare program; kept, since rows with the same plan share it."""
    key = (plan, num_chains, num_steps, mode)
    if key not in _BARE_PROGRAMS:
        bare_step = _bare_step(problem.priors, plan)
        positions = _initial_positions(
            problem.target, jax.random.key(0), problem.observations, num_chains, 1.0
        )
        times = np.asarray(time_grid(num_steps, 1.0)[:-1])
        matvecs = np.zeros((num_steps, plan.count("tweedie")), dtype=np.int32)
        if mode == "loop":
            advance, arguments = bare_step, (positions, times[0], matvecs[0])
        else:

            def advance(position, times, matvecs):
                def body(position, inputs):
                    return bare_step(position, *inputs), None

                return jax.lax.scan(body, position, (times, matvecs))[0]

            arguments = (positions, times, matvecs)
        compiled = jax.jit(advance, donate_argnums=0).lower(*arguments).compile()
        _BARE_PROGRAMS[key] = (compiled, positions, times)
    return _BARE_PROGRAMS[key]


_BARE_PROGRAMS: dict = {}


def prepare_bare(problem, plan, matvecs, num_chains, num_steps, mode):
    """The bare network work driven like the step: a function timing one trajectory, convs."""
    compiled, positions, times = _bare_program(problem, plan, num_chains, num_steps, mode)
    # host arrays: the loop sends one time and one row of counts per call, as ``sample`` sends
    # the step index
    matvecs = np.asarray(matvecs, dtype=np.int32)

    def run():
        position = jax.block_until_ready(jax.tree.map(jnp.copy, positions))
        started = wallclock.perf_counter()
        if mode == "loop":
            for step in range(num_steps):
                position = compiled(position, times[step], matvecs[step])
        else:
            position = compiled(position, times, matvecs)
        jax.block_until_ready(position)
        return wallclock.perf_counter() - started

    return run, _count_convolutions(compiled)


# --------------------------------------------------------------------------- the table


HEADER = (
    f"{'kernel':<20} {'chains':>6} {'mode':<4} {'step ms':>9} {'bare ms':>9} {'ratio':>6}"
    f"  {'m/step':>6} {'convs k/b':>9} {'compile s':>9}  bare = per prior"
)


def format_record(record: dict) -> str:
    matvecs = "" if record["matvecs_per_step"] is None else f"{record['matvecs_per_step']:.1f}"
    return (
        f"{record['kernel']:<20} {record['chains']:>6} {record['mode']:<4} "
        f"{record['step_ms']:>9.2f} {record['bare_ms']:>9.2f} {record['ratio']:>6.2f}  "
        f"{matvecs:>6} {record['convolutions']:>9} {record['compile_s']:>9.1f}  "
        f"{record['bare']}"
    )


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chains", type=int, nargs="+", default=None, help="default 1 8 64")
    parser.add_argument("--steps", type=int, default=None, help="steps per trajectory (10)")
    parser.add_argument("--repeats", type=int, default=None, help="timed trajectories (3)")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=3.0,
        help="stop repeating a measurement once its trajectories took this long (3)",
    )
    parser.add_argument(
        "--kernels", nargs="+", choices=sorted(ROWS), default=None, help="default: all rows"
    )
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--network", choices=("conv", "unet"), default="conv")
    parser.add_argument("--width", type=int, default=16, help="channels of the network (16)")
    parser.add_argument("--layers", type=int, default=3, help="conv layers of the conv network (3)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 8 chains, 5 steps, 2 repeats"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the records as JSON")
    arguments = parser.parse_args(argv)
    quick = arguments.quick
    arguments.chains = arguments.chains or ([8] if quick else [1, 8, 64])
    arguments.steps = arguments.steps or (5 if quick else 10)
    arguments.repeats = arguments.repeats or (2 if quick else 3)
    arguments.kernels = arguments.kernels or list(ROWS)
    return arguments


def main(argv=None) -> list[dict]:
    arguments = parse_arguments(argv)
    missing = set(SAMPLERS) - {row.sampler for row in ROWS.values()}
    if missing:
        raise RuntimeError(f"kernels without a benchmark row: {sorted(missing)}; add them to ROWS.")
    # CPU buffers are donated where XLA can; it warns where it cannot.
    warnings.filterwarnings("ignore", message="Some donated buffers were not usable")
    started = wallclock.perf_counter()
    load_before = os.getloadavg()
    problem = build_problem(arguments.network, arguments.width, arguments.layers)
    print(
        f"jax {jax.__version__} on {jax.default_backend()} ({platform.processor() or 'cpu'}, "
        f"{os.cpu_count()} cores, load {load_before[0]:.1f}); {arguments.network} network "
        f"width {arguments.width}; {arguments.steps} steps from t=1; best of up to "
        f"{arguments.repeats} alternating step/bare trajectories (fewer once they take "
        f"{arguments.max_seconds:g} s); y = 0.5 x + 0.5 n on {IMAGE_SHAPE}",
        flush=True,
    )
    print(HEADER, flush=True)
    records = []
    for name in arguments.kernels:
        row = ROWS[name]
        for num_chains in arguments.chains:
            if "tweedie" in row.plan:
                matvecs = count_matvecs(problem, row, num_chains, arguments.steps)
            else:
                matvecs = np.zeros((arguments.steps, 0), dtype=np.int32)
            for mode in arguments.modes:
                run_step, compile_step, step_convs = prepare_step(
                    problem, row, num_chains, arguments.steps, mode
                )
                run_bare, bare_convs = prepare_bare(
                    problem, row.plan, matvecs, num_chains, arguments.steps, mode
                )
                step, bare = best_of_pairs(
                    run_step, run_bare, arguments.repeats, arguments.max_seconds
                )
                step, bare = step / arguments.steps, bare / arguments.steps
                record = {
                    "kernel": name,
                    "sampler": row.sampler,
                    "options": row.options,
                    "chains": num_chains,
                    "mode": mode,
                    "step_ms": 1e3 * step,
                    "bare_ms": 1e3 * bare,
                    "ratio": step / bare,
                    "matvecs_per_step": (
                        float(matvecs.sum(axis=1).mean()) if matvecs.size else None
                    ),
                    "convolutions": f"{step_convs}/{bare_convs}",
                    "compile_s": compile_step,
                    "bare": " + ".join(PLAN_TEXT[kind] for kind in row.plan),
                }
                records.append(record)
                print(format_record(record), flush=True)
    elapsed = wallclock.perf_counter() - started
    compiling = sum(record["compile_s"] for record in records)
    print(
        f"total {elapsed:.0f} s (compiling the kernel steps {compiling:.0f} s); "
        f"load average {load_before[0]:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    if arguments.json:
        with open(arguments.json, "w") as file:
            json.dump(
                {
                    "jax": jax.__version__,
                    "backend": jax.default_backend(),
                    "cpu_count": os.cpu_count(),
                    "load_average": [load_before[0], os.getloadavg()[0]],
                    "network": arguments.network,
                    "width": arguments.width,
                    "layers": arguments.layers,
                    "steps": arguments.steps,
                    "repeats": arguments.repeats,
                    "records": records,
                },
                file,
                indent=1,
            )
    return records


if __name__ == "__main__":
    main(sys.argv[1:])
