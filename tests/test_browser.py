"""Lessons 06 and 09 in a real browser: every cell runs in JupyterLab and the sliders redraw their pictures.

papermill and nbval run the lessons headless (``COURSE_HEADLESS=1``), where the explorers draw one
static figure and no widget is ever shown. Here the kernel runs as a learner's does: smoke profile,
``COURSE_HEADLESS=0`` (somebody watches, so the explorers build their ipywidgets sliders) and no
``MPLBACKEND`` (the kernel's inline backend shows the figures). Headless Chromium, driven by
playwright, opens a copy of the lesson (the server never writes to the repository), clears every
output, runs all cells through JupyterLab's own commands (what Run > Run All Cells does), and then
checks:

- every code cell ran and none shows an error (stderr warnings are printed, not failed);
- the widgets render (no "Error displaying widget"), each explorer has its sliders and its picture;
- moving each slider with the keyboard (Home or End on its handle) changes its readout and redraws the
  picture: pixels below the figure's title change, not only the title.

Screenshots of every explorer before and after each move go to the test's tmp_path (printed).
Needs Debian's ``chromium`` at /usr/bin/chromium (``.ci/run`` installs it) and the ``playwright``
package (requirements.txt); never ``playwright install``.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-quic",
                 "--disable-dev-shm-usage"]  # containers often give /dev/shm 64 MB, too little for Chromium
EXPLORERS = {"06_vaes.ipynb": 2, "09_stylegan.ipynb": 2}  # lesson -> its slider explorers (latent; mixing, truncation)
RUN_TIMEOUT_S = 300       # all cells of one lesson (smoke profile: well under a minute here)
STEP_TIMEOUT_S = 60       # anything else the page waits for: loading, kernel start, one redraw
pytestmark = [pytest.mark.slow, pytest.mark.timeout(RUN_TIMEOUT_S + 300)]

# JavaScript run in the page; JupyterLab is reachable as window.jupyterapp (--LabApp.expose_app_in_browser).
FIND_PANEL = """path => {
    window.lessonPanel = () => {
        for (const widget of window.jupyterapp.shell.widgets('main')) {
            if (widget.context && widget.context.path === path) return widget;
        }
        return null;
    };
}"""
KERNEL_IDLE = """() => {
    const panel = window.lessonPanel();
    const kernel = panel && panel.context.isReady && panel.sessionContext.session && panel.sessionContext.session.kernel;
    return !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
}"""
RUN = """command => {
    window.lessonCommand = null;
    const panel = window.lessonPanel();
    window.jupyterapp.shell.activateById(panel.id);
    window.jupyterapp.commands.execute(command).then(
        result => { window.lessonCommand = {ok: result !== false}; },
        error => { window.lessonCommand = {error: String(error)}; });
}"""
CELLS = """() => {
    const cells = window.lessonPanel().content.model.cells;
    const found = [];
    for (let i = 0; i < cells.length; i++) {
        const cell = cells.get(i);
        if (cell.type !== 'code') continue;
        const outputs = cell.outputs.toJSON().map(o => ({
            type: o.output_type, name: o.name || null, ename: o.ename || null, evalue: o.evalue || null,
            text: Array.isArray(o.text) ? o.text.join('') : (o.text || ''),
            traceback: (o.traceback || []).join('\\n'), mimes: Object.keys(o.data || {})}));
        found.push({index: i, count: cell.executionCount, outputs: outputs});
    }
    return found;
}"""


def playwright_or_skip():
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's package as root (`apt-get install -y chromium`; "
                    ".ci/run does it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed "
                                   "(`pip install -r requirements.txt`; never `playwright install`)")
    return sync_api.sync_playwright


def run_command(page, command: str, timeout_s: float) -> None:
    """Run a JupyterLab command on the lesson and wait until it finished and the kernel is idle."""
    page.evaluate(RUN, command)
    page.wait_for_function("() => window.lessonCommand !== null", timeout=timeout_s * 1000, polling=500)
    outcome = page.evaluate("() => window.lessonCommand")
    assert "error" not in outcome, f"{command} failed in JupyterLab: {outcome['error']}"
    page.wait_for_function(KERNEL_IDLE, timeout=STEP_TIMEOUT_S * 1000, polling=250)


def describe(output: dict) -> str:
    if output["type"] == "error":
        return f"{output['ename']}: {output['evalue']}\n{output['traceback'][-2000:]}"
    return output["text"][-2000:]


def picture_change(before_src: str, after_src: str) -> float:
    """The fraction of pixels below the title band (the top quarter) that differ between two PNG data URIs.

    The inline backend crops a figure to what is drawn, so a title that grows to the left makes the
    PNG wider; the two are compared aligned at their bottom-right corner, over the common size."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    before, after = (np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))
                     for src in (before_src, after_src))
    height, width = min(before.shape[0], after.shape[0]), min(before.shape[1], after.shape[1])
    before, after = before[-height:, -width:], after[-height:, -width:]
    below_title = slice(height // 4, None)
    return float((before[below_title] != after[below_title]).any(axis=-1).mean())


def move_slider_and_check_redraw(page, explorer, slider, shots: Path, name: str) -> None:
    """Send the slider's handle to its farther end with the keyboard (Home or End, as a learner can);
    the readout must change and the picture, not only its title, be redrawn."""
    image = explorer.locator(".widget-output img").first
    readout = slider.locator(".widget-readout")
    before_src, before_value = image.get_attribute("src"), readout.inner_text()
    explorer.screenshot(path=shots / f"{name}_before.png")
    handle = slider.locator(".noUi-handle").first
    low, now, high = (float(handle.get_attribute(f"aria-value{end}")) for end in ("min", "now", "max"))
    handle.press("End" if high - now > now - low else "Home")
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while time.monotonic() < deadline:   # the kernel redraws; the Output widget swaps its image
        current = explorer.locator(".widget-output img")
        if current.count() and current.first.get_attribute("src") not in (None, before_src):
            break
        if "Traceback" in explorer.locator(".widget-output").first.inner_text():
            break
        page.wait_for_timeout(250)
    after_value = readout.inner_text()
    shown = explorer.locator(".widget-output").first.inner_text()
    assert "Traceback" not in shown, f"{name}: redrawing for {after_value} raised in the kernel:\n{shown[-3000:]}"
    assert after_value != before_value, f"{name}: the keyboard did not move the slider (readout {before_value})"
    current = explorer.locator(".widget-output img")
    after_src = current.first.get_attribute("src") if current.count() else None
    assert after_src not in (None, before_src), \
        f"{name}: moving the slider from {before_value} to {after_value} did not redraw the picture"
    changed = picture_change(before_src, after_src)
    print(f"{name}: {before_value} -> {after_value}: {changed:.1%} of the picture below its title changed")
    assert changed > 0, \
        f"{name}: moving the slider from {before_value} to {after_value} changed only the title"
    page.wait_for_function(KERNEL_IDLE, timeout=STEP_TIMEOUT_S * 1000, polling=250)
    explorer.screenshot(path=shots / f"{name}_after.png")


@pytest.mark.parametrize("lesson", sorted(EXPLORERS))
def test_lesson_runs_in_jupyterlab_and_its_sliders_redraw_their_pictures(lesson, start_lab, tmp_path):
    sync_playwright = playwright_or_skip()
    served = tmp_path / "served" / "notebooks"   # a copy: nothing the browser does can change the repository
    served.mkdir(parents=True)
    shutil.copy2(ROOT / "notebooks" / lesson, served / lesson)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"screenshots of {lesson}: {shots}")
    server = start_lab(env={"COURSE_PROFILE": "smoke", "COURSE_HEADLESS": "0", "MPLBACKEND": None},
                       args=["--LabApp.expose_app_in_browser=True"], root=served.parent)
    path = f"notebooks/{lesson}"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True,
                                             timeout=STEP_TIMEOUT_S * 1000)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(STEP_TIMEOUT_S * 1000)
            page_errors: list[str] = []
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.goto(f"{server.url}lab/tree/{path}?token={server.token}")
            page.wait_for_function("() => !!(window.jupyterapp && window.jupyterapp.shell)", polling=250)
            page.evaluate(FIND_PANEL, path)
            page.wait_for_function("() => !!window.lessonPanel()", polling=250)
            page.wait_for_function(KERNEL_IDLE, polling=250)   # the kernel started (python3, this environment)

            run_command(page, "notebook:clear-all-cell-outputs", STEP_TIMEOUT_S)
            assert not any(cell["outputs"] for cell in page.evaluate(CELLS)), "Clear Outputs left outputs behind"
            run_command(page, "notebook:run-all-cells", RUN_TIMEOUT_S)
            cells = page.evaluate(CELLS)
            page.screenshot(path=shots / "lesson_end.png")

            errors = [f"cell {cell['index']}: {describe(o)}" for cell in cells for o in cell["outputs"]
                      if o["type"] == "error"]
            assert not errors, f"{lesson} shows errors in JupyterLab:\n" + "\n\n".join(errors)
            not_run = [cell["index"] for cell in cells if cell["count"] is None]
            assert not not_run, f"{lesson}: cells {not_run} did not run"
            warnings = [f"cell {cell['index']}: {o['text'].strip()[:300]}" for cell in cells for o in cell["outputs"]
                        if o["type"] == "stream" and o["name"] == "stderr"]
            print(f"{lesson}: {len(cells)} code cells ran; stderr output of {len(warnings)}:", *warnings, sep="\n  ")
            mimes = [mime for cell in cells for o in cell["outputs"] for mime in o["mimes"]]
            assert "image/png" in mimes, f"{lesson} showed no figure (is the inline matplotlib backend in use?)"
            assert "application/vnd.jupyter.widget-view+json" in mimes, f"{lesson} displayed no widget"

            notebook = page.locator(".jp-NotebookPanel:visible .jp-Notebook")
            for broken in ("Error displaying widget", "Error rendering output item"):
                assert notebook.get_by_text(broken).count() == 0, f"{lesson}: JupyterLab says {broken!r}"
            explorers = notebook.locator(".jp-OutputArea-output").filter(has=page.locator(".widget-slider")) \
                                .filter(has=page.locator(".widget-output img"))
            assert explorers.count() == EXPLORERS[lesson], \
                (f"{lesson}: expected {EXPLORERS[lesson]} explorers (sliders above a picture), found "
                 f"{explorers.count()}; {notebook.locator('.widget-slider').count()} sliders in all")
            for k in range(explorers.count()):
                explorer = explorers.nth(k)
                explorer.scroll_into_view_if_needed()
                sliders = explorer.locator(".widget-slider")
                assert sliders.count() >= 1
                for s in range(sliders.count()):
                    move_slider_and_check_redraw(page, explorer, sliders.nth(s), shots,
                                                 f"{lesson.split('_')[0]}_explorer{k}_slider{s}")
            if page_errors:
                print(f"{lesson}: JavaScript errors in the page (not failed):", *page_errors, sep="\n  ")
        finally:
            browser.close()
