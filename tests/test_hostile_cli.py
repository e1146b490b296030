"""Hostile but fair use of the command line: outputs aimed at inputs, files of the wrong kind, inputs that
are all unreadable, and kills. Every case must end with a clear message naming the file, a non-zero exit
code, no traceback, and the inputs byte-identical."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import jpeg, write_panning_video
from faceforge.cli.main import app

runner = CliRunner()


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture()
def world(tmp_path, astronaut, grace, coffee):
    """X.jpg, Y.jpg, a model M.ffm, a photos/ tree of two people, a text file, unreadable files, a bad zip."""
    from faceforge.attributes import MODELS_DIR

    w = tmp_path / "w"
    w.mkdir()
    (w / "X.jpg").write_bytes(jpeg(astronaut))
    (w / "Y.jpg").write_bytes(jpeg(grace))
    shutil.copy(MODELS_DIR / "gender.ffm", w / "M.ffm")
    for person, img in (("amy", astronaut), ("bob", grace)):
        (w / "photos" / person).mkdir(parents=True)
        Image.fromarray(img).save(w / "photos" / person / f"{person}1.png")
        (w / "photos" / person / f"{person}2.jpg").write_bytes(jpeg(img[:, ::-1].copy()))
    (w / "notes.txt").write_text("not a photo, not a folder")
    (w / "bad").mkdir()
    (w / "bad" / "broken.jpg").write_bytes(jpeg(astronaut)[:300])
    (w / "bad" / "empty.jpg").write_bytes(b"")
    (w / "bad" / "fake.png").write_text("this is text")
    (w / "nofaces").mkdir()
    (w / "nofaces" / "coffee.jpg").write_bytes(jpeg(coffee))
    (w / "nofaces" / "broken.jpg").write_bytes(jpeg(coffee)[:300])
    (w / "empty.jpg").write_bytes(b"")
    with zipfile.ZipFile(w / "z.zip", "w") as z:
        z.writestr("a", b"a file called a")
        z.writestr("a/b.jpg", jpeg(astronaut))
    write_panning_video(w / "clip.avi", astronaut[::4, ::4].copy(), frames=2, step=4)
    return w


#: (case id, argv with {name} placeholders for files in the world, the text the message must show).
CASES = [
    # outputs aimed at inputs (before: the input was overwritten and the command exited 0)
    ("detect-jsonl-is-input", "detect {X.jpg} --jsonl {X.jpg}", "X.jpg"),
    ("classify-jsonl-is-input", "classify {M.ffm} {X.jpg} --jsonl {X.jpg} --workers 1", "X.jpg"),
    ("classify-jsonl-is-model", "classify {M.ffm} {X.jpg} --jsonl {M.ffm} --workers 1", "M.ffm"),
    ("analyze-jsonl-is-input", "analyze {X.jpg} -a gender --jsonl {X.jpg} --workers 1", "X.jpg"),
    ("analyze-jsonl-is-model", "analyze {X.jpg} -a gender -m {M.ffm} --jsonl {M.ffm} --workers 1", "M.ffm"),
    ("train-model-is-photo", "train {photos} -o {photos}/amy/amy1.png", "amy1.png"),
    ("evaluate-report-is-photo", "evaluate {M.ffm} {photos} --report {photos}/amy/amy1.png", "amy1.png"),
    ("evaluate-report-is-model", "evaluate {M.ffm} {photos} --report {M.ffm}", "M.ffm"),
    ("autolabel-into-inputs", "autolabel {photos} -m {M.ffm} -o {photos} --workers 1", "photos"),
    ("autolabel-inside-inputs", "autolabel {photos} -m {M.ffm} -o {photos}/labels --workers 1", "photos"),
    ("cluster-inside-inputs", "cluster {photos} -o {photos}/groups --workers 1", "photos"),
    ("detect-crops-hold-input", "detect {X.jpg} --save-crops {.} --workers 1", "X.jpg"),
    ("detect-annotate-is-file", "detect {X.jpg} --annotate {notes.txt} --workers 1", "notes.txt"),
    ("embed-inside-inputs", "embed {photos} -o {photos}/e.npz --workers 1", "photos"),
    ("gallery-file-is-photo", "gallery enrol amy {X.jpg} -f {X.jpg}", "X.jpg"),
    ("identify-jsonl-is-gallery", "gallery identify {X.jpg} -f {Y.jpg} --jsonl {Y.jpg}", "Y.jpg"),
    ("distil-student-is-photo", "distil {photos} -o {photos}/amy/amy1.png", "amy1.png"),
    ("live-video-is-source", "live -s {clip.avi} -a gender -o {clip.avi}", "clip.avi"),
    # tracebacks (before: FileExistsError, NotADirectoryError, sqlite3.DatabaseError, raw FileExistsError)
    ("autolabel-output-is-file", "autolabel {photos} -m {M.ffm} -o {notes.txt} --workers 1", "notes.txt"),
    ("cluster-output-is-file", "cluster {photos} -o {notes.txt} --workers 1", "notes.txt"),
    ("gallery-file-is-image", "gallery enrol amy {X.jpg} -f {Y.jpg}", "Y.jpg"),
    ("gallery-file-is-model", "gallery enrol amy {X.jpg} -f {M.ffm}", "M.ffm"),
    ("gallery-list-of-model", "gallery list -f {M.ffm}", "M.ffm"),
    ("zip-file-and-folder", "detect {z.zip} --workers 1", "z.zip"),
    ("os-error-one-line", "detect {X.jpg} --jsonl {notes.txt}/out.jsonl --workers 1", "notes.txt"),
    # nothing could be processed (before: exit 0)
    ("detect-all-unreadable", "detect {bad} --workers 1", "broken.jpg"),
    ("detect-all-unreadable-jsonl", "detect {bad} --workers 1 --jsonl {.}/out/r.jsonl", "empty.jpg"),
    ("embed-all-unreadable", "embed {bad} -o {.}/out/e.npz --workers 1", "fake.png"),
    ("classify-all-unreadable", "classify {M.ffm} {bad} --workers 1", "broken.jpg"),
    ("analyze-all-unreadable", "analyze {bad} -a gender --workers 1", "empty.jpg"),
    ("autolabel-all-unreadable", "autolabel {bad} -m {M.ffm} -o {.}/out/al --workers 1", "broken.jpg"),
    # messages that name the files and reasons
    ("cluster-names-files", "cluster {nofaces} -o {.}/out/groups --workers 1", "coffee.jpg"),
    ("gallery-empty-file", "gallery enrol amy {empty.jpg} -f {.}/out/g.db", "empty"),
]
#: Cases that may leave a new (harmless) file: the gallery file is created before its photos are read.
CREATES = {"gallery-empty-file"}


def _argv(template: str, w: Path) -> list[str]:
    def fill(tok: str) -> str:
        while "{" in tok:
            a, b = tok.index("{"), tok.index("}")
            name = tok[a + 1:b]
            tok = tok[:a] + str(w if name == "." else w / name) + tok[b + 1:]
        return tok

    return [fill(t) for t in template.split()]


@pytest.mark.parametrize("case, template, named", CASES, ids=[c[0] for c in CASES])
def test_hostile_command_fails_clearly_and_touches_nothing(world, case, template, named):
    before = _hashes(world)
    r = runner.invoke(app, _argv(template, world))
    assert r.exit_code != 0, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    assert "error:" in r.output and named in r.output, r.output
    after = _hashes(world)
    assert {k: after.get(k) for k in before} == before  # every input byte-identical
    if case not in CREATES:
        assert set(after) == set(before), set(after) - set(before)  # nothing written either


def test_the_guard_resolves_symlinks_and_dotdot(tmp_path, astronaut):
    from faceforge._fs import check_output
    from faceforge.errors import OutputError

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(jpeg(astronaut))
    (tmp_path / "link.jpg").symlink_to(tmp_path / "in" / "a.jpg")
    for out, kind in ((tmp_path / "link.jpg", "file"), (tmp_path / "in" / ".." / "in" / "a.jpg", "file"),
                      (tmp_path / "in" / "sub", "folder"), (tmp_path, "folder")):
        with pytest.raises(OutputError, match="a.jpg|in"):
            check_output(out, [tmp_path / "link.jpg"] if kind == "file" else [tmp_path / "in"], kind=kind)
    assert check_output(tmp_path / "out" / "a.jpg", [tmp_path / "in"]) == tmp_path / "out" / "a.jpg"
    r = runner.invoke(app, ["detect", str(tmp_path / "in" / "a.jpg"), "--jsonl", str(tmp_path / "link.jpg")])
    assert r.exit_code == 2 and "Refusing to overwrite the input file" in r.output
    assert (tmp_path / "in" / "a.jpg").read_bytes() == jpeg(astronaut)


def test_sqlite_connect_refuses_files_of_another_kind(tmp_path, astronaut):
    from faceforge._sqlite import connect
    from faceforge.errors import SourceError

    (tmp_path / "a.jpg").write_bytes(jpeg(astronaut))
    before = (tmp_path / "a.jpg").read_bytes()
    with pytest.raises(SourceError, match="a.jpg is not an SQLite database"):
        connect(tmp_path / "a.jpg")
    assert (tmp_path / "a.jpg").read_bytes() == before
    (tmp_path / "new.db").write_bytes(b"")  # empty: SQLite makes a new database there
    connect(tmp_path / "new.db").close()
    connect(tmp_path / "new.db").close()  # and now it has the header


# -- kills ---------------------------------------------------------------------------------------------
def _children() -> dict[tuple[int, str], int]:
    """``{(pid, start time): parent pid}`` of every live process (from /proc; the start time tells a
    reused pid apart)."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if stat[0] not in ("Z", "X"):
                out[(int(d), stat[19])] = int(stat[1])
    return out


def _descendants(pid: int) -> set[tuple[int, str]]:
    procs = _children()
    found: set[tuple[int, str]] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        for c, parent in procs.items():
            if parent == p and c not in found:
                found.add(c)
                todo.append(c[0])
    return found


needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")


@pytest.fixture()
def many_photos(tmp_path, astronaut):
    """300 photos: enough work that a command is still busy when it is killed."""
    d = tmp_path / "many"
    d.mkdir()
    data = jpeg(astronaut, 80)
    for i in range(300):
        (d / f"p{i:03d}.jpg").write_bytes(data)
    return d


def _start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1] / "src"),
                                                         os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "faceforge.cli.main", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(cond, timeout: float, proc: subprocess.Popen) -> None:
    t0 = time.monotonic()
    while not cond():
        if proc.poll() is not None:
            pytest.fail(f"the command ended (rc {proc.returncode}) before the test could kill it: "
                        f"{proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            pytest.fail("the command did not get going in time")
        time.sleep(0.05)


def _outlive(procs: set[tuple[int, str]], within: float = 10.0) -> set[tuple[int, str]]:
    """The processes among ``procs`` still alive after ``within`` seconds (ending those, which the test started)."""
    deadline = time.monotonic() + within
    while (alive := procs & set(_children())) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid, _ in alive:
        os.kill(pid, signal.SIGKILL)
    return alive


def _temps(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tmp")) if folder.is_dir() else []


@needs_proc
def test_sigkill_leaves_no_workers_and_its_temp_file_is_swept_next_time(tmp_path, many_photos, astronaut):
    out = tmp_path / "out"
    proc = _start(["detect", str(many_photos), "--jsonl", str(out / "faces.jsonl"), "--save-crops",
                   str(out / "crops"), "--workers", "2"])
    try:
        _wait_for(lambda: bool(_temps(out)) and (out / "crops").is_dir() and any((out / "crops").iterdir())
                  and len(_descendants(proc.pid)) >= 2, 90, proc)
        kids = _descendants(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert not _outlive(kids), "worker processes outlived their parent"
    finally:
        if proc.poll() is None:
            proc.kill()
    (stale,) = _temps(out)  # SIGKILL runs no code: the JSONL's temporary file is still there
    assert stale.name.startswith(".faces.jsonl.") and f".{proc.pid}." in stale.name
    old = time.time() - 120  # as if the next run came two minutes later
    os.utime(stale, (old, old))
    (tmp_path / "a.jpg").write_bytes(jpeg(astronaut))
    r = runner.invoke(app, ["detect", str(tmp_path / "a.jpg"), "--jsonl", str(out / "faces.jsonl"),
                            "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert not _temps(out) and (out / "faces.jsonl").read_text().count("\n") == 1


@needs_proc
def test_sigterm_cleans_up_and_exits_143(tmp_path, many_photos):
    out = tmp_path / "out"
    proc = _start(["detect", str(many_photos), "--jsonl", str(out / "faces.jsonl"), "--save-crops",
                   str(out / "crops"), "--workers", "2"])
    try:
        _wait_for(lambda: bool(_temps(out)) and (out / "crops").is_dir() and any((out / "crops").iterdir()), 90,
                  proc)
        kids = _descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, stderr
    assert "terminated" in stderr and "Traceback" not in stderr
    assert not _temps(out) and not (out / "faces.jsonl").exists()  # no half-written results
    assert not _temps(out / "crops")
    assert not _outlive(kids), "worker processes outlived their parent"


def test_atomic_write_sweeps_only_stale_temps_of_dead_writers(tmp_path):
    from faceforge._fs import atomic_write, make_temp

    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(proc.stdout)
    stale = tmp_path / f".m.ffm.{dead}.abcd1234.tmp"
    young = tmp_path / f".m.ffm.{dead}.efgh5678.tmp"
    mine = tmp_path / f".m.ffm.{os.getpid()}.ijkl9012.tmp"
    other = tmp_path / ".hidden.tmp"
    legacy = tmp_path / ".m.ffm.mnop3456.tmp"  # an older version's name (no pid), beside its target
    stray = tmp_path / ".gone.qrst7890.tmp"  # no "gone" beside it: not known to be ours
    for p in (stale, young, mine, other, legacy, stray):
        p.write_bytes(b"partial")
    (tmp_path / "m.ffm").write_bytes(b"old model")
    for p, age in ((stale, 120), (mine, 120), (other, 7200), (legacy, 7200), (stray, 7200)):
        os.utime(p, (time.time() - age,) * 2)
    atomic_write(tmp_path / "m.ffm", b"model")
    assert not stale.exists() and not legacy.exists()
    assert young.exists() and mine.exists() and other.exists() and stray.exists()
    assert (tmp_path / "m.ffm").read_bytes() == b"model"
    fd, name = make_temp(tmp_path / "x.jsonl")
    os.close(fd)
    assert Path(name).name.startswith(f".x.jsonl.{os.getpid()}.") and name.endswith(".tmp")
