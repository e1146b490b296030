"""Data checks: exact duplicates (SHA-256) and near duplicates (perceptual hash + thumbnail).

Near duplicates are found in two steps. A 64-bit difference hash (dHash of a 9x8 grey
thumbnail) within :data:`NEAR_BITS` bits proposes pairs; a 16x16 grey thumbnail correlation of
at least :data:`MIN_CORRELATION` confirms them. The hash alone flags many different photos of
aligned faces (measured: 238 pairs among 2,000 UTKFace crops, mostly different people, and 44
among the 400 AT&T photos, all different frames); the confirmation keeps re-encoded, resized,
re-compressed (JPEG q30: >= 0.9994) and brightened (x1.15: >= 0.979, 0.9998 without clipping)
copies and drops every AT&T pair (max 0.9926). What it still finds in UTKFace (6 of 2,000) are
the same photos saved at another quality, some labelled with another gender or age.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from faceforge.data.cache import EmbeddingCache
from faceforge.data.dataset import Dataset, Problem

log = logging.getLogger(__name__)

#: Near duplicates: perceptual hashes differing in at most this many of 64 bits.
NEAR_BITS = 4
#: ... confirmed when their 16x16 grey thumbnails correlate at least this much.
MIN_CORRELATION = 0.995
#: Hashes with fewer than this many set (or unset) bits come from nearly flat thumbnails
#: (blank frames, solid colours); they are not compared, which would pair unrelated images.
MIN_BITS = 4

_POP8 = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def dhash(image: np.ndarray) -> int:
    """64-bit difference hash: a 9x8 grey thumbnail, one bit per "left pixel darker than right".

    Re-encoding, resizing and small brightness changes leave it (nearly) unchanged.

    Args:
        image: ``(H, W, 3)`` or ``(H, W)`` uint8.
    """
    import cv2

    img = np.asarray(image)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    small = cv2.resize(grey.astype(np.float32), (9, 8), interpolation=cv2.INTER_AREA)
    bits = (small[:, 1:] > small[:, :-1]).reshape(-1)
    return int(np.packbits(bits).view(">u8")[0])


def fingerprint(image: np.ndarray) -> tuple[int, bytes]:
    """``(dhash, thumb)``: the 64-bit :func:`dhash` and a 16x16 grey thumbnail (256 bytes)."""
    import cv2

    img = np.asarray(image)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    thumb = cv2.resize(grey.astype(np.float32), (16, 16), interpolation=cv2.INTER_AREA)
    return dhash(grey), np.clip(thumb.round(), 0, 255).astype(np.uint8).tobytes()


def _unit(thumb: bytes) -> np.ndarray:
    v = np.frombuffer(thumb, np.uint8).astype(np.float32)
    v = v - v.mean()
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-3 else v


def popcount(a: np.ndarray) -> np.ndarray:
    """Set bits of each element of a ``uint64`` array."""
    a = np.ascontiguousarray(a, np.uint64)
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(a)
    return _POP8[a.view(np.uint8).reshape(*a.shape, 8)].sum(axis=-1, dtype=np.uint8)


def near_pairs(hashes: np.ndarray, max_bits: int = NEAR_BITS) -> list[tuple[int, int, int]]:
    """All pairs ``(i, j, distance)`` with ``i < j`` whose hashes differ in at most ``max_bits`` bits."""
    h = np.asarray(hashes, np.uint64)
    out: list[tuple[int, int, int]] = []
    n = len(h)
    block = max(1, 2_000_000 // max(n, 1))  # ~16 MB of XORs at a time
    for s in range(0, n, block):
        d = popcount(h[s : s + block, None] ^ h[None, :])
        ii, jj = np.nonzero(d <= max_bits)
        keep = jj > ii + s
        for i, j in zip(ii[keep], jj[keep]):
            out.append((int(i) + s, int(j), int(d[i, j])))
    return out


def _fingerprint_task(image: np.ndarray, item: Any) -> tuple[int, bytes]:
    return fingerprint(image)


def _label(x: str | float) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def check_duplicates(dataset: Dataset, *, cache: EmbeddingCache | str | os.PathLike | None = None,
                     near: bool = True, workers: int | None = None, progress: bool = False) -> list[Problem]:
    """Find exact duplicates (same bytes) and near duplicates (same picture re-encoded or resized).

    Near duplicates: perceptual hashes at most :data:`NEAR_BITS` of 64 bits apart whose 16x16
    thumbnails correlate at least :data:`MIN_CORRELATION` (see the module notes). File hashes and
    fingerprints are memoised in the embedding cache's file table, so a second check (or one
    after :func:`~faceforge.data.embed_dataset`, whose workers fingerprint every image they
    decode) reads no image again.

    Args:
        dataset: from :func:`~faceforge.data.load_dataset`.
        cache: the cache whose file table memoises hashes (default: the default cache file).
        near: also look for near duplicates (decodes every image not yet fingerprinted).
        workers: processes that decode images (default: every core).
        progress: show a progress bar while decoding.

    Returns:
        One :class:`Problem` per duplicate file, naming both files. Copies in different classes
        (or with different regression labels) are warnings, since the same photo then teaches
        the model two answers; copies within a class are infos (they count twice, and can land
        in both the training and the test split).
    """
    if isinstance(cache, EmbeddingCache):
        return _check(dataset, cache, near, workers, progress)
    db = EmbeddingCache(cache)
    try:
        return _check(dataset, db, near, workers, progress)
    finally:
        db.close()


def _check(dataset: Dataset, db: EmbeddingCache, near: bool, workers: int | None, progress: bool) -> list[Problem]:
    samples = dataset.samples
    infos = db.file_infos([s.path for s in samples])
    problems: list[Problem] = []
    first_by_sha: dict[str, int] = {}
    group = list(range(len(samples)))  # index of the first file with the same bytes
    for i, info in enumerate(infos):
        if info is None:
            continue
        j = first_by_sha.setdefault(info.sha256, i)
        group[i] = j
        if j != i:
            a, b = samples[j], samples[i]
            problems.append(_dup_problem("duplicate", a, b, "is an exact copy of"))
    if not near:
        return problems

    todo = [i for i, info in enumerate(infos) if info is not None and info.thumb is None and info.error is None
            and group[i] == i]
    prints: dict[int, tuple[int, bytes]] = {i: (info.dhash, info.thumb) for i, info in enumerate(infos)
                                            if info is not None and info.dhash is not None and info.thumb is not None}
    if todo:
        from faceforge.runner import WorkItem, default_workers, run_items

        w = min(workers or default_workers(), max(1, len(todo) // 200))
        notes: list[tuple[str, str, tuple[int, bytes] | None, str | None]] = []
        outs = run_items(_fingerprint_task, (WorkItem(samples[i].path) for i in todo), workers=w,
                        progress="Hashing images" if progress else None, total=len(todo))
        try:
            for i, out in zip(todo, outs):
                sha = infos[i].sha256  # type: ignore[union-attr]
                if out.error is None:
                    prints[i] = out.value
                    notes.append((samples[i].path, sha, out.value, None))
                else:
                    notes.append((samples[i].path, sha, None, _reason(out.error, samples[i].path)))
        finally:
            db.note_files(notes)

    idx = np.array(sorted(i for i in prints if group[i] == i), np.int64)
    if len(idx) < 2:
        return problems
    h = np.array([prints[int(i)][0] for i in idx], np.uint64)
    pc = popcount(h)
    ok = (pc >= MIN_BITS) & (pc <= 64 - MIN_BITS)
    idx, h = idx[ok], h[ok]
    # union-find: report each file of a cluster against the cluster's first file
    parent = {int(i): int(i) for i in idx}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for pa, pb, _dist in near_pairs(h):
        ia, ib = int(idx[pa]), int(idx[pb])
        corr = float(_unit(prints[ia][1]) @ _unit(prints[ib][1]))
        if corr < MIN_CORRELATION:
            continue
        ra, rb = find(ia), find(ib)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    for i in idx:
        r = find(int(i))
        if r != i:
            corr = float(_unit(prints[r][1]) @ _unit(prints[int(i)][1]))
            problems.append(_dup_problem("near_duplicate", samples[r], samples[int(i)],
                                         f"looks like the same photo (resized, re-saved or retouched; thumbnail "
                                         f"correlation {corr:.3f}) as"))
    return problems


def _reason(message: str, path: str) -> str:
    """An error message without its leading ``path: `` (the same bytes may live elsewhere)."""
    return message[len(path) + 2 :] if message.startswith(path + ": ") else message


def _dup_problem(kind: str, a: Any, b: Any, relation: str) -> Problem:
    la, lb = _label(a.label), _label(b.label)
    if la != lb:
        return Problem(kind, b.path,
                       f"The same photo is labelled both {la!r} and {lb!r}: {b.path} {relation} {a.path}. "
                       f"Keep it under the right label only (remove the other copy).", "warning")
    return Problem(kind, b.path,
                   f"{b.path} {relation} {a.path} (both {la!r}); it counts twice and can end up in both the "
                   f"training and the test split. Remove one copy.", "info")
