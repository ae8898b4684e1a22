"""The shared run layer under every model family: configs, inputs, step helpers, sampling and the run itself.

- ``config``: ``RunConfig`` (the settings every run has; a family's config extends it) and ``Run``.
- ``inputs``: noise z, balanced labels, the checks of image and label batches, a family's training data.
- ``steps``: bf16 autocast (and what ``--precision`` means on a device), frozen networks and Adam, for every family's step functions.
- ``sampling``: ``sample``, ``generate``, ``evaluate_generator``, ``translate``: drawing from any trained model.
- ``files``: the files of a run folder, the shipped checkpoints, ``save_generator``.
- ``session``: ``train_run``: build, resume, train, checkpoint, write samples, weights and metrics.
- ``distributed``: several processes under ``torchrun``: the process group, DDP wrappers, shards, per-rank seeds.

The layer knows no family by name; ``course_lib.train`` maps the model names to the families.
"""

from course_lib.run import distributed
from course_lib.run.config import GRID_SIZE, Run, RunConfig, check_ints, check_numbers, make_config
from course_lib.run.files import (CHECKPOINT, CHECKPOINTS_ENV, CONFIG, GENERATOR, METRICS, RUN_FILES, SAMPLES, SHIPPED,
                                  architecture_of, save_generator, settings_of, shipped_checkpoint)
from course_lib.run.inputs import (balanced_labels, check_digit_metrics, check_images, check_labels, prepare_images,
                                   sample_z, training_images)
from course_lib.run.sampling import (evaluate_generator, fixed_noise, generate, generate_batches, generated_arrays, sample,
                                     sample_metrics, translate)
from course_lib.run.session import check_out, resume_run, train_run
from course_lib.run.steps import PRECISIONS, adam, autocast, frozen, native_bf16, use_bf16
