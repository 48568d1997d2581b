"""Training score priors by denoising score matching.

The parts, each in its own module: the loss (:mod:`~bayesnoise.training.loss`), one
optimisation step with its optimiser and EMA (:mod:`~bayesnoise.training.optimisation`),
saving and resuming (:mod:`~bayesnoise.training.resume`), the loop
(:mod:`~bayesnoise.training.loop`), the data (:mod:`~bayesnoise.training.datasets`,
:mod:`~bayesnoise.training.image_folder`), the whole run from a few settings
(:mod:`~bayesnoise.training.config`), conditional networks on (signal, observation) pairs
(:mod:`~bayesnoise.training.conditional`, :mod:`~bayesnoise.training.paired`) and the
``bayesnoise train`` command
(:mod:`~bayesnoise.training.cli`).

Examples
--------
>>> from bayesnoise.training import train_from_config
>>> train_from_config("my_images/", None, "prior.eqx", steps=2000, preset="small")
"""

from bayesnoise.training.conditional import (
    ConditioningSettings,
    conditional_dsm_loss,
    conditional_heldout_loss,
)
from bayesnoise.training.config import PRESETS, train_from_config
from bayesnoise.training.datasets import DATASETS, TrainingData, load_training_data
from bayesnoise.training.loop import train_score_network
from bayesnoise.training.loss import dsm_loss, heldout_loss
from bayesnoise.training.optimisation import (
    StepSettings,
    TrainingState,
    init_state,
    make_optimizer,
    train_step,
)
from bayesnoise.training.paired import (
    CORRUPTIONS,
    PairedTrainingData,
    is_paired_file,
    load_paired_training_data,
)

__all__ = [
    "CORRUPTIONS",
    "ConditioningSettings",
    "PairedTrainingData",
    "conditional_dsm_loss",
    "conditional_heldout_loss",
    "is_paired_file",
    "load_paired_training_data",
    "DATASETS",
    "PRESETS",
    "StepSettings",
    "TrainingData",
    "TrainingState",
    "dsm_loss",
    "heldout_loss",
    "init_state",
    "load_training_data",
    "make_optimizer",
    "train_from_config",
    "train_score_network",
    "train_step",
]
