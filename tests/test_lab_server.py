"""`make lab` works: JupyterLab starts from the course's environment and serves the first lesson.

The server is started as `make lab` starts it (`jupyter lab`, `--allow-root` when run as root), but
on a free loopback port with a random token and without a browser (see ``start_lab`` in conftest.py).
"""

import json
import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
FIRST_LESSON = "notebooks/00_setup_and_tour.ipynb"


def test_make_lab_opens_the_first_lesson_and_it_exists():
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^lab:.*\n\t(?P<command>.+)$", makefile, re.M)
    assert recipe, "the Makefile has no `lab` target"
    assert "jupyter lab" in recipe["command"] and FIRST_LESSON in recipe["command"], recipe["command"]
    assert "$(ROOT_FLAG)" in recipe["command"], "`make lab` must pass --allow-root when run as root"
    assert (ROOT / FIRST_LESSON).is_file()


def test_jupyterlab_serves_the_first_lesson_through_the_contents_api(start_lab):
    server = start_lab()

    assert server.get_json("api/status")["started"]
    model = server.get_json(f"api/contents/{FIRST_LESSON}?type=notebook&content=1")
    assert model["type"] == "notebook" and model["path"] == FIRST_LESSON
    served = nbformat.from_dict(model["content"])
    nbformat.validate(served)
    on_disk = nbformat.read(ROOT / FIRST_LESSON, as_version=4)
    first = served.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), first.source[:200]
    assert first.source.splitlines()[0] == on_disk.cells[0].source.splitlines()[0]   # the lesson title
    assert len(served.cells) == len(on_disk.cells)

    # the page `make lab` opens: JupyterLab's front end, built and configured for this notebook
    status, page = server.get(f"lab/tree/{FIRST_LESSON}")
    assert status == 200, f"/lab/tree/{FIRST_LESSON} answered {status}\n{server.log_tail()}"
    config = re.search(rb'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page, re.S)
    assert config, "the lab page has no jupyter-config-data: is the JupyterLab front end installed?"
    page_config = json.loads(config[1])
    assert page_config["appName"] == "JupyterLab"
    # the widget extension the lessons' sliders need is installed in this environment
    extensions = {extension["name"] for extension in page_config.get("federated_extensions", [])}
    assert "@jupyter-widgets/jupyterlab-manager" in extensions, \
        f"JupyterLab has no ipywidgets extension (found {sorted(extensions)}): reinstall requirements.txt"
