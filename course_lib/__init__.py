"""course_lib: the implementations behind the Generative Image Models course.

Importing the package has no side effects: it prints nothing, seeds nothing, downloads nothing and
changes no global setting. Import what you need from its modules, for example
``from course_lib.device import get_device``.
"""

__version__ = "0.1.0"
