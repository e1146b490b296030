"""Ingest throughput on this machine (issue 16): photos per second, first run and a rerun.

An inbox of N real faces (UTKFace's 200x200 aligned photos from ``../shared/data/utkface``, filed
in dated class folders ``YYYY-MM-DD-training-images/{male,female}/`` by the set's gender label) is
ingested into an empty dataset with ``faceforge.collect.ingest`` (every core), as
``faceforge ingest INBOX --into DATASET`` does: hash, detect, align, embed, de-duplicate, file.
Then the same inbox is ingested again (nothing new: only hashing) and a second day of M photos
is added and ingested (its near-duplicate checks now run against N filed faces).

    python benchmarks/bench_ingest.py [--n 1000] [--m 200] [--workers 0]   # results/ingest.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from pathlib import Path

from _common import DATA, header, write_json


def inbox_day(inbox: Path, day: str, rows: list[dict[str, str]], images: Path) -> None:
    for r in rows:
        d = inbox / f"{day}-training-images" / r["gender"]
        d.mkdir(parents=True, exist_ok=True)
        os.symlink(images / r["file"], d / r["file"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="photos of day 1")
    ap.add_argument("--m", type=int, default=200, help="photos of day 2")
    ap.add_argument("--workers", type=int, default=0, help="processes (0: one per core)")
    ap.add_argument("--out", default=None, help="results JSON (default benchmarks/results/ingest.json)")
    args = ap.parse_args()
    info = header("ingest throughput")

    from faceforge.collect import ingest

    utk = DATA / "utkface"
    rows = list(csv.DictReader(open(utk / "labels.csv", newline="")))
    rows = [r for i, r in enumerate(rows) if i % max(1, len(rows) // (args.n + args.m)) == 0][:args.n + args.m]
    workers = args.workers or None
    with tempfile.TemporaryDirectory() as tmp:
        inbox, dataset = Path(tmp) / "inbox", Path(tmp) / "dataset"
        os.environ["FACEFORGE_CACHE"] = str(Path(tmp) / "cache")
        inbox_day(inbox, "2026-12-01", rows[:args.n], utk / "images")
        t0 = time.perf_counter()
        r1 = ingest([inbox], dataset, workers=workers)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        r_again = ingest([inbox], dataset, workers=workers)
        again = time.perf_counter() - t0
        inbox_day(inbox, "2026-12-02", rows[args.n:], utk / "images")
        t0 = time.perf_counter()
        r2 = ingest([inbox], dataset, workers=workers)
        second = time.perf_counter() - t0
    res = {
        **info,
        "day1": {"photos": args.n, "seconds": round(first, 1), "photos_per_s": round(args.n / first, 2),
                 "filed": sum(r1.routed.values()), "report": r1.to_dict()},
        "rerun_nothing_new": {"photos": args.n, "seconds": round(again, 2), "new": r_again.new},
        "day2": {"photos": len(rows) - args.n, "seconds": round(second, 1),
                 "photos_per_s": round((len(rows) - args.n) / second, 2), "filed": sum(r2.routed.values())},
    }
    print(json.dumps({k: res[k] for k in ("rerun_nothing_new", "day2")} | {"day1": {
        k: v for k, v in res["day1"].items() if k != "report"}}, default=str))
    write_json("ingest", res, args.out)


if __name__ == "__main__":
    main()
