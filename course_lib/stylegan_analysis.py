"""Kept so that ``from course_lib.stylegan_analysis import path_length`` keeps working: see ``course_lib.stylegan.analysis``."""

from course_lib.stylegan.analysis import feature_peaks, path_length, truncation_sweep  # noqa: F401
