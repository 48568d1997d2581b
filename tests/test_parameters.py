"""Forward-model parameters theta sampled with (x, n): the theta update, the DataTree, and the
joint posterior against quadrature over theta on a linear-Gaussian problem."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from gaussian_problems import SDE, _smooth_covariance
from numpyro import handlers
from scipy.stats import norm

import bayesnoise as bn
from bayesnoise.parameters import (
    ParameterUpdate,
    _propagated_variance,
    _tweedie_variances,
    conditional_logdensity_fn,
    update_parameters,
)
from bayesnoise.reference import nuts_posterior, parameter_posterior_by_quadrature
from bayesnoise.target import posterior_target

SIZE, TRUE_MIXING, MEASUREMENT_STD = 32, 0.3, 0.05
MIXING_GRID = np.linspace(0.0005, 0.9995, 1000)


def unknown_mixing_model():
    """y = (1 - alpha) x + alpha n + eps, alpha ~ Beta(2, 2): smooth x, AR(1) n, d = 32."""
    signal = bn.GaussianPrior((SIZE,), SDE, mean=0.5, covariance=_smooth_covariance(SIZE, 0.3, 2))
    lags = np.abs(np.arange(SIZE)[:, None] - np.arange(SIZE)[None])
    noise = bn.GaussianPrior((SIZE,), SDE, covariance=0.04 * 0.7**lags)
    return bn.joint_model(
        signal, noise, measurement_std=MEASUREMENT_STD, mixing=dist.Beta(2.0, 2.0)
    )


def simulated(model, seed=0):
    """(y, x, n) drawn from the model with alpha = TRUE_MIXING."""
    target = posterior_target(handlers.condition(model, data={"alpha": TRUE_MIXING}))
    keys = jax.random.split(jax.random.key(seed), 3)
    x, n = (
        prior.sample(key, 0.0) for prior, key in zip(target.priors.values(), keys[1:], strict=True)
    )
    mean = target.predicted_observation({"x": x, "n": n})
    y = mean + MEASUREMENT_STD * jax.random.normal(keys[0], mean.shape)
    return np.asarray(y), np.asarray(x), np.asarray(n)


def z_scores(draws, mean, variance):
    count = len(draws)
    z_mean = (draws.mean(0) - mean) / np.sqrt(variance / count)
    z_variance = (draws.var(0, ddof=1) / variance - 1.0) / np.sqrt(2.0 / (count - 1))
    return np.abs(z_mean), np.abs(z_variance)


def test_target_records_parameters_and_substitutes_them():
    model = unknown_mixing_model()
    target = posterior_target(model)
    assert target.latent_names == ("x", "n")
    assert target.parameter_names == ("alpha",) and target.parameter_shapes == {"alpha": ()}
    position = {"x": jnp.ones(SIZE), "n": jnp.zeros(SIZE)}
    np.testing.assert_allclose(target.predicted_observation(position), 0.5)  # prior mean
    bound = target.with_parameters({"alpha": jnp.asarray(0.25)})
    np.testing.assert_allclose(bound.predicted_observation(position), 0.75)
    without = posterior_target(bn.joint_model(*target.priors.values()))
    assert without.parameter_names == () and without.with_parameters({}) is without


@pytest.mark.parametrize("conditioning", ["point", "gaussian"])
def test_update_leaves_the_exact_conditional_invariant_at_time_zero(conditioning):
    """At t = 0 Tweedie's estimates are (x, n): 20 updates of 2000 chains started at one point
    must give p(alpha | y, x, n), here by quadrature (Beta prior x Gaussian likelihood).
    (Chains started in the prior's far tail, alpha ~ 0.97, can stay there: HMC's first steps
    from 50 conditional sds away are rejected.)"""
    model = unknown_mixing_model()
    target = posterior_target(model)
    y, x, n = simulated(model)
    log_density = dist.Beta(2.0, 2.0).log_prob(MIXING_GRID) + np.asarray(
        [norm.logpdf(y, (1 - a) * x + a * n, MEASUREMENT_STD).sum() for a in MIXING_GRID]
    )
    weights = np.exp(log_density - log_density.max())
    weights /= weights.sum()
    mean = weights @ MIXING_GRID
    variance = weights @ MIXING_GRID**2 - mean**2

    @jax.jit
    def chain(key):
        start = {"alpha": jnp.asarray(0.4)}
        position = {"x": jnp.asarray(x), "n": jnp.asarray(n)}

        def one_update(parameters, key):
            parameters, _ = update_parameters(
                key,
                parameters,
                target,
                position,
                jnp.asarray(y),
                0.0,
                ParameterUpdate(conditioning=conditioning),
            )
            return parameters, None

        keys = jax.random.split(jax.random.fold_in(key, 1), 20)
        return jax.lax.scan(one_update, start, keys)[0]["alpha"]

    draws = np.asarray(jax.vmap(chain)(jax.random.split(jax.random.key(7), 2000)))
    z_mean, z_variance = z_scores(draws, mean, variance)
    assert z_mean < 3.5 and z_variance < 3.5, (draws.mean(), mean, draws.var(), variance)


def test_gaussian_conditioning_widens_the_likelihood_by_tweedies_variance():
    """At t > 0 the 'gaussian' conditional of alpha is wider than the 'point' one (Tweedie's
    covariance added to y's variance), and both are finite densities of alpha."""
    model = unknown_mixing_model()
    target = posterior_target(model)
    y, x, n = simulated(model)
    position = {"x": jnp.asarray(x), "n": jnp.asarray(n)}
    time = 0.3
    denoised, _ = target.tweedie_denoise(position, time)
    variances = _tweedie_variances(target, position, time, jax.random.key(0), 16)
    assert all(0 < float(v) < 1 for v in variances.values())

    def extra(theta):
        return _propagated_variance(target, theta, variances, jax.random.key(1), 16)

    # Scale operators: ||J_x||_F^2 / m = (1 - alpha)^2 and ||J_n||_F^2 / m = alpha^2 exactly.
    expected = 0.7**2 * variances["x"] + 0.3**2 * variances["n"]
    np.testing.assert_allclose(extra({"alpha": jnp.asarray(0.3)}), expected, rtol=1e-5)
    grid = jnp.linspace(-3.0, 3.0, 61)  # alpha's unconstrained values
    point = conditional_logdensity_fn(target, denoised, jnp.asarray(y))
    widened = conditional_logdensity_fn(target, denoised, jnp.asarray(y), extra)
    log_density_range = [
        float(jnp.ptp(jax.vmap(lambda u, f=f: f({"alpha": u}))(grid))) for f in (point, widened)
    ]
    assert np.isfinite(log_density_range).all()
    assert log_density_range[1] < log_density_range[0]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"conditioning": "exact"}, r"conditioning must be one of \('point', 'gaussian'\)"),
        ({"num_probes": 0}, "num_probes must be a positive integer"),
    ],
)
def test_parameter_update_settings_are_checked(settings, message):
    with pytest.raises(ValueError, match=message):
        ParameterUpdate(**settings)


def test_datatree_and_summary_hold_the_parameter():
    model = unknown_mixing_model()
    y, _, _ = simulated(model)
    tree = bn.sample(model, y, num_chains=2, num_draws=4, num_steps=20, progress=False)
    assert tree.posterior["alpha"].dims == ("chain", "draw")
    assert tree.posterior.attrs["forward_model_parameters"] == "alpha"
    assert "parameter_acceptance_rate" in tree.sample_stats
    summary = bn.summarize(tree)
    lower, upper = summary["alpha"]["posterior"]["interval_90"]
    assert 0 < lower <= summary["alpha"]["posterior"]["mean"] <= upper < 1
    assert summary["parameter_acceptance_rate_mean"] > 0.5


def blur_width_model():
    """A user-written model with an operator parameter: y = K_w * x + n + eps on 6 x 6 images,
    w ~ LogNormal(0, 0.25) (site "blur_width"), Gaussian priors, a 5 x 5 Gaussian PSF."""
    shape = (6, 6, 1)
    signal = bn.GaussianPrior(shape, SDE, mean=0.5, variance=0.04)
    noise = bn.GaussianPrior(shape, SDE, variance=0.01)

    def model(observation=None, diffusion_time=0.0):
        width = numpyro.sample("blur_width", dist.LogNormal(0.0, 0.25))
        x = numpyro.sample("x", bn.ScorePriorDistribution(signal, diffusion_time))
        n = numpyro.sample("n", bn.ScorePriorDistribution(noise, diffusion_time))
        blur = bn.operators.FFTBlur(shape, bn.operators.gaussian_kernel(5, width))
        numpyro.sample("y", dist.Normal(blur(x) + n, 0.05).to_event(3), obs=observation)

    return model, shape


def test_an_operator_parameter_of_a_user_model():
    """The blur width of a plain NumPyro model is found as theta; its conditional at t = 0 is
    log p(w) + log N(y; K_w x + n, sigma^2) (+ the log-Jacobian of w = exp(u)); bn.sample
    returns its draws beside x and n."""
    model, shape = blur_width_model()
    target = posterior_target(model)
    assert target.parameter_names == ("blur_width",) and target.latent_names == ("x", "n")
    keys = jax.random.split(jax.random.key(3), 3)
    x = 0.5 + 0.2 * jax.random.normal(keys[0], shape)
    n = 0.1 * jax.random.normal(keys[1], shape)

    def blurred(width):
        return bn.operators.FFTBlur(shape, bn.operators.gaussian_kernel(5, width))(x)

    y = blurred(1.2) + n + 0.05 * jax.random.normal(keys[2], shape)
    log_density = conditional_logdensity_fn(target, {"x": x, "n": n}, y)
    for width in (0.6, 1.0, 1.2, 1.7):
        u = jnp.log(width)
        expected = (
            dist.LogNormal(0.0, 0.25).log_prob(width)
            + u  # log |dw / du|
            + norm.logpdf(np.asarray(y), np.asarray(blurred(width) + n), 0.05).sum()
        )
        np.testing.assert_allclose(log_density({"blur_width": u}), expected, rtol=1e-5)
    tree = bn.sample(model, y, num_chains=2, num_draws=2, num_steps=10, progress=False)
    assert tree.posterior["blur_width"].dims == ("chain", "draw")
    assert np.all(np.asarray(tree.posterior["blur_width"]) > 0)
    assert np.all(np.isfinite(np.asarray(tree.posterior["x"])))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"mixing": dist.Normal(0.0, 1.0)}, "mixing must be a continuous distribution on"),
        ({"mixing": 1.5}, "mixing must be a number in"),
        ({"measurement_std": dist.Normal(0.0, 1.0)}, "measurement_std must be a continuous"),
        ({"mixing": dist.Beta(jnp.ones(2), 1.0)}, "mixing must be a scalar distribution"),
    ],
)
def test_parameter_priors_are_checked(arguments, message):
    signal = bn.GaussianPrior((4,), SDE, variance=1.0)
    with pytest.raises(ValueError, match=message):
        bn.joint_model(signal, signal, **arguments)
    with pytest.raises(ValueError, match="mixing needs a noise_prior"):
        bn.joint_model(signal, mixing=0.5)


@pytest.mark.slow
def test_nuts_matches_quadrature():
    """The quadrature reference against NUTS on the same NumPyro model (alpha included)."""
    model = unknown_mixing_model()
    y, _, _ = simulated(model)
    _, moments = parameter_posterior_by_quadrature(model, y, "alpha", MIXING_GRID)
    samples = nuts_posterior(model, y, num_samples=2000, num_warmup=500, seed=3)
    for name in ("alpha", "x"):
        z_mean, z_variance = z_scores(samples[name][::4], *moments[name])
        assert np.max(z_mean) < 4 and np.max(z_variance) < 4, name


@pytest.mark.slow
@pytest.mark.xfail(
    strict=False,
    reason="Gibbs-within-diffusion conditions alpha on Tweedie's estimates, not on "
    "p(y | x_t, alpha): alpha's sd measured 1.2-1.5x the exact one and its mean up to 4.2 "
    "standard errors off (analyses/parameter_bias.py); not strict: on this d = 32 observation "
    "the mean stayed within 1 standard error",
)
def test_joint_posterior_matches_quadrature():
    """alpha and x moments of 512 trajectories against the quadrature mixture over alpha."""
    model = unknown_mixing_model()
    y, _, _ = simulated(model, seed=1)
    _, moments = parameter_posterior_by_quadrature(model, y, "alpha", MIXING_GRID)
    tree = bn.sample(model, y, num_chains=4, num_draws=128, num_steps=200, seed=1, progress=False)
    for name in ("alpha", "x"):
        draws = np.asarray(tree.posterior[name]).reshape(512, -1)
        z_mean, z_variance = z_scores(draws, *moments[name])
        assert np.max(z_mean) < 4 and np.max(z_variance) < 4, name
