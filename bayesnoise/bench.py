"""``bayesnoise bench``: time the driver's jitted step against the bare network work it needs.

For each batch size B (B trajectories of one observation) this measures, in one run:

- the driver's real step: :func:`bayesnoise.inference._advance` with ``length=1``, advancing
  all B trajectories one step (``ms_per_step``, the median over ``num_steps`` calls after a
  warm-up call that compiles; ``compile_s`` is the first call minus a steady one);
- the bare network work of that step (``bare_ms``): per evaluation and prior, B forward passes
  of its score (vmapped), plus B VJPs when the guidance needs them, plus, for PiGDM with the
  Tweedie covariance, the m Jacobian-vector products of its CG (m measured in the same step);
  ``evaluations_per_step`` evaluations, jitted the same way (weights as arguments);
- ``overhead_ratio`` = ms_per_step / bare_ms (the goal: <= 1.10);
- ``flops_per_step`` from XLA's cost analysis of the compiled step and the ``gflops_per_s`` it
  achieves; on an accelerator also ``matmul_peak_fraction``, that rate over the rate of a large
  jitted matmul measured in the same run (``None`` on CPU).

Step and bare calls alternate, so both see the same load from other processes; medians keep a
shared machine's stray slow calls out.
"""

from __future__ import annotations

import functools
import json
import statistics
import time as wallclock
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from bayesnoise.inference import _advance, _Carry, _initial_positions
from bayesnoise.samplers.registry import get_sampler
from bayesnoise.sde import time_grid
from bayesnoise.target import posterior_target

__all__ = ["benchmark", "paper_model", "format_table", "DEFAULT_BATCHES"]

DEFAULT_BATCHES = (1, 4, 16, 64)
CLI_DEFAULTS = {"sampler": "pigdm", "num_steps": 500}
"""What ``bayesnoise sample`` uses where a model file's ``defaults`` say nothing."""

PAPER_SHAPE = (64, 64, 3)
PAPER_FEATURES = 64


class Problem(NamedTuple):
    """What is benchmarked: a model, one observation, and the defaults that apply."""

    name: str
    model: Any
    observation: np.ndarray | None
    defaults: dict
    num_steps_source: str


def paper_model(seed: int = 0):
    """The paper's configuration: y = 0.5 x + 0.5 n on 64 x 64 x 3, NCSNv2 priors, VP SDE.

    Both networks are :class:`~bayesnoise.nets.NCSNv2` with ``features=64`` in the paper's
    untimed form (score = net(x) / s_t) and random weights; the SDE is the paper's VP SDE
    (beta_min = 0.1, beta_max = 7).

    Returns
    -------
    The model and the parameter count of one network.
    """
    from bayesnoise.model import joint_model
    from bayesnoise.nets import NCSNv2, count_parameters
    from bayesnoise.operators import Scale
    from bayesnoise.priors import ScoreNetPrior
    from bayesnoise.sde import VPSDE

    sde = VPSDE(beta_min=0.1, beta_max=7.0)
    signal_key, noise_key = jax.random.split(jax.random.key(seed))
    priors = [
        ScoreNetPrior(
            network=NCSNv2(
                in_channels=PAPER_SHAPE[-1],
                features=PAPER_FEATURES,
                time_conditioned=False,
                key=key,
            ),
            sde=sde,
            shape=PAPER_SHAPE,
            time_conditioned=False,
        )
        for key in (signal_key, noise_key)
    ]
    mixing = Scale(PAPER_SHAPE, 0.5)
    model = joint_model(
        *priors, signal_operator=mixing, noise_operator=mixing, measurement_std=0.01
    )
    return model, count_parameters(priors[0].network)


def _load_problem(model_file: str | None, paper: bool) -> Problem:
    if paper:
        if model_file is not None:
            raise ValueError(
                f"--paper benchmarks its own model; give no model file. Got {model_file!r}."
            )
        model, num_parameters = paper_model()
        print(
            f"paper configuration: y = 0.5 x + 0.5 n on {PAPER_SHAPE}, two NCSNv2 "
            f"(features={PAPER_FEATURES}, untimed) with {num_parameters:,} parameters each, "
            "random weights, VP SDE (beta 0.1 to 7)"
        )
        return Problem("paper", model, None, dict(CLI_DEFAULTS), "the CLI's default")
    if model_file is None:
        raise ValueError("a model file is required (or --paper).")
    from bayesnoise.model_file import load_model_file

    module = load_model_file(model_file)
    file_defaults = getattr(module, "defaults", {})
    defaults = {**CLI_DEFAULTS, **file_defaults}
    source = "the model file's defaults" if "num_steps" in file_defaults else "the CLI's default"
    observation = module.simulate(0)[0] if hasattr(module, "simulate") else None
    return Problem(model_file, module.model, observation, defaults, source)


def _bare_network_work(priors, position, time, num_matvecs, *, plan):
    """One trajectory's network work for one step: ``plan`` is (evaluations, vjp, tweedie).

    Per evaluation, both priors are evaluated together (one pytree): a forward pass; with a
    VJP, its pullback; with Tweedie's covariance, ``num_matvecs`` chained JVPs between them.
    Each evaluation starts where the previous one moved the position, so XLA cannot merge them.
    """
    evaluations, with_vjp, tweedie = plan

    def scores(position):
        return {name: priors[name].score(position[name], time) for name in priors}

    for _ in range(evaluations):
        if tweedie:
            output, jvp = jax.linearize(scores, position)
            output = jax.lax.fori_loop(0, num_matvecs, lambda _, v, jvp=jvp: jvp(v), output)
            (output,) = jax.linear_transpose(jvp, position)(output)
        elif with_vjp:
            output, pullback = jax.vjp(scores, position)
            (output,) = pullback(output)
        else:
            output = scores(position)
        position = jax.tree.map(lambda p, o: p + 1e-3 * jnp.tanh(o), position, output)
    return position


@eqx.filter_jit
def _bare_step(priors, positions, time, num_matvecs, plan):
    over_batch = jax.vmap(
        functools.partial(_bare_network_work, plan=plan), in_axes=(None, 0, None, None)
    )
    return over_batch(priors, positions, time, num_matvecs)


def _seconds(function, *args):
    """Wall time of ``function(*args)`` until its result is ready, and the result."""
    started = wallclock.perf_counter()
    result = jax.block_until_ready(function(*args))
    return wallclock.perf_counter() - started, result


def _flops(compiled) -> float | None:
    """XLA's flop count of a compiled program (None where the backend gives none).

    XLA counts the body of a loop once: the CG iterations of a step are counted as one.
    """
    compiled = getattr(compiled, "compiled", compiled)  # an Equinox Compiled wraps jax's
    try:
        analysis = compiled.cost_analysis()
    except Exception:  # some backends do not implement it
        return None
    if isinstance(analysis, list | tuple):
        analysis = analysis[0] if analysis else None
    flops = (analysis or {}).get("flops")
    return float(flops) if flops is not None and flops > 0 else None


def _matmul_flops_per_s(size: int = 8192, repeats: int = 5) -> float:
    """The flop rate of a large jitted float32 matmul: the practical peak of the device."""
    key_a, key_b = jax.random.split(jax.random.key(0))
    a = jax.random.normal(key_a, (size, size))
    b = jax.random.normal(key_b, (size, size))
    matmul = jax.jit(jnp.matmul)
    _seconds(matmul, a, b)
    best = min(_seconds(matmul, a, b)[0] for _ in range(repeats))
    return 2.0 * size**3 / best


def _measure_batch(sampler, target, observation, options, plan, grid, start_time, batch, steps):
    """One row of the table: the step and its bare work for ``batch`` trajectories."""
    init_key, step_key = jax.random.split(jax.random.key(0))
    positions = _initial_positions(target, init_key, observation[None], batch, start_time)
    positions = {name: value[0] for name, value in positions.items()}
    observations = jnp.broadcast_to(observation, (batch, *observation.shape))
    trajectory_ids = jnp.arange(batch, dtype=jnp.int32)
    zeros = jnp.zeros(batch, dtype=jnp.int32)

    def carry_at(positions):  # solver counters reset: each step reports its own CG iterations
        return _Carry(positions, jnp.zeros(batch, dtype=bool), zeros, zeros)

    def arguments(carry):  # the driver's arguments before (first, length)
        return (sampler, target, carry, step_key, trajectory_ids, observations, options, grid)

    def step(carry, index):
        return _advance(*arguments(carry), jnp.asarray(index), 1)

    priors = target.priors
    first_seconds, (carry, _) = _seconds(step, carry_at(positions), 0)
    bare_positions = dict(positions)
    num_matvecs = jnp.asarray(int(jnp.max(carry.solver_steps_max)))
    bare_first, bare_positions = _seconds(
        _bare_step, priors, bare_positions, grid[0], num_matvecs, plan
    )
    step_seconds, bare_seconds, matvecs = [], [], []
    for count in range(steps):
        index = 1 + count % (len(grid) - 2)
        seconds, (carry, _) = _seconds(step, carry_at(carry.positions), index)
        step_seconds.append(seconds)
        matvecs.append(int(jnp.max(carry.solver_steps_max)))
        seconds, bare_positions = _seconds(
            _bare_step, priors, bare_positions, grid[index], jnp.asarray(matvecs[-1]), plan
        )
        bare_seconds.append(seconds)

    step_ms = 1e3 * statistics.median(step_seconds)
    bare_ms = 1e3 * statistics.median(bare_seconds)
    flops = _flops(_advance.lower(*arguments(carry), jnp.asarray(1), 1).compile())
    bare_flops = _flops(
        _bare_step.lower(priors, bare_positions, grid[1], num_matvecs, plan).compile()
    )
    return {
        "batch": batch,
        "ms_per_step": step_ms,
        "compile_s": max(first_seconds - step_ms / 1e3, 0.0),
        "bare_ms": bare_ms,
        "bare_compile_s": max(bare_first - bare_ms / 1e3, 0.0),
        "overhead_ratio": step_ms / bare_ms,
        "cg_matvecs_per_step": statistics.median(matvecs) if plan[2] else None,
        "flops_per_step": flops,
        "gflops_per_s": None if flops is None else flops / (step_ms / 1e3) / 1e9,
        "bare_flops": bare_flops,
    }


def benchmark(
    model_file: str | None = None,
    *,
    sampler: str | None = None,
    batches=DEFAULT_BATCHES,
    steps: int = 10,
    options: dict | None = None,
    paper: bool = False,
) -> dict:
    """Benchmark the driver's step of ``sampler`` on a model file (or the paper's model).

    Parameters
    ----------
    model_file : a model file (see :mod:`bayesnoise.model_file`); None with ``paper``.
    sampler : a name in :data:`bayesnoise.samplers.SAMPLERS` (default: the model file's).
    batches : numbers of trajectories B, each a positive integer.
    steps : timed steps per batch size (after one warm-up step that compiles).
    options : sampler options (default: the model file's, when its sampler is benchmarked).
    paper : benchmark :func:`paper_model` instead of a model file.

    Returns
    -------
    A dict: model, sampler, backend, num_steps_default, rows (one per batch size), and the
    overhead_ratio, ms_per_image and batch of the largest batch.
    """
    batches = list(batches)
    if not batches or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in batches):
        raise ValueError(f"--batch must be positive integers. Got {batches}.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"--steps must be a positive integer. Got {steps!r}.")
    if options is not None and not isinstance(options, dict):
        raise ValueError(f"--options must be a JSON object. Got {options!r}.")
    problem = _load_problem(model_file, paper)
    sampler_name = sampler or problem.defaults["sampler"]
    chosen = get_sampler(sampler_name)
    if options is None and sampler_name == problem.defaults["sampler"]:
        options = problem.defaults.get("sampler_options")
    target = posterior_target(problem.model)
    prepared = chosen.prepare_options(options, target.latent_names)
    observation = (
        jnp.zeros(target.observation_shape)
        if problem.observation is None
        else jnp.asarray(problem.observation, jnp.float32)
    )
    if observation.shape != target.observation_shape:
        raise ValueError(
            f"the model file's simulate(0) must give an observation of shape "
            f"{target.observation_shape}. Got {observation.shape}."
        )
    num_steps_default = int(problem.defaults["num_steps"])
    start_time = float(problem.defaults.get("start_time", 1.0))
    grid = time_grid(max(num_steps_default, 2), start_time, spacing="quadratic")
    plan = (
        chosen.integrator.evaluations_per_step(prepared),
        chosen.guidance.vjps_per_evaluation > 0,
        prepared.get("covariance") == "tweedie",
    )
    backend = jax.default_backend()
    peak = None if backend == "cpu" else _matmul_flops_per_s()
    rows = []
    for batch in batches:
        row = _measure_batch(
            chosen, target, observation, prepared, plan, grid, start_time, batch, steps
        )
        row["ms_per_image"] = row["ms_per_step"] * num_steps_default / batch
        rate = row["gflops_per_s"]
        row["matmul_peak_fraction"] = None if peak is None or rate is None else rate * 1e9 / peak
        rows.append(row)
    largest = max(rows, key=lambda row: row["batch"])
    return {
        "model": problem.name,
        "sampler": chosen.name,
        "options": options or {},
        "backend": backend,
        "device": jax.devices()[0].device_kind,
        "num_steps_default": num_steps_default,
        "num_steps_source": problem.num_steps_source,
        "timed_steps": steps,
        "bare_work": _describe_plan(plan),
        "rows": rows,
        "overhead_ratio": largest["overhead_ratio"],
        "ms_per_image": largest["ms_per_image"],
        "batch": largest["batch"],
    }


def _describe_plan(plan) -> str:
    evaluations, with_vjp, tweedie = plan
    one = "forward + m JVPs + VJP" if tweedie else "forward + VJP" if with_vjp else "forward"
    return f"{evaluations} x ({one}) per prior and trajectory"


def _number(value, digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and (value >= 1e5 or 0 < abs(value) < 1e-3):
        return f"{value:.3g}"
    return f"{value:.{digits}f}"


def format_table(result: dict) -> str:
    """The benchmark as a readable table."""
    header = (
        f"{'batch':>6} {'ms/step':>9} {'ms/image':>9} {'bare ms':>9} {'ratio':>6} "
        f"{'compile s':>9} {'CG m':>5} {'GFLOP/step':>10} {'bare GFLOP':>10} {'GFLOP/s':>8} "
        f"{'peak frac':>9}"
    )
    lines = [
        f"{result['model']} | sampler {result['sampler']} {json.dumps(result['options'])} | "
        f"{result['backend']} ({result['device']}) | ms/image at "
        f"{result['num_steps_default']} steps ({result['num_steps_source']}) | "
        f"bare: {result['bare_work']} | medians of {result['timed_steps']} steps",
        header,
    ]
    for row in result["rows"]:
        flops, bare_flops = row["flops_per_step"], row["bare_flops"]
        lines.append(
            f"{row['batch']:>6} {_number(row['ms_per_step'], 2):>9} "
            f"{_number(row['ms_per_image'], 2):>9} {_number(row['bare_ms'], 2):>9} "
            f"{_number(row['overhead_ratio'], 2):>6} {_number(row['compile_s'], 1):>9} "
            f"{_number(row['cg_matvecs_per_step'], 0):>5} "
            f"{_number(None if flops is None else flops / 1e9, 3):>10} "
            f"{_number(None if bare_flops is None else bare_flops / 1e9, 3):>10} "
            f"{_number(row['gflops_per_s'], 1):>8} "
            f"{_number(row['matmul_peak_fraction'], 3):>9}"
        )
    return "\n".join(lines)
