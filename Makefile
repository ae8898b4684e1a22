# Two commands do all the set-up:
#   make lab    create .venv if needed, install, open JupyterLab on the first lesson
#   make test   create .venv if needed, install, run the whole test suite (smoke profile)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# jupyter lab refuses to run as root unless told it may (containers, CI)
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: venv lab test exercises notebooks clean

# Creates the environment, repairs a broken one (dangling link, interrupted set-up) and installs
# requirements.txt whenever it or pyproject.toml changed; see scripts/ensure_venv.py.
venv:
	@$(PYTHON) scripts/ensure_venv.py --venv $(VENV)

lab: venv
	$(BIN)/jupyter lab $(ROOT_FLAG) notebooks/00_setup_and_tour.ipynb

# Exercises must match solutions; then unit tests, grader tests, papermill runs and nbval over
# the lesson and solution notebooks, all in the smoke profile.
test: venv
	$(BIN)/python -m course_lib.exercises check
	COURSE_PROFILE=smoke COURSE_HEADLESS=1 MPLBACKEND=agg \
		$(BIN)/python -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider tests notebooks solutions

# Regenerate exercises/ from solutions/ (never edit exercises by hand).
exercises: venv
	$(BIN)/python -m course_lib.exercises build

# Re-execute lesson and solution notebooks in place with the laptop profile (committed outputs),
# then regenerate the exercises (execution records the kernel's language_info in the metadata).
notebooks: venv
	$(BIN)/python scripts/execute_notebooks.py --profile laptop notebooks/*.ipynb solutions/*.ipynb
	$(BIN)/python -m course_lib.exercises build

clean:
	rm -rf $(VENV) .pytest_cache
