"""End to end in a real browser: JupyterLab + Debian's Chromium driven by Playwright.

Opens copies of notebooks/02_hole_simulation.ipynb and 01_data_prep.ipynb (one run folder),
runs 02, draws a lasso with the mouse on the bokeh map, clicks "save", and checks the saved
mask covers what was drawn; runs 01 and checks its explore map is drawn. Then, in the same two
kernels, it reloads the page and re-runs 02's drawing cell, and reloads again and re-runs 01's
explore cell: each map must be drawn again (a filled canvas, no "Failed to create view") and a
second lasso must save. Screenshots land in runs/test-artifacts/. Skipped (with the reason) only when Chromium
or Playwright is missing outside CI; under CI=true it must run.
"""
from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
import xarray as xr

from geonb.rasterise import rasterise_polygon

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "runs" / "test-artifacts"
# The lassos, in degrees: circles in the open Pacific and the southern Indian Ocean, well
# inside the 1° global field. The second is drawn after the page reload.
CENTRE, RADIUS = (-140.0, 0.0), 20.0
CENTRE2, RADIUS2 = (75.0, -30.0), 12.0
NB01, NB02 = "01_data_prep.ipynb", "02_hole_simulation.ipynb"
EXPLORE_CELL, DRAW_CELL = "geonb.explore(run)", "geonb.draw_mask(run)"
# What a view that did not render leaves in its output (widget manager, JupyterLab's JS renderer).
BROKEN = ("Failed to create view", "Javascript Error", "Error displaying widget", "Click to show javascript error")


def _playwright():
    reasons = []
    if not Path(CHROMIUM).exists():
        reasons.append(f"{CHROMIUM} missing (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
        reasons.append("playwright missing (pip install playwright; never `playwright install`)")
    if reasons:
        if os.environ.get("CI", "").lower() in ("1", "true"):
            pytest.fail("browser test must run under CI: " + "; ".join(reasons))
        pytest.skip("; ".join(reasons))
    return sync_playwright


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _notebook_copy(folder: Path, run_dir: Path, name: str, cell: str) -> Path:
    """A notebook with papermill-style injected parameters: a quick run in the temp folder."""
    nb = nbformat.read(REPO / "notebooks" / name, as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    # the inpainting seed's global 1° field: the lassos are drawn in its degrees
    injected = nbformat.v4.new_code_cell(f"arch = 'unet'\nquick = True\nrun_dir = {str(run_dir)!r}")
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(at + 1, injected)
    assert any(cell in c.source for c in nb.cells), f"{name} lost its {cell} cell"
    path = folder / name
    nbformat.write(nb, path)
    return path


# JS: the newest bokeh figure view (the one just rendered), and its data → page pixel mapping.
NEWEST = "[...window.Bokeh.index.all_views()].filter(v => v.model.type === 'Figure').at(-1)"
FIGURE_IDS = ("() => window.Bokeh ? [...window.Bokeh.index.all_views()]"
              ".filter(v => v.model.type === 'Figure').map(v => v.model.id) : []")
NEW_FIGURE = """(old) => !!window.Bokeh && [...window.Bokeh.index.all_views()]
  .some(v => v.model.type === "Figure" && !old.includes(v.model.id))"""
TO_PAGE = f"""(pts) => {{
  const fig = {NEWEST};
  const box = fig.canvas_view.el.getBoundingClientRect();
  return pts.map(([x, y]) => [box.left + fig.frame.x_scale.compute(x), box.top + fig.frame.y_scale.compute(y)]);
}}"""
FRAME = f"""() => {{
  const fig = {NEWEST};
  fig.canvas_view.el.scrollIntoView({{block: "center"}});
  const box = fig.canvas_view.el.getBoundingClientRect(), f = fig.frame.bbox;
  return {{x: box.left + f.left, y: box.top + f.top, width: f.width, height: f.height}};
}}"""
ACTIVE_DRAG = f"() => ({NEWEST}).model.toolbar.active_drag?.type"
CURRENT = "window.jupyterapp && window.jupyterapp.shell.currentWidget"
KERNEL_IDLE = f"""(path) => {{
  const w = {CURRENT};
  const k = w && w.context && w.context.path === path && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === "idle" && k.connectionStatus === "connected";
}}"""
KERNEL_ID = f"() => ({CURRENT}).sessionContext.session.kernel.id"
CURRENT_ID = f"() => ({CURRENT}).id"
# After a reload JupyterLab restores the tabs it had; only then open ours and bring it to the front.
OPEN = """async (path) => {
  const app = window.jupyterapp;
  await app.restored;
  const widget = await app.commands.execute("docmanager:open", {path});
  app.shell.activateById(widget.id);
}"""
RUN_CELL = f"""(text) => {{
  const nb = ({CURRENT}).content;
  const i = nb.widgets.findIndex(c => c.model.sharedModel.getSource().includes(text));
  if (i < 0) throw new Error("no cell with " + text);
  nb.activeCellIndex = i;
  window.jupyterapp.commands.execute("notebook:run-cell");
}}"""


def _open(page, name: str) -> str:
    """Open (or show) a notebook, wait for its kernel; returns the kernel id."""
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.commands.hasCommand('docmanager:open')",
                           timeout=60_000)
    page.evaluate(OPEN, name)
    page.wait_for_function(KERNEL_IDLE, arg=name, timeout=60_000)
    return page.evaluate(KERNEL_ID)


def _broken(page, where=None) -> list[str]:
    """The error texts views left in the page or in ``where`` (scrolled into view for the screenshot)."""
    found = []
    for text in BROKEN:
        hits = (where or page).get_by_text(text)
        if hits.count():
            hits.first.scroll_into_view_if_needed()
            box = hits.first.element_handle().evaluate_handle("e => e.parentElement").as_element()
            if text.startswith("Click"):  # ipywidgets' error view: a click shows the error
                hits.first.click()
                page.wait_for_timeout(300)
            found.append(" ".join(box.inner_text().split())[:300])
    return found


def _wait_for_map(page, old: list, what: str) -> None:
    """Wait for a new bokeh figure; fail with what the page shows instead if none comes."""
    try:
        page.wait_for_function(NEW_FIGURE, arg=old, timeout=60_000)
    except Exception:
        raise AssertionError(f"{what}: no bokeh figure rendered; the page shows {_broken(page) or 'nothing'}") from None


def _filled(page, shot: Path) -> float:
    """Screenshot the newest figure's frame; the share of its pixels that are not background."""
    from PIL import Image

    page.wait_for_function(f"() => ({NEWEST}).frame.bbox.width > 0", timeout=10_000)  # laid out, shown
    page.wait_for_timeout(300)  # let the canvas paint
    rgb = np.asarray(Image.open(io.BytesIO(page.screenshot(clip=page.evaluate(FRAME)))).convert("RGB"), float)
    page.screenshot(path=str(shot))
    return float((np.abs(rgb - 255).sum(-1) > 30).mean())


def _assert_not_broken(page, what: str) -> None:
    """The cell just run shows no error (other tabs may hold stale outputs of the old page)."""
    cell = page.locator(f"#{page.evaluate(CURRENT_ID)} .jp-Cell.jp-mod-active")
    assert cell.count() == 1, "cannot find the cell just run"
    shown = _broken(page, cell)
    assert not shown, f"{what}: the cell shows {shown}"


def _draw_and_save(page, centre, radius, shot: Path) -> list:
    save = page.get_by_role("button", name="save", exact=True)
    save.scroll_into_view_if_needed()
    page.evaluate(f"() => ({NEWEST}).canvas_view.el.scrollIntoView({{block: 'center'}})")
    angles = np.linspace(0, 2 * np.pi, 40)
    lasso = [[centre[0] + radius * np.cos(a), centre[1] + radius * np.sin(a)] for a in angles]
    pixels = page.evaluate(TO_PAGE, lasso)
    page.mouse.move(*pixels[0])
    page.mouse.down()
    for x, y in pixels[1:]:
        page.mouse.move(x, y, steps=2)
    page.mouse.up()
    page.wait_for_timeout(500)  # let the drawn shape reach the kernel
    save.click()
    page.wait_for_selector("text=hole cells to", timeout=20_000)
    page.screenshot(path=str(shot))
    return lasso


def _reload_and_rerun(page, port: int, name: str, cell: str, kernel: str, shot: Path) -> float:
    """Reload the page on a notebook, re-run its view cell in the same kernel; the map's fill.

    It loads the notebook's own URL, as reloading a tab showing it does (JupyterLab shows the
    URL's notebook last, whatever the test asks for before)."""
    page.goto(f"http://127.0.0.1:{port}/lab/tree/{name}")
    assert _open(page, name) == kernel, f"the reload gave {name} a new kernel"
    old = page.evaluate(FIGURE_IDS)
    page.evaluate(RUN_CELL, cell)
    try:
        _wait_for_map(page, old, f"{name} {cell} after a reload")
    except AssertionError as first:
        # Known race, not fixed: on a heavily loaded machine the drawer's jupyter_bokeh view can be created
        # before the page has evaluated the inline BokehJS sent just before it ("reading 'require'"). Re-running
        # the cell (as a user would) must then work; a second failure is a real one.
        if "reading 'require'" not in str(first):
            raise
        page.evaluate(RUN_CELL, cell)
        _wait_for_map(page, page.evaluate(FIGURE_IDS), f"{name} {cell} re-run after a reload")
    _assert_not_broken(page, f"{name} {cell} after a reload")
    return _filled(page, shot)


def _check_mask(mask, lassos, field) -> None:
    np.testing.assert_array_equal(mask.lat.values, field.lat.values)
    np.testing.assert_array_equal(mask.lon.values, field.lon.values)
    lat, lon = mask.lat.values, mask.lon.values
    lon2, lat2 = np.meshgrid(lon, lat)
    drawn = mask.values.astype(bool)
    expected = np.zeros_like(drawn)
    inside, outside = np.zeros_like(drawn), np.ones_like(drawn)
    for (centre, radius), lasso in lassos:
        distance = np.hypot(lon2 - centre[0], lat2 - centre[1])
        # Mouse positions are rounded to pixels (~0.5° here): judge a margin of 3° each side.
        inside |= distance < radius - 3
        outside &= distance > radius + 3
        expected |= rasterise_polygon(*np.array(lasso).T, lat, lon)
    assert drawn[inside].all(), "cells well inside the drawn lassos are not all set"
    assert not drawn[outside].any(), "cells far outside the drawn lassos are set"
    assert (drawn != expected).sum() < 0.15 * expected.sum(), "saved mask differs from the drawn lassos"


@pytest.mark.slow
def test_draw_and_save_in_jupyterlab_and_after_a_reload(tmp_path):
    sync_playwright = _playwright()
    started = time.perf_counter()
    run_dir = tmp_path / "run"
    _notebook_copy(tmp_path, run_dir, NB02, DRAW_CELL)
    _notebook_copy(tmp_path, run_dir, NB01, EXPLORE_CELL)
    env = dict(os.environ)
    for var in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR", "MPLCONFIGDIR"):
        env[var] = str(tmp_path / var.lower())
    port = _free_port()
    log = open(tmp_path / "jupyter.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip", "127.0.0.1",
         "--port", str(port), "--ServerApp.token=", "--ServerApp.password=", f"--ServerApp.root_dir={tmp_path}",
         "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shots = {k: ARTIFACTS / f"browser_{k}.png" for k in ("draw_mask", "explore", "reload_explore", "reload_draw_mask")}
    mask_file = run_dir / "inpaint" / "drawn_mask.nc"
    filled, lassos = {}, []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            offline = []  # requests that left the machine (CDNs): plots must not need any
            page.on("requestfailed", lambda r: offline.append(r.url) if "127.0.0.1" not in r.url else None)
            step = "draw_mask"
            try:
                url = f"http://127.0.0.1:{port}/lab/tree/{NB02}"
                for _ in range(120):  # the server takes a few seconds to listen
                    try:
                        page.goto(url)
                        break
                    except Exception:
                        time.sleep(0.25)
                page.wait_for_function(KERNEL_IDLE, arg=NB02, timeout=60_000)
                kernels = {NB02: page.evaluate(KERNEL_ID)}
                # 02 in a fresh kernel: its drawing cell is the kernel's first bokeh view.
                page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
                page.get_by_role("button", name="save", exact=True).wait_for(timeout=90_000)
                _wait_for_map(page, [], "02's drawer")
                lassos.append(((CENTRE, RADIUS), _draw_and_save(page, CENTRE, RADIUS, shots[step])))
                first_mask = xr.open_dataset(mask_file)["mask"].load()
                # The tool choice reaches the live bokeh toolbar through the widget comm.
                page.get_by_role("button", name="box", exact=True).click()
                page.wait_for_function(f"() => ({ACTIVE_DRAG})() === 'BoxEditTool'", timeout=10_000)

                step = "explore"  # 01 on the same run folder: its explore map
                kernels[NB01] = _open(page, NB01)
                old = page.evaluate(FIGURE_IDS)
                page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
                _wait_for_map(page, old, "01's explore view")
                filled[step] = _filled(page, shots[step])

                # A reload empties the page (no BokehJS, no comm handlers); the kernels live on.
                # One reload before each view, so each must bring what it needs to a bare page.
                step = "reload_draw_mask"
                filled[step] = _reload_and_rerun(page, port, NB02, DRAW_CELL, kernels[NB02], shots[step])
                lassos.append(((CENTRE2, RADIUS2), _draw_and_save(page, CENTRE2, RADIUS2, shots[step])))
                step = "reload_explore"
                filled[step] = _reload_and_rerun(page, port, NB01, EXPLORE_CELL, kernels[NB01], shots[step])
            except Exception:
                page.screenshot(path=str(shots[step]))
                raise
            finally:
                browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    elapsed = time.perf_counter() - started
    print(f"browser test: {elapsed:.1f} s; maps filled {filled}; screenshots {sorted(map(str, shots.values()))}")

    assert not offline, f"the page asked the network for {offline}; load resources inline"
    # A drawn map is mostly coloured cells (land is blank); an empty canvas is all background.
    assert all(v > 0.3 for v in filled.values()), f"a map was not drawn (share of coloured pixels: {filled})"
    field = xr.open_dataset(run_dir / "inpaint" / "field.nc")["field"]
    _check_mask(first_mask, lassos[:1], field)
    # The drawer after the reload started from the saved mask: it now holds both lassos.
    assert mask_file.exists(), f"no mask saved; JupyterLab log: {(tmp_path / 'jupyter.log').read_text()[-2000:]}"
    _check_mask(xr.open_dataset(mask_file)["mask"].load(), lassos, field)
    assert (mask_file.parent / "drawn_mask.previous.nc").exists(), "the first mask was not kept as a backup"
    assert elapsed < 180, f"browser test took {elapsed:.0f} s; keep it well under 3 minutes"
