"""The galleries' FAISS index: the same answers as brute force on real faces, ids in step through enrol /
remove / reopen / writes by others, damaged index files rebuilt, approximate recall on a synthetic set."""

from __future__ import annotations

import logging
import sqlite3
import time

import numpy as np
import pytest

from conftest import variants
from faceforge.gallery import Gallery
from faceforge.gallery.index import FaceIndex, GalleryIndex, brute_force_nearest, index_path


def old_nearest(g: Gallery, X: np.ndarray, top_k: int) -> list[list[tuple[str, float]]]:
    """The gallery's search before the index: a Python loop per person (the reference)."""
    names, owner, stored = g._stored()
    X = np.atleast_2d(np.asarray(X, np.float32))
    emb = g.pipeline.embedder
    d = np.stack([emb.distance(np.repeat(x[None], len(stored), 0), stored) for x in X])
    per = np.full((len(X), len(names)), np.inf, np.float32)
    for j in range(len(names)):
        per[:, j] = d[:, owner == j].min(axis=1)
    k = max(1, min(int(top_k), len(names)))
    return [[(names[j], float(row[j])) for j in np.argsort(row)[:k]] for row in per]


def lfw_faces() -> list[np.ndarray]:
    from skimage import data

    return [np.repeat(f[..., None], 3, 2) for f in (data.lfw_subset()[:60] * 255).astype(np.uint8)]


@pytest.fixture(scope="module")
def real(tmp_path_factory, astronaut, grace):
    """A gallery of real faces (Eileen Collins, Grace Hopper, 60 LFW faces) and real query embeddings."""
    path = tmp_path_factory.mktemp("real") / "people.db"
    g = Gallery(path, "crew")
    g.enrol("eileen", variants(astronaut, 3))
    g.enrol("grace", variants(grace, 3))
    faces = lfw_faces()
    for i, f in enumerate(faces[:40]):
        g.enrol(f"lfw {i:02d}", [f])
    pipe = g.pipeline
    queries = [pipe.embed(img).embedding for img in
               [np.roll(astronaut, 30, axis=1), grace[:, ::-1].copy(), *[f[:, ::-1].copy() for f in faces[:50]]]]
    return path, np.concatenate([q for q in queries if len(q)])


def copy_of(src, dst, name="crew") -> Gallery:
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    return Gallery(dst, name)


def same_answers(a, b, tol=0.0):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert [n for n, _ in x] == [n for n, _ in y]
        assert np.allclose([d for _, d in x], [d for _, d in y], atol=tol, rtol=0), (x, y)


def test_index_answers_equal_brute_force_on_real_faces(real, tmp_path):
    path, Q = real
    g = copy_of(path, tmp_path / "g.db")
    assert len(Q) >= 40
    for k in (1, 3, 10, 100):
        same_answers(g.nearest(Q, k), old_nearest(g, Q, k))  # the very same floats
    names, owner, stored = g._stored()
    same_answers(brute_force_nearest(names, owner, stored, Q, 5, g.pipeline.embedder.distance), old_nearest(g, Q, 5))
    assert index_path(g.path, g.name).exists()
    # identify's answer shape and threshold are unchanged
    p = g._predictions(Q[:3], 3)
    assert [x.label for x in p][:2] == ["eileen", "grace"] and all(len(x.top_k) == 3 for x in p)


def test_ids_stay_in_step_through_enrol_remove_and_reopen(real, tmp_path, astronaut):
    path, Q = real
    g = copy_of(path, tmp_path / "g.db")
    assert g.nearest(Q[:1], 1)[0][0][0] == "eileen"
    g.remove("eileen")  # the faces with the highest ids but the LFW ones are gone
    same_answers(g.nearest(Q, 3), old_nearest(g, Q, 3))
    assert all(n != "eileen" for row in g.nearest(Q, 100) for n, _ in row)
    g.remove("lfw 39")  # the face with the highest row id: SQLite reuses its id for the next face
    g.enrol("astro", variants(astronaut, 1))
    assert g.nearest(Q[:1], 1)[0][0][0] == "astro"
    same_answers(g.nearest(Q, 3), old_nearest(g, Q, 3))
    # another process (here: a plain connection) adds faces: the next search sees them
    with sqlite3.connect(g.path) as db:
        pid = db.execute("INSERT INTO people (gallery, name, created) VALUES ('crew', 'twin', ?)",
                         (time.time(),)).lastrowid
        emb = (Q[1] + 0.001).astype(np.float32).tobytes()
        db.execute("INSERT INTO faces (person, embedding, sha256, source, created) VALUES (?,?,?,?,?)",
                   (pid, emb, "x", "x", time.time()))
    assert g.nearest(Q[1:2], 1)[0][0][0] == "twin"
    # reopened (a fresh process): the saved file is used as it is, not rebuilt
    fresh = GalleryIndex(g.path, g.name)
    emb = g.pipeline.embedder
    same_answers(fresh.nearest(Q, 3, emb.metric, emb.distance), old_nearest(g, Q, 3))
    assert fresh.rebuilds == 0
    g.drop()
    assert not index_path(g.path, g.name).exists()


@pytest.mark.parametrize("damage", ["deleted", "truncated", "garbage", "empty", "stale"])
def test_a_missing_or_damaged_index_file_is_rebuilt(real, tmp_path, damage, caplog):
    path, Q = real
    g = copy_of(path, tmp_path / "g.db")
    want = old_nearest(g, Q, 3)
    g.nearest(Q, 3)
    f = index_path(g.path, g.name)
    data = f.read_bytes()
    if damage == "deleted":
        f.unlink()
    elif damage == "truncated":
        f.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        f.write_bytes(np.random.default_rng(0).bytes(len(data)))
    elif damage == "empty":
        f.write_bytes(b"")
    else:  # a file saved before the last person left: stale
        with sqlite3.connect(g.path) as db:
            db.execute("DELETE FROM faces WHERE person = (SELECT id FROM people WHERE name='grace')")
            db.execute("DELETE FROM people WHERE name='grace'")
        want = old_nearest(g, Q, 3)
    caplog.set_level(logging.INFO, "faceforge.gallery.index")
    fresh = GalleryIndex(g.path, g.name)
    emb = g.pipeline.embedder
    same_answers(fresh.nearest(Q, 3, emb.metric, emb.distance), want)
    assert fresh.rebuilds == (0 if damage == "stale" else 1)  # stale: only the removed faces go
    if damage in ("truncated", "garbage", "empty"):
        assert "unreadable" in caplog.text and "rebuilding" in caplog.text
    assert GalleryIndex(g.path, g.name).nearest(Q[:2], 3, emb.metric, emb.distance) == want[:2]


def synthetic(n_people: int, per: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Identities as unit-ish 128-D centres with faces spread around them as dlib-resnet's are
    (within-person distances ~0.35, between ~0.8); and one new face of every tenth person."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 0.8 / np.sqrt(2 * 128), (n_people, 128))
    X = np.repeat(centres, per, 0) + rng.normal(0, 0.35 / np.sqrt(2 * 128), (n_people * per, 128))
    owner = np.repeat(np.arange(n_people), per)
    Q = centres[::10] + rng.normal(0, 0.35 / np.sqrt(2 * 128), (len(centres[::10]), 128))
    return X.astype(np.float32), owner, Q.astype(np.float32)


def test_approximate_index_recall_on_a_synthetic_set():
    X, owner, Q = synthetic(2000, 5)
    ids = np.arange(len(X)) * 3 + 7  # ids need not be dense
    ivf = FaceIndex.build(ids, X, exact_max=1000)
    flat = FaceIndex.build(ids, X)
    assert ivf.kind == "ivf" and flat.kind == "flat"
    _, got = ivf.search(Q, 1)
    _, want = flat.search(Q, 1)
    assert np.mean(owner[(got[:, 0] - 7) // 3] == owner[(want[:, 0] - 7) // 3]) >= 0.99
    ivf.remove(ids[:5000])
    _, got = ivf.search(Q, 5)
    assert got.min() >= ids[5000]  # removed ids are gone


def test_a_large_gallery_uses_the_approximate_index_in_step_with_sqlite(tmp_path, astronaut):
    g = Gallery(tmp_path / "big.db", "big")
    g.enrol("eileen", [astronaut])
    X, owner, Q = synthetic(300, 4, seed=1)
    with sqlite3.connect(g.path) as db:  # bulk-load synthetic people as a writer of the file
        for p in range(300):
            pid = db.execute("INSERT INTO people (gallery, name, created) VALUES ('big', ?, 0)",
                             (f"p{p:03d}",)).lastrowid
            db.executemany("INSERT INTO faces (person, embedding, sha256, source, created) VALUES (?,?,?,'s',0)",
                           [(pid, X[i].tobytes(), str(i)) for i in np.flatnonzero(owner == p)])
    idx = GalleryIndex(g.path, g.name, exact_max=500)
    emb = g.pipeline.embedder
    got = idx.nearest(Q, 3, emb.metric, emb.distance)
    assert idx._index is not None and idx._index.kind == "ivf"
    want = old_nearest(g, Q, 3)
    assert np.mean([a[0][0] == b[0][0] for a, b in zip(got, want)]) >= 0.99
    assert all(len(a) == 3 for a in got)
    g.remove("p000")
    assert all(n != "p000" for row in idx.nearest(Q, 3, emb.metric, emb.distance) for n, _ in row)
    assert idx.rebuilds == 1


def test_a_big_index_defers_rewriting_its_file_and_a_stale_file_is_brought_up_to_date(tmp_path, astronaut):
    """Rewriting a big (IVF) index's file after every small enrolment would cost more than the change:
    the file is written once enough changed (or at exit); a process that finds an older file brings
    it up to date from SQLite, with the same answers."""
    from faceforge.gallery import index as I

    g = Gallery(tmp_path / "big.db", "big")
    g.enrol("eileen", [astronaut])
    X, owner, Q = synthetic(300, 4, seed=2)
    with sqlite3.connect(g.path) as db:
        for p in range(300):
            pid = db.execute("INSERT INTO people (gallery, name, created) VALUES ('big', ?, 0)",
                             (f"p{p:03d}",)).lastrowid
            db.executemany("INSERT INTO faces (person, embedding, sha256, source, created) VALUES (?,?,?,'s',0)",
                           [(pid, X[i].tobytes(), str(i)) for i in np.flatnonzero(owner == p)])
    emb = g.pipeline.embedder
    idx = GalleryIndex(g.path, g.name, exact_max=500)
    idx.nearest(Q[:1], 3, emb.metric, emb.distance)
    assert idx._index.kind == "ivf" and idx.saves == 1 and idx.file.is_file()
    stamp = idx.file.stat().st_mtime_ns
    g.remove("p001")  # a small change: 4 of 1,201 faces
    after = idx.nearest(Q, 3, emb.metric, emb.distance)
    assert idx.saves == 1 and idx.file.stat().st_mtime_ns == stamp and idx in I._DIRTY
    assert all(n != "p001" for row in after for n, _ in row)
    fresh = GalleryIndex(g.path, g.name, exact_max=500)  # another process: the older file, then SQLite
    assert fresh.nearest(Q, 3, emb.metric, emb.distance) == after and fresh.rebuilds == 0
    idx.flush()
    assert idx.saves == 2 and idx not in I._DIRTY and idx.file.stat().st_mtime_ns != stamp
