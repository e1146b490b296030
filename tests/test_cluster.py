"""Grouping unlabelled faces by person."""

import csv

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import shared_path
from faceforge.bootstrap import cluster_embeddings, cluster_faces, pairwise_f1, write_groups
from faceforge.cli.main import app
from faceforge.errors import ParameterError, SourceError

runner = CliRunner()


def test_pairwise_f1_and_noise():
    assert pairwise_f1([0, 0, 1, 1], [5, 5, 7, 7])["f1"] == 1.0
    r = pairwise_f1([0, 0, 1, 1], [0, 0, 0, 0])
    assert r["recall"] == 1.0 and r["precision"] == pytest.approx(1 / 3)
    assert pairwise_f1([0, 0, 1], [-1, -1, -1])["recall"] == 0.0  # noise points are singletons
    X = np.array([[0, 0], [0.1, 0], [5, 5], [5.1, 5], [20, 20]], float)
    assert cluster_embeddings(X, threshold=1.0).tolist() == [0, 0, 1, 1, -1]
    with pytest.raises(ParameterError):
        cluster_embeddings(X, threshold=0)


def test_one_person_in_several_photos_is_one_group(tmp_path, astronaut, coffee):
    src = tmp_path / "photos"
    src.mkdir()
    for i, f in enumerate((1.0, 0.8, 1.2)):
        Image.fromarray(np.clip(astronaut * f, 0, 255).astype(np.uint8)).save(src / f"a{i}.jpg")
    Image.fromarray(np.ascontiguousarray(astronaut[:, ::-1])).save(src / "mirror.png")
    Image.fromarray(coffee).save(src / "coffee.png")  # no face
    res = cluster_faces([src], workers=1, progress=False)
    assert len(res.faces) == 4 and res.n_groups == 1 and res.sizes() == {0: 4}
    out = write_groups(res, tmp_path / "groups", protect=[str(src)])
    rows = list(csv.DictReader(open(out / "clusters.csv")))
    assert len(rows) == 4 and {r["group"] for r in rows} == {"person_001"}
    assert sorted(p.name for p in (out / "person_001").iterdir()) == sorted(r["crop"].split("/")[1] for r in rows)
    with pytest.raises(SourceError, match="not empty"):
        write_groups(res, out)


def test_att_faces_cluster_by_person(tmp_path):
    src = shared_path("identity", "att_faces")
    people = sorted(p for p in src.iterdir() if p.is_dir())[:8]
    res = cluster_faces(people, workers=2, progress=False)
    truth = [res.faces[i].source.split("/")[-2] for i in range(len(res.faces))]
    r = pairwise_f1(truth, res.labels)
    assert len(res.faces) == 80 and r["f1"] >= 0.95 and r["precision"] >= 0.99, r
    # the groups feed train directly
    out = write_groups(res, tmp_path / "groups")
    r = runner.invoke(app, ["train", str(out), "-o", str(tmp_path / "m.ffm"), "--val", "0", "--no-curve",
                            "--workers", "1"])
    assert r.exit_code == 0, r.output


def test_cli_cluster(tmp_path, astronaut):
    (tmp_path / "in").mkdir()
    for i in range(2):
        Image.fromarray(np.roll(astronaut, 7 * i, axis=1)).save(tmp_path / "in" / f"{i}.png")
    r = runner.invoke(app, ["cluster", str(tmp_path / "in"), "-o", str(tmp_path / "g"), "--workers", "1"])
    assert r.exit_code == 0, r.output
    assert "2 faces -> 1 group" in r.output and (tmp_path / "g" / "person_001").is_dir()
    r = runner.invoke(app, ["cluster", str(tmp_path / "in"), "-o", str(tmp_path / "g")])
    assert r.exit_code == 2 and "not empty" in r.output
