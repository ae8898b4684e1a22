"""The grader's machinery: verdicts that no code in a notebook can fake.

- ``sandbox``: a fresh folder, a kernel under limits (and an unprivileged user id when the grader is
  root), clocks for cells and notebooks, clean-up of every process;
- ``agent``: the small server that runs inside the learner's kernel and answers with data only;
- ``remote``: stand-ins for the learner's functions and objects, so that the checks of
  ``course_lib.checks`` run unchanged in the grader's process;
- ``static``: what each graded answer refers to, read from the source without running it;
- ``launch``: the launcher that puts the kernel in its place (mount namespace, user id, resource limits);
- ``processes``: every process of a submission found, frozen, killed and reaped;
- ``run``: one submission from start to record.

``course_lib.grade`` is the command line on top of these.
"""
