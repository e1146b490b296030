"""The web page end to end, as a person would use it: headless Chromium (selenium) with a fake webcam
that plays a video of the astronaut, against the real service on a local port.

Set ``FACEFORGE_WEB_SCREENSHOTS=/some/dir`` to save screenshots of the steps there.
"""

from __future__ import annotations

import os
import re
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from conftest import CHROMEDRIVER, CHROMIUM, chromium, serve_app, shared_path


webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install 'faceforge[test]')")
if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip(f"needs Chromium at {CHROMIUM} and chromedriver at {CHROMEDRIVER} "
                "(Debian: apt-get install chromium chromium-driver)", allow_module_level=True)

from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

SHOTS = os.environ.get("FACEFORGE_WEB_SCREENSHOTS")


# -- fixtures --------------------------------------------------------------------------------------
def write_y4m(path: Path, image: np.ndarray, frames: int = 20, size: int = 320) -> Path:
    """A Y4M clip (Chromium's fake webcam format) of ``image``: a 384-px window panning right 3 px a
    frame, scaled to ``size`` x ``size``, at 10 frames per second."""
    import cv2

    crop = 384
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{size} H{size} F10:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(frames):
            x = 40 + 3 * i
            win = np.ascontiguousarray(image[20:20 + crop, x:x + crop])
            rgb = cv2.resize(win, (size, size), interpolation=cv2.INTER_AREA)
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


@pytest.fixture(scope="module")
def webcam_clip(tmp_path_factory, astronaut) -> Path:
    return write_y4m(tmp_path_factory.mktemp("web") / "astronaut.y4m", astronaut)


@pytest.fixture(scope="module")
def browser(webcam_clip):
    driver = chromium("1360,1000", webcam_clip)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture()
def server(tmp_path):
    """The service on a free port of 127.0.0.1 (its home in tmp_path), run by uvicorn in a thread."""
    from faceforge.service import create_app

    with serve_app(create_app(home=tmp_path / "home")) as url:
        yield url


@pytest.fixture()
def page(browser, server):
    """The page, opened and ready; left (closing its WebSocket) after the test."""
    browser.get(server + "/")
    WebDriverWait(browser, 15).until(lambda d: d.execute_script("return document.body.dataset.ready === '1'"))
    try:
        yield browser
    finally:
        browser.get("about:blank")


# -- helpers ---------------------------------------------------------------------------------------
def el(driver, css: str):
    return driver.find_element(By.CSS_SELECTOR, css)


def text(driver, css: str) -> str:
    return driver.execute_script("const e = document.querySelector(arguments[0]); return e ? e.textContent : '';", css)


def diagnostics(driver) -> str:
    """What the page shows (errors, statuses) and what its console said, for failure messages."""
    parts = []
    for css in ("#train-error", "#train-status", "#live-error", "#live-status", "#live-labels", "#people-error",
                "#people-report", "#people-empty"):
        t = text(driver, css).strip()
        if t:
            parts.append(f"{css}: {t}")
    try:
        logs = driver.get_log("browser")
        parts += [f"console {e['level']}: {e['message']}" for e in logs[-15:]]
    except Exception:  # noqa: BLE001 - logs are a bonus
        pass
    return "\n".join(parts) or "(nothing on the page)"


def wait_for(driver, condition, timeout: float, what: str):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.25).until(lambda d: condition(d))
    except TimeoutException:
        pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{diagnostics(driver)}")


def type_into(driver, css: str, value: str) -> None:
    e = el(driver, css)
    e.clear()
    e.send_keys(value)


def set_checked(driver, css: str, on: bool) -> None:
    e = el(driver, css)
    if e.is_selected() != on:
        e.click()


def tab(driver, name: str) -> None:
    el(driver, f"#tab-{name}").click()
    wait_for(driver, lambda d: el(d, f"#panel-{name}").is_displayed(), 5, f"the {name} tab")


def video_ready(driver, css: str) -> bool:
    return bool(driver.execute_script("const v = document.querySelector(arguments[0]);"
                                      "return v && v.readyState >= 2 && v.videoWidth > 0;", css))


def shot(driver, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(SHOTS) / f"{name}.png"))


def run_live(driver, *, model: str | None = None, gallery: str | None = None, expect: str, timeout: float = 60) -> str:
    """Live tab: show ``model`` / ``gallery`` only, start, wait for ``expect`` in #live-labels, stop."""
    tab(driver, "live")
    if model:
        wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f'#live-models input[value="{model}"]'), 10,
                 f"model {model!r} in the Live tab")
        set_checked(driver, f'#live-models input[value="{model}"]', True)
    if gallery:
        wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f'#live-gallery option[value="{gallery}"]'), 10,
                 f"gallery {gallery!r} in the Live tab")
        Select(el(driver, "#live-gallery")).select_by_value(gallery)
    for attr in ("gender", "age", "emotion"):  # built-in attributes off: only what the test checks
        set_checked(driver, f"#live-attr-{attr}", False)
    el(driver, "#live-start").click()
    labels = wait_for(driver, lambda d: expect in text(d, "#live-labels") and text(d, "#live-labels"), timeout,
                      f"{expect!r} in #live-labels")
    wait_for(driver, lambda d: re.fullmatch(r"\d+(\.\d)?", text(d, "#live-fps")), 15, "an FPS reading")
    shot(driver, f"live-{expect}")
    el(driver, "#live-stop").click()
    wait_for(driver, lambda d: text(d, "#live-status") == "stopped", 5, "the live view to stop")
    assert not el(driver, "#live-error").is_displayed(), text(driver, "#live-error")
    return labels


# -- tests -----------------------------------------------------------------------------------------
@pytest.mark.shared
def test_train_from_webcam_then_live(page):
    others = sorted(p for p in shared_path("identity", "knn_examples", "train").glob("*/*")
                    if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    assert len(others) >= 4, "too few photos of other people in the shared data"
    d = page

    # the page starts with two classes (0 and 1); add a third and remove it again
    el(d, "#train-add-class").click()
    wait_for(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#class-2"), 5, "a third class")
    el(d, "#class-remove-2").click()
    assert not d.find_elements(By.CSS_SELECTOR, "#class-2")

    # class 0: the astronaut, from the webcam (hold to record, then one more capture)
    type_into(d, "#class-name-0", "astronaut")
    el(d, "#class-webcam-0").click()
    wait_for(d, lambda d: video_ready(d, "#train-video"), 20, "the webcam in the Train tab")
    ActionChains(d).click_and_hold(el(d, "#train-record")).pause(1.8).release().perform()
    el(d, "#train-capture").click()
    wait_for(d, lambda d: int(text(d, "#class-count-0")) >= 8, 10, ">= 8 webcam photos in class astronaut")

    # class 1: other people, uploaded from files
    type_into(d, "#class-name-1", "others")
    el(d, "#class-upload-1").send_keys("\n".join(str(p) for p in others))
    wait_for(d, lambda d: int(text(d, "#class-count-1")) == len(others), 10, "the uploaded photos in class others")
    shot(d, "train-classes")

    # train
    type_into(d, "#train-model-name", "webcam-test")
    Select(el(d, "#train-embedder")).select_by_value("dlib-resnet")
    assert "people apart" in text(d, "#train-embedder-help")
    Select(el(d, "#train-embedder")).select_by_value("auto")  # the default: the feature search
    assert "tries every feature set" in text(d, "#train-embedder-help")
    el(d, "#train-start").click()
    wait_for(d, lambda d: el(d, "#train-result").is_displayed() or el(d, "#train-error").is_displayed(), 240,
             "training to finish")
    assert not el(d, "#train-error").is_displayed(), text(d, "#train-error")
    accuracy = text(d, "#train-accuracy")
    assert re.fullmatch(r"\d+(\.\d)?%", accuracy), accuracy
    assert re.fullmatch(r"\d+(\.\d)?%", text(d, "#train-balanced"))
    table = text(d, "#train-confusion")
    assert "astronaut" in table and "others" in table
    # the headline is what users get, with its denominators; the rule and the leaderboard are shown
    assert text(d, "#train-headline").startswith("What you get: balanced accuracy") and " photos" in text(
        d, "#train-headline")
    assert "Rule: " in text(d, "#train-unknown")
    assert el(d, "#train-auto").is_displayed() and "How the features were chosen" in text(d, "#train-auto-summary")
    rows = d.execute_script("return [...document.querySelectorAll('#train-leaderboard tbody tr')]"
                            ".map((r) => [r.className, r.cells[0].textContent]);")
    assert len(rows) >= 3 and sum(c == "chosen" for c, _ in rows) == 1, rows
    assert "dlib-resnet" in [e for _, e in rows]
    shot(d, "train-result")

    labels = run_live(d, model="webcam-test", expect="astronaut")
    assert re.search(r"#\d+ astronaut \d\.\d\d", labels), labels


def test_enrol_from_webcam_then_live(page):
    d = page
    tab(d, "people")
    type_into(d, "#people-gallery", "crew")
    type_into(d, "#people-person", "eileen")
    el(d, "#people-camera-start").click()
    wait_for(d, lambda d: video_ready(d, "#people-video"), 20, "the webcam in the People tab")
    el(d, "#people-capture").click()
    time.sleep(0.5)  # another frame of the clip (the same bytes twice would be one face)
    el(d, "#people-capture").click()
    wait_for(d, lambda d: text(d, "#people-pending-count") == "2", 10, "2 webcam photos ready to enrol")
    el(d, "#people-enrol").click()
    faces = '#people-list tr[data-person="eileen"] td.person-faces'
    wait_for(d, lambda d: d.find_elements(By.CSS_SELECTOR, faces) and text(d, faces) == "2", 60,
             "eileen with 2 faces in the people list")
    assert "crew" in text(d, "#people-list-title")
    shot(d, "people")

    labels = run_live(d, gallery="crew", expect="eileen")
    assert re.search(r"#\d+ eileen \d\.\d\d", labels), labels


def test_every_tab_loads_and_a_photo_is_analysed(page, server, tmp_path, astronaut):
    """The page's ES modules are served as JavaScript, every tab opens without a script error, and
    the Photo tab analyses an uploaded photo (gender, age and emotion of the one face)."""
    from conftest import jpeg

    for name in ("main", "util", "api", "camera", "tabs", "faces", "train", "live", "photo", "people", "models"):
        with urllib.request.urlopen(f"{server}/static/{name}.js", timeout=5) as r:
            assert r.headers["content-type"].startswith("text/javascript"), (name, r.headers["content-type"])
    d = page
    for name in ("live", "photo", "people", "models", "train"):
        tab(d, name)
    tab(d, "models")
    wait_for(d, lambda d: "No models yet" in text(d, "#models-empty"), 10, "the empty model list")
    tab(d, "photo")
    path = tmp_path / "astronaut.jpg"
    path.write_bytes(jpeg(astronaut))
    el(d, "#photo-file").send_keys(str(path))
    wait_for(d, lambda d: text(d, "#photo-status") == "1 face found.", 60, "the photo to be analysed")
    table = text(d, "#photo-table")
    assert "female" in table and "happy" in table and "years" in table, table
    errors = [e["message"] for e in d.get_log("browser") if "Uncaught" in e["message"] or ".js" in e["message"]]
    assert not errors, errors


def test_the_accurate_box_analyses_with_the_accurate_preset(page, tmp_path, astronaut):
    """Ticking "Accurate (slower)" on the Photo tab sends quality=accurate: the age shown is the
    accurate preset's (six views), not the fast one's."""
    from conftest import jpeg
    from faceforge.attributes import Analyzer
    from faceforge.sources import load_image

    photo = jpeg(astronaut)
    ages = {q: round(Analyzer(["age"], quality=q).analyze(load_image(photo)).predictions["age"][0].value)
            for q in ("fast", "accurate")}
    assert ages["fast"] != ages["accurate"]
    path = tmp_path / "astronaut.jpg"
    path.write_bytes(photo)
    d = page
    tab(d, "photo")
    for q in ("fast", "accurate"):
        box = el(d, "#photo-accurate")
        if box.is_selected() != (q == "accurate"):
            box.click()
        d.execute_script("document.querySelector('#photo-status').textContent = ''")
        el(d, "#photo-file").send_keys(str(path))
        wait_for(d, lambda d: text(d, "#photo-status") == "1 face found.", 60, f"the {q} analysis")
        assert f"{ages[q]} years" in text(d, "#photo-table"), (q, ages, text(d, "#photo-table"))
