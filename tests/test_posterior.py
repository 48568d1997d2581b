"""Samplers against the truth: closed-form posteriors and NUTS on the same NumPyro model.

Monte Carlo z-tests (CONVENTIONS 7): every (chain, draw) of a diffusion sampler is an
independent trajectory, so the standard error of a mean is sd / sqrt(N) and of a variance
var * sqrt(2 / (N - 1)). The threshold is a normal quantile Bonferroni-corrected over the
number of compared elements (family-wise error 1e-3).
"""

import jax
import numpy as np
import pytest
from gaussian_problems import PROBLEMS, SDE, observation_of
from scipy.stats import norm

import bayesnoise as bn
from bayesnoise.reference import gaussian_posterior, nuts_posterior

NUM_CHAINS, NUM_DRAWS = 8, 128

# Kernels that are exact given exact conditional scores, with settings at which their
# discretisation error is below Monte Carlo error at N = 1024 trajectories (measured).
# The Langevin-based two are exact only as their step sizes vanish: on the stiff
# masked-sinusoidal problem (row variances spanning a factor 55) they keep a small variance
# bias at these settings (variance z ~ 5 at N = 1024), so they are checked on the other two.
EXACT_SAMPLERS = {
    "pigdm": ({}, 200),
    "ddpm_pigdm": ({}, 200),  # ancestral = DDIM(eta = 1)
    "ddim_pigdm": ({"eta": 0.0}, 200),  # the probability-flow ODE, exponential integrator
    "heun_pigdm": ({}, 40),  # second order: 79 evaluations
    "predictor_corrector": ({"signal_to_noise": 0.01}, 200),
    "annealed_langevin": ({"step_size": 0.2, "steps_per_level": 3}, 500),
}
# The stiff masked-sinusoidal problem keeps a variance bias of ~1.1 in n at 200 Euler–Maruyama
# steps (measured), so the first-order samplers get twice the steps there.
STEPS_FACTOR = {"masked_sinusoidal": 2}
EXACT_CASES = [
    *[("pigdm", problem) for problem in sorted(PROBLEMS)],
    *[("ddpm_pigdm", problem) for problem in sorted(PROBLEMS)],
    ("ddim_pigdm", "coloured_denoising"),
    ("ddim_pigdm", "compressed_sensing"),
    ("heun_pigdm", "coloured_denoising"),
    ("heun_pigdm", "compressed_sensing"),
    ("predictor_corrector", "coloured_denoising"),
    ("predictor_corrector", "compressed_sensing"),
    pytest.param("annealed_langevin", "coloured_denoising", marks=pytest.mark.slow),
    pytest.param("annealed_langevin", "compressed_sensing", marks=pytest.mark.slow),
]


def z_threshold(num_comparisons, family_error=1e-3):
    return norm.isf(family_error / (2 * num_comparisons))


def assert_matches_gaussian(samples, mean, covariance):
    """Element-wise z-tests of the sample mean and variance against the exact moments."""
    samples = samples.reshape(samples.shape[0], -1)
    count = samples.shape[0]
    variance = np.diag(covariance)
    threshold = z_threshold(2 * samples.shape[1])
    z_mean = (samples.mean(0) - mean) / np.sqrt(variance / count)
    z_variance = (samples.var(0, ddof=1) / variance - 1.0) / np.sqrt(2.0 / (count - 1))
    assert np.max(np.abs(z_mean)) < threshold, f"mean z-scores {np.round(z_mean, 2)}"
    assert np.max(np.abs(z_variance)) < threshold, f"variance z-scores {np.round(z_variance, 2)}"


def draws(tree, name):
    values = np.asarray(tree.posterior[name])
    return values.reshape((-1,) + values.shape[2:])


@pytest.mark.parametrize(("sampler", "problem"), EXACT_CASES)
def test_exact_sampler_matches_closed_form(sampler, problem):
    model = PROBLEMS[problem]
    observation = observation_of(model)
    options, num_steps = EXACT_SAMPLERS[sampler]
    num_steps *= STEPS_FACTOR.get(problem, 1)
    tree = bn.sample(
        model,
        observation,
        sampler=sampler,
        sampler_options=options,
        num_chains=NUM_CHAINS,
        num_draws=NUM_DRAWS,
        num_steps=num_steps,
        seed=11,
        progress=False,
    )
    assert int(tree.sample_stats["diverging"].sum()) == 0
    if "solver_failures" in tree.sample_stats:
        assert int(tree.sample_stats["solver_failures"].sum()) == 0
    for name, (mean, covariance) in gaussian_posterior(model, observation).items():
        assert_matches_gaussian(draws(tree, name), mean, covariance)


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_nuts_matches_closed_form(problem):
    """The independent reference: NUTS on the same NumPyro model with real log-densities."""
    model = PROBLEMS[problem]
    observation = observation_of(model)
    samples = nuts_posterior(model, observation, num_samples=2000, num_warmup=500, seed=5)
    for name, (mean, covariance) in gaussian_posterior(model, observation).items():
        # NUTS draws are autocorrelated: thin to roughly independent draws first.
        assert_matches_gaussian(samples[name][::4], mean, covariance)


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_pigdm_agrees_with_nuts(problem):
    """Two-sample z-test of posterior means: the diffusion sampler against NUTS."""
    model = PROBLEMS[problem]
    observation = observation_of(model, seed=1)
    tree = bn.sample(
        model, observation, num_chains=4, num_draws=128, num_steps=200, seed=2, progress=False
    )
    reference = nuts_posterior(model, observation, num_samples=2000, num_warmup=500, seed=6)
    for name in reference:
        ours = draws(tree, name).reshape(512, -1)
        theirs = reference[name][::4].reshape(500, -1)
        standard_error = np.sqrt(ours.var(0) / len(ours) + theirs.var(0) / len(theirs))
        z = (ours.mean(0) - theirs.mean(0)) / standard_error
        assert np.max(np.abs(z)) < z_threshold(z.size), f"{name}: z = {np.round(z, 2)}"


@pytest.mark.parametrize(
    ("sampler", "options"),
    [
        ("dps", {"guidance_weight": {"x": 0.2, "n": 0.2}}),
        ("data_consistency", {"guidance_weight": {"x": 0.5, "n": 0.5}}),
        ("pseudo_inverse", {"guidance_weight": {"x": 0.5, "n": 0.5}}),
    ],
)
def test_approximate_samplers_recover_easy_denoising(sampler, options):
    """The heuristics promise consistency with y and recovery on easy cases, not exactness:
    their posterior mean must be much closer to the truth than the observation is."""
    model = PROBLEMS["coloured_denoising"]
    target = bn.target.posterior_target(model)
    observation = observation_of(model, seed=4)
    exact = gaussian_posterior(model, observation)
    tree = bn.sample(
        model,
        observation,
        sampler=sampler,
        sampler_options=options,
        num_chains=4,
        num_draws=64,
        num_steps=200,
        seed=3,
        progress=False,
    )
    assert int(tree.sample_stats["diverging"].sum()) == 0
    mean_x = draws(tree, "x").mean(0)
    prior_error = np.linalg.norm(np.asarray(target.priors["x"].mean) - exact["x"][0])
    sampler_error = np.linalg.norm(mean_x - exact["x"][0])
    assert sampler_error < 0.5 * prior_error


def test_scalar_covariance_at_the_priors_variance_is_exact():
    """PiGDM's scalar r_t^2 with each site's prior variance v (option ``prior_variance``) is
    Tweedie's covariance when the priors are N(m, v I), so the sampler draws the closed-form
    posterior; PiGDM's own r_t^2 (v = 1, unit-variance data) misses it here (v = 0.1, 0.01)."""
    signal = bn.GaussianPrior((12,), SDE, mean=0.3, variance=0.1)
    matrix = bn.operators.random_gaussian_matrix((12,), 6, key=jax.random.key(3))
    noise = bn.GaussianPrior((6,), SDE, variance=0.01)
    model = bn.joint_model(signal, noise, signal_operator=matrix, measurement_std=0.05)
    observation = observation_of(model)
    exact = gaussian_posterior(model, observation)

    def scalar_draws(options):
        tree = bn.sample(
            model, observation, sampler="ddpm_pigdm", num_steps=200, num_chains=NUM_CHAINS,
            num_draws=NUM_DRAWS, seed=11, progress=False,
            sampler_options={"covariance": "scalar", **options},
        )  # fmt: skip
        assert int(tree.sample_stats["diverging"].sum()) == 0
        return tree

    tree = scalar_draws({"prior_variance": {"x": 0.1, "n": 0.01}})
    for name, (mean, covariance) in exact.items():
        assert_matches_gaussian(draws(tree, name), mean, covariance)
    tree = scalar_draws({})
    with pytest.raises(AssertionError, match="z-scores"):
        assert_matches_gaussian(draws(tree, "x"), *exact["x"])
