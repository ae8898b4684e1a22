"""pytest set-up shared by unit tests and notebook runs (nbval): the smoke profile, headless."""

import os

os.environ.setdefault("COURSE_PROFILE", "smoke")
os.environ.setdefault("COURSE_HEADLESS", "1")
os.environ.setdefault("MPLBACKEND", "agg")
