"""Clustering that scales: Chinese whispers on a FAISS kNN graph, and incremental updates of a written
clustering (new photos of known people join their user-named folders, new people get new folders)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from conftest import shared_path
from faceforge.bootstrap import cluster_embeddings, embed_faces_of, pairwise_f1, write_groups
from faceforge.bootstrap.cluster import Clustering
from faceforge.bootstrap.graph import GRAPH_ABOVE, cluster_graph, knn_graph, read_groups, update_groups


@pytest.fixture(scope="module")
def att(tmp_path_factory):
    """Every face of the 40 AT&T people (10 photos each), embedded; truth per face."""
    root = shared_path("identity", "att_faces")
    people = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: int(p.name[1:]))
    faces = embed_faces_of(people, workers=2, progress=False)
    return faces, [f.source.split("/")[-2] for f in faces]


def test_knn_graph_edges_are_the_short_ones():
    X = np.array([[0, 0], [0.1, 0], [5, 5], [5.1, 5], [20, 20]], np.float32)
    i, j, d = knn_graph(X, k=2, max_distance=1.0)
    assert sorted(zip(i.tolist(), j.tolist())) == [(0, 1), (2, 3)] and np.allclose(d, 0.1, atol=1e-5)
    assert cluster_graph(X, threshold=1.0).tolist() == [0, 0, 1, 1, -1]
    assert cluster_graph(X, threshold=1.0, min_size=1).tolist()[-1] == 2


def test_graph_clustering_of_real_faces_keeps_average_linkage_quality(att):
    faces, truth = att
    X = np.stack([f.embedding for f in faces])
    assert len(X) == 400
    g = pairwise_f1(truth, cluster_graph(X))
    a = pairwise_f1(truth, cluster_embeddings(X))
    assert g["f1"] >= 0.99 and g["precision"] >= 0.99 and g["f1"] >= a["f1"] - 0.005, (g, a)


def test_large_sets_take_the_graph_without_a_dense_matrix():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 0.8 / np.sqrt(2 * 128), (GRAPH_ABOVE // 10 + 1, 128))
    X = (np.repeat(centres, 10, 0) + rng.normal(0, 0.3 / np.sqrt(2 * 128), (len(centres) * 10, 128)))
    truth = np.repeat(np.arange(len(centres)), 10)
    lab = cluster_embeddings(X.astype(np.float32))
    assert len(X) > GRAPH_ABOVE and pairwise_f1(truth, lab)["f1"] >= 0.99


def test_update_keeps_user_names_and_places_new_photos(att, tmp_path):
    faces, truth = att
    first = [k for k, f in enumerate(faces) if truth[k] in {"s1", "s2", "s3", "s4", "s5"} and
             not f.source.endswith(("9.pgm", "10.pgm"))]
    later = [k for k, f in enumerate(faces) if k not in first and truth[k] in {f"s{i}" for i in range(1, 11)}]
    X = np.stack([faces[k].embedding for k in first])
    res = Clustering([faces[k] for k in first], cluster_embeddings(X), 0.55)
    out = write_groups(res, tmp_path / "groups")  # keeps the faces' embeddings beside clusters.csv
    assert (out / "embeddings.npz").is_file()
    # the user names the folders after the people in them
    named = {}
    for folder in sorted(p for p in out.iterdir() if p.is_dir() and p.name != "noise"):
        rows = [r for r in csv.DictReader(open(out / "clusters.csv")) if r["group"] == folder.name]
        person = max({r["source"].split("/")[-2] for r in rows}, key=[r["source"].split("/")[-2] for r in rows].count)
        folder.rename(out / f"{person} named")
        named[person] = f"{person} named"
    assert len(named) == 5
    rep = update_groups(out, [faces[k] for k in later])
    rows, folders = read_groups(out)
    assert {f"{p} named" for p in named} <= set(folders)
    by_crop = {r["source"]: r["group"] for r in rows}
    known = [(by_crop[faces[k].source], named[truth[k]]) for k in later if truth[k] in named]
    assert len(known) == 10
    assert sum(got == want for got, want in known) >= 9, known  # photos 9 and 10 join their named folder
    assert not [got for got, want in known if got != want and got in named.values()]  # never someone else's
    new_people = {truth[k] for k in later} - set(named)
    assert len(rep.new_groups) >= len(new_people) and sum(rep.joined.values()) >= 9
    got = [by_crop[faces[k].source] for k in later if truth[k] in new_people]
    want = [truth[k] for k in later if truth[k] in new_people]
    assert pairwise_f1(want, [hash(g) % 10**6 for g in got])["f1"] >= 0.95
    # a second update reads the stored embeddings back (no re-embedding) and keeps the names
    rep2 = update_groups(out, [faces[k] for k in range(len(faces)) if truth[k] in {"s11", "s12"}])
    assert len(rep2.new_groups) == 2 and sum(rep2.joined.values()) <= 1
    assert {f"{p} named" for p in named} <= set(read_groups(out)[1])


def test_cli_cluster_into_an_earlier_output(tmp_path):
    """`cluster NEW --into EARLIER`: a renamed folder keeps its name and gets its person's new photos."""
    from typer.testing import CliRunner

    from faceforge.cli.main import app

    root = shared_path("identity", "att_faces")
    old, new = tmp_path / "old", tmp_path / "new"
    for person in ("s1", "s2", "s3"):
        files = sorted((root / person).iterdir(), key=lambda p: int(p.stem))
        for d, chunk in ((old, files[:6]), (new, files[6:8])):
            (d / person).mkdir(parents=True)
            for f in chunk:
                (d / person / f.name).symlink_to(f)
    runner = CliRunner()
    r = runner.invoke(app, ["cluster", str(old), "-o", str(tmp_path / "groups"), "--workers", "1"])
    assert r.exit_code == 0, r.output
    groups = tmp_path / "groups"
    folders = sorted(p for p in groups.iterdir() if p.is_dir() and p.name != "noise")
    assert len(folders) == 3
    s1 = next(f for f in folders if any("/s1/" in r["source"] for r in csv.DictReader(open(groups / "clusters.csv"))
                                        if r["group"] == f.name))
    s1.rename(groups / "alice")
    before = len(list((groups / "alice").iterdir()))
    r = runner.invoke(app, ["cluster", str(new), "--into", str(groups), "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "alice +2" in " ".join(r.output.split()), r.output
    assert len(list((groups / "alice").iterdir())) == before + 2
    r = runner.invoke(app, ["cluster", str(new), "--workers", "1"])  # neither -o nor --into
    assert r.exit_code == 2 and "--into" in r.output
