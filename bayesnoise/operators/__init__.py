"""Forward operators A and B in the observation model y = A(x) + B(n) + eps.

Each operator maps ONE unbatched signal of shape ``input_shape`` (images channel-last, e.g.
``(28, 28, 1)``) to ``output_shape``; batch with ``jax.vmap``. Linear operators add the adjoint
``transpose``: <A x, y> = <x, A^T y> (exact, tested against dense matrices). Complex
measurements (:class:`FourierSampling`) are real arrays with a trailing (real, imaginary) axis.
"""

from bayesnoise.operators.base import AbstractLinearOperator, AbstractOperator
from bayesnoise.operators.convolution import Blur, FFTBlur, gaussian_kernel
from bayesnoise.operators.dense import DenseMatrix, random_gaussian_matrix
from bayesnoise.operators.elementwise import Identity, Mask, Scale
from bayesnoise.operators.fourier import FourierSampling, cartesian_mask
from bayesnoise.operators.nonlinear import Nonlinear
from bayesnoise.operators.sampling import Subsample, SuperResolution

__all__ = [
    "AbstractOperator",
    "AbstractLinearOperator",
    "Identity",
    "Scale",
    "Mask",
    "Subsample",
    "SuperResolution",
    "DenseMatrix",
    "Blur",
    "FFTBlur",
    "FourierSampling",
    "Nonlinear",
    "random_gaussian_matrix",
    "gaussian_kernel",
    "cartesian_mask",
]
