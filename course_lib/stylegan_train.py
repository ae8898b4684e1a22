"""Kept so that ``from course_lib.stylegan_train import stylegan_step`` keeps working: see ``course_lib.stylegan.training``."""

from course_lib.stylegan.training import (StyleGANTrainConfig, lazy_adam, sample_ws, stylegan_config,  # noqa: F401
                                          stylegan_step)
