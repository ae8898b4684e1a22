"""Kept so that ``from course_lib.translate import translate`` keeps working: ``translate`` is in ``course_lib.run``,
the rest in the families ``course_lib.pix2pix`` and ``course_lib.cyclegan``."""

from course_lib.cyclegan.training import cyclegan_config, evaluate_cyclegan  # noqa: F401
from course_lib.pix2pix.training import GRID_PAIRS, calibrate_pix2pix, evaluate_pix2pix, pix2pix_config  # noqa: F401
from course_lib.run.sampling import translate  # noqa: F401
