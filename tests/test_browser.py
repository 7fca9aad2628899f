"""End to end in a real browser: JupyterLab + Debian's Chromium driven by Playwright.

Opens a copy of notebooks/02_hole_simulation.ipynb, runs its cells, draws a lasso with
the mouse on the bokeh map, clicks "save", and checks the saved mask covers what was
drawn. The screenshot lands in runs/test-artifacts/. Skipped (with the reason) only
when Chromium or Playwright is missing outside CI; under CI=true it must run.
"""
from __future__ import annotations

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
# The lasso, in degrees: a circle in the open Pacific, well inside the 1° global field.
CENTRE, RADIUS = (-140.0, 0.0), 20.0


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


def _notebook_copy(folder: Path, run_dir: Path) -> Path:
    """02 with papermill-style injected parameters: a quick run in the temp folder."""
    nb = nbformat.read(REPO / "notebooks" / "02_hole_simulation.ipynb", as_version=4)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    # the inpainting seed's global 1° field: the lasso below is drawn in its degrees
    injected = nbformat.v4.new_code_cell(f"arch = 'unet'\nquick = True\nrun_dir = {str(run_dir)!r}")
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(at + 1, injected)
    assert any("geonb.draw_mask(run)" in c.source for c in nb.cells), "02 lost its drawing cell"
    path = folder / "02_hole_simulation.ipynb"
    nbformat.write(nb, path)
    return path


# JS: the bokeh figure's data → page pixel mapping (the frame's scales plus the canvas offset).
TO_PAGE = """(pts) => {
  const fig = [...window.Bokeh.index.all_views()].find(v => v.model.type === "Figure");
  const box = fig.canvas_view.el.getBoundingClientRect();
  return pts.map(([x, y]) => [box.left + fig.frame.x_scale.compute(x), box.top + fig.frame.y_scale.compute(y)]);
}"""
ACTIVE_DRAG = ("() => [...window.Bokeh.index.all_views()].find(v => v.model.type === 'Figure')"
               ".model.toolbar.active_drag?.type")
KERNEL_IDLE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === "idle" && k.connectionStatus === "connected";
}"""


@pytest.mark.slow
def test_draw_and_save_in_jupyterlab(tmp_path):
    sync_playwright = _playwright()
    started = time.perf_counter()
    run_dir = tmp_path / "run"
    notebook = _notebook_copy(tmp_path, run_dir)
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
    shot = ARTIFACTS / "browser_draw_mask.png"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            offline = []  # requests that left the machine (CDNs): plots must not need any
            page.on("requestfailed", lambda r: offline.append(r.url) if "127.0.0.1" not in r.url else None)
            try:
                url = f"http://127.0.0.1:{port}/lab/tree/{notebook.name}"
                for _ in range(120):  # the server takes a few seconds to listen
                    try:
                        page.goto(url)
                        break
                    except Exception:
                        time.sleep(0.25)
                page.wait_for_function(KERNEL_IDLE, timeout=60_000)
                page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
                page.get_by_role("button", name="save", exact=True).wait_for(timeout=90_000)
                page.wait_for_function("() => window.Bokeh && [...window.Bokeh.index.all_views()]"
                                       ".some(v => v.model.type === 'Figure')", timeout=30_000)
                page.get_by_role("button", name="save", exact=True).scroll_into_view_if_needed()
                page.locator(".bk-Figure, .bk-Canvas").first.scroll_into_view_if_needed()
                angles = np.linspace(0, 2 * np.pi, 40)
                lasso = [[CENTRE[0] + RADIUS * np.cos(a), CENTRE[1] + RADIUS * np.sin(a)] for a in angles]
                pixels = page.evaluate(TO_PAGE, lasso)
                page.mouse.move(*pixels[0])
                page.mouse.down()
                for x, y in pixels[1:]:
                    page.mouse.move(x, y, steps=2)
                page.mouse.up()
                page.wait_for_timeout(500)  # let the drawn shape reach the kernel
                page.get_by_role("button", name="save", exact=True).click()
                mask_file = run_dir / "inpaint" / "drawn_mask.nc"
                page.wait_for_selector("text=hole cells to", timeout=20_000)
                page.screenshot(path=str(shot))
                # The tool choice reaches the live bokeh toolbar through the widget comm.
                page.get_by_role("button", name="box", exact=True).click()
                page.wait_for_function(f"() => ({ACTIVE_DRAG})() === 'BoxEditTool'", timeout=10_000)
            except Exception:
                page.screenshot(path=str(shot))
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
    print(f"browser test: {elapsed:.1f} s; screenshot {shot}")

    assert not offline, f"the page asked the network for {offline}; load resources inline"
    assert mask_file.exists(), f"no mask saved; JupyterLab log: {(tmp_path / 'jupyter.log').read_text()[-2000:]}"
    mask = xr.open_dataset(mask_file)["mask"].load()
    field = xr.open_dataset(run_dir / "inpaint" / "field.nc")["field"]
    np.testing.assert_array_equal(mask.lat.values, field.lat.values)
    np.testing.assert_array_equal(mask.lon.values, field.lon.values)
    lat, lon = mask.lat.values, mask.lon.values
    lon2, lat2 = np.meshgrid(lon, lat)
    distance = np.hypot(lon2 - CENTRE[0], lat2 - CENTRE[1])
    drawn = mask.values.astype(bool)
    # Mouse positions are rounded to pixels (~0.5° here): judge a margin of 3° each side.
    assert drawn[distance < RADIUS - 3].all(), "cells well inside the drawn lasso are not all set"
    assert not drawn[distance > RADIUS + 3].any(), "cells far outside the drawn lasso are set"
    expected = rasterise_polygon(*np.array(lasso).T, lat, lon)
    assert (drawn != expected).sum() < 0.15 * expected.sum(), "saved mask differs from the drawn lasso"
    assert elapsed < 120, f"browser test took {elapsed:.0f} s; keep it well under 2 minutes"

