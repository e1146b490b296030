"""The batch runner and its engines, on real photos with a real face detector."""

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image
from skimage import data

from faceforge.errors import ParameterError
from faceforge.runner import WorkItem as Item
from faceforge.runner import (
    Engine,
    LocalEngine,
    SerialEngine,
    apply,
    engine_names,
    frame_key,
    get_engine,
    register_engine,
    run,
    run_items,
)
from faceforge.runner import engines as engines_mod

LOADS = 0  # detector loads in this process


class CountFaces:
    """A face task as the commands write them: the detector is loaded lazily, once per process."""

    def __init__(self, fail_on: str = "") -> None:
        self.fail_on = fail_on
        self._detector = None

    def __call__(self, image, frame):
        global LOADS
        if self.fail_on and self.fail_on in frame.source:
            raise RuntimeError("this task does not like cats")
        if self._detector is None:
            from faceforge.detectors import get_detector

            self._detector = get_detector("yunet")
            LOADS += 1
        return {"faces": len(self._detector.detect(image)), "pid": os.getpid(), "loads": LOADS}


@pytest.fixture(scope="module")
def photos(tmp_path_factory, astronaut, grace):
    import cv2

    root = tmp_path_factory.mktemp("runner")
    Image.fromarray(astronaut).save(root / "a_astronaut.png")
    Image.fromarray(data.coffee()).save(root / "b_coffee.jpg")
    Image.fromarray(grace).save(root / "c_grace.jpg")
    Image.fromarray(data.chelsea()).save(root / "d_cat.png")
    for i in range(4):
        Image.fromarray(np.roll(astronaut, 30 * (i + 1), axis=1)).save(root / f"e_moved{i}.jpg")
    (root / "f_cut.jpg").write_bytes((root / "b_coffee.jpg").read_bytes()[:200])
    vw = cv2.VideoWriter(str(root / "g_clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (512, 512))
    for i in range(3):
        vw.write(np.ascontiguousarray(np.roll(astronaut, 8 * i, axis=1)[:, :, ::-1]))
    vw.release()
    return root


def _rows(outcomes):
    return [(o.item.source, o.item.index, None if o.value is None else o.value["faces"], o.error)
            for o in outcomes]


def test_serial_and_local_engines_give_the_same_outcomes_in_order(photos):
    serial = run(CountFaces(), photos, engine="serial")
    local = run(CountFaces(), photos, engine=LocalEngine(2))
    rows = _rows(serial)
    assert rows == _rows(local)
    assert [r[0].rsplit("/", 1)[1] for r in rows] == ["a_astronaut.png", "b_coffee.jpg", "c_grace.jpg", "d_cat.png",
                                                      *[f"e_moved{i}.jpg" for i in range(4)], "f_cut.jpg",
                                                      "g_clip.avi", "g_clip.avi", "g_clip.avi"]
    faces = {r[0].rsplit("/", 1)[1] + f":{r[1]}": r[2] for r in rows}
    assert faces["a_astronaut.png:0"] == faces["c_grace.jpg:0"] == faces["g_clip.avi:2"] == 1
    assert faces["b_coffee.jpg:0"] == 0
    # the cut file is reported on its own outcome and in skipped, the run goes on
    assert rows[8][2] is None and "f_cut.jpg" in rows[8][3] and "corrupt or truncated" in rows[8][3]
    assert [(s.source, s.kind) for s in local.skipped] == [(str(photos / "f_cut.jpg"), "failed")]


def test_the_task_is_sent_once_per_worker_and_loads_its_model_once(photos):
    outs = list(run(CountFaces(), photos, engine=LocalEngine(2)))
    by_pid = {}
    for o in outs:
        if o.value is not None:
            by_pid.setdefault(o.value["pid"], set()).add(o.value["loads"])
    assert os.getpid() not in by_pid and 1 <= len(by_pid) <= 2
    assert all(loads == {1} for loads in by_pid.values())


def test_errors_are_reported_per_item_never_raised(photos):
    outs = list(run(CountFaces(fail_on="cat"), photos, engine=LocalEngine(2)))
    bad = [o for o in outs if o.error]
    assert [o.item.source for o in bad] == [str(photos / "d_cat.png"), str(photos / "f_cut.jpg")]
    assert bad[0].error == f"{photos / 'd_cat.png'}: RuntimeError: this task does not like cats"
    assert sum(o.ok for o in outs) == len(outs) - 2
    assert apply(lambda item: 1 / 0, Item("x.png")).error == "x.png: ZeroDivisionError: division by zero"


def test_resumption_skips_done_keys(photos):
    first = list(run(CountFaces(), photos, engine="serial"))
    done = {frame_key(o.item) for o in first[:5]}
    again = run(CountFaces(), photos, engine="serial", done=done)
    rest = list(again)
    assert again.resumed == 5 and _rows(rest) == _rows(first[5:])
    by_name = run(CountFaces(), photos, engine="serial", key=lambda f: f.name, done={"d_cat.png"})
    assert [o.item.name for o in by_name if "cat" in o.item.name] == [] and by_name.resumed == 1
    videos_done = run(CountFaces(), photos, engine="serial", skip=lambda f: f.source.endswith(".avi"))
    assert len(list(videos_done)) == len(first) - 3 and videos_done.resumed == 3


def test_work_items_made_by_the_caller(photos):
    files = sorted(str(p) for p in photos.iterdir() if p.suffix != ".avi")
    outs = list(run_items(CountFaces(), [Item(f) for f in files], engine="serial"))
    assert [o.item.source for o in outs] == files and all(o.item.image is None for o in outs)
    assert _rows([o for o in outs if o.ok]) == _rows([o for o in run(CountFaces(), files, engine="serial") if o.ok])


class ThreadEngine:
    """Another engine, plugged in by name without touching any command."""

    name = "threads"

    def __init__(self, workers=None):
        self.workers = workers or 2

    def map(self, fn, items):
        with ThreadPoolExecutor(self.workers) as pool:
            yield from pool.map(lambda it: apply(fn, it), items)


def test_engines_are_chosen_by_name(photos, monkeypatch):
    assert {"local", "serial"} <= set(engine_names())
    assert isinstance(get_engine("serial"), SerialEngine) and get_engine("local", workers=3).workers == 3
    assert isinstance(get_engine("local"), Engine) and isinstance(ThreadEngine(), Engine)
    with pytest.raises(ParameterError, match="Did you mean 'local'"):
        get_engine("locl")
    register_engine("threads", ThreadEngine)
    try:
        monkeypatch.setenv("FACEFORGE_ENGINE", "threads")
        r = run(CountFaces(), photos)
        assert r.engine.name == "threads"
        assert _rows(r) == _rows(run(CountFaces(), photos, engine="serial"))
    finally:
        engines_mod._ENGINES.pop("threads")


def test_a_live_stream_runs_through_the_runner_and_stops_cleanly(mjpeg_stream):
    r = run(CountFaces(), mjpeg_stream, engine="serial")
    assert r.source.live and r.total is None
    got = []
    for o in r:
        got.append(o)
        if len(got) == 5:
            break
    assert [o.value["faces"] for o in got] == [1] * 5
    assert [o.item.index for o in got] == sorted(o.item.index for o in got)
    assert not r._capture._thread.is_alive()                    # the stream was released
