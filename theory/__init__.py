"""Closed-form theory: bounds, exact expected dynamics, step-size rules (THEORY.md §1–§5).

Pure functions of the problem constants and the step index; no randomness, and nothing
imported from the rest of the lab. Every curve comes back as a :class:`Curve` (values,
``applicable`` + ``reason``, ``tight``, ``source``, ``rate``, ``floor``): outside a theorem's
conditions the values are NaN and ``reason`` says which condition failed; invalid input
(``L <= 0``, ``mu > L``, non-finite numbers) raises ``ValueError`` naming the parameter.
"""

from theory.conditions import Conditions, Curve, Scalar
from theory.constants import (
    Constant1D,
    PLConstants,
    pl_constant_1d,
    pl_sin_constants,
    smoothness_constant_1d,
)
from theory.counterexample import HBCounterexample, hb_counterexample, lrp_grad, lrp_value
from theory.gd import (
    gd_contraction_factor,
    gd_exact_quadratic,
    gd_nonconvex_bound,
    gd_pl_bound,
    gd_strongly_convex_rate,
)
from theory.hb_exact import heavy_ball_exact_quadratic, heavy_ball_stationary_quadratic
from theory.momentum import (
    heavy_ball_asymptotic_rate,
    heavy_ball_is_stable,
    heavy_ball_polynomial,
    heavy_ball_quadratic,
    heavy_ball_safe_bound,
    heavy_ball_spectral_radius,
    two_term_spectral_radius,
)
from theory.nesterov import (
    first_order_lower_bound,
    nesterov_bound,
    nesterov_convex_bound,
    nesterov_exact_quadratic,
    nesterov_spectral_radius,
)
from theory.noise_scale import NoiseScale, noise_scale, steps_examples_tradeoff
from theory.precond import PreconditionedSpectrum, jacobi_preconditioner, precond_gd
from theory.sampling_exact import sgd_sampled_least_squares_exact
from theory.sgd import (
    noise_floor_bound,
    per_coordinate_noise_variance,
    sgd_diminishing_bound,
    sgd_nonconvex_bound,
    sgd_pl_constant_bound,
    without_replacement_sigma2,
)
from theory.sgd_exact import (
    averaged_sgd_asymptotic,
    averaged_sgd_exact,
    sgd_exact_quadratic,
    sgd_exact_quadratic_schedule,
    sgd_stationary_quadratic,
)
from theory.steps import (
    SGDRecipe,
    gd_iterations_to_eps,
    gd_optimal_iterations_to_eps,
    heavy_ball_iterations_to_eps,
    heavy_ball_polyak_params,
    heavy_ball_safe_params,
    nesterov_iterations_to_eps,
    nesterov_params,
    sgd_iterations_to_eps,
    step_inverse_L,
    step_optimal_gd,
)
from theory.svrg import svrg_bound, svrg_rate

__all__ = [
    "Conditions",
    "Constant1D",
    "Curve",
    "HBCounterexample",
    "NoiseScale",
    "PLConstants",
    "PreconditionedSpectrum",
    "SGDRecipe",
    "Scalar",
    "averaged_sgd_asymptotic",
    "averaged_sgd_exact",
    "first_order_lower_bound",
    "gd_contraction_factor",
    "gd_exact_quadratic",
    "gd_iterations_to_eps",
    "gd_nonconvex_bound",
    "gd_optimal_iterations_to_eps",
    "gd_pl_bound",
    "gd_strongly_convex_rate",
    "hb_counterexample",
    "heavy_ball_asymptotic_rate",
    "heavy_ball_exact_quadratic",
    "heavy_ball_is_stable",
    "heavy_ball_iterations_to_eps",
    "heavy_ball_polyak_params",
    "heavy_ball_polynomial",
    "heavy_ball_quadratic",
    "heavy_ball_safe_bound",
    "heavy_ball_safe_params",
    "heavy_ball_spectral_radius",
    "heavy_ball_stationary_quadratic",
    "jacobi_preconditioner",
    "lrp_grad",
    "lrp_value",
    "nesterov_bound",
    "nesterov_convex_bound",
    "nesterov_exact_quadratic",
    "nesterov_iterations_to_eps",
    "nesterov_params",
    "nesterov_spectral_radius",
    "noise_floor_bound",
    "noise_scale",
    "per_coordinate_noise_variance",
    "pl_constant_1d",
    "pl_sin_constants",
    "precond_gd",
    "sgd_diminishing_bound",
    "sgd_exact_quadratic",
    "sgd_exact_quadratic_schedule",
    "sgd_iterations_to_eps",
    "sgd_nonconvex_bound",
    "sgd_sampled_least_squares_exact",
    "sgd_pl_constant_bound",
    "sgd_stationary_quadratic",
    "smoothness_constant_1d",
    "step_inverse_L",
    "step_optimal_gd",
    "steps_examples_tradeoff",
    "svrg_bound",
    "svrg_rate",
    "two_term_spectral_radius",
    "without_replacement_sigma2",
]
