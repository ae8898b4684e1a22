"""Kept so that ``from course_lib.gan_steps import gan_step`` keeps working: the steps live in ``course_lib.gan.training``."""

from course_lib.gan.training import LOSSES, gan_step, wgan_gp_step  # noqa: F401
