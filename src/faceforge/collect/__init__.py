"""Continuous collection: ingest new photos every day, retrain, keep versions, promote only what is better.

* :func:`ingest` (:mod:`faceforge.collect.ingest`): new photos from inbox folders into a dataset
  of class folders, once each (a content-hash ledger in ``DATASET/.faceforge/``), de-duplicated,
  filed by folder, model or gallery, doubtful faces into ``DATASET/review/``; the originals are
  never moved or changed.
* :func:`retrain`, :func:`history`, :func:`promote`, :func:`rollback`
  (:mod:`faceforge.collect.versions`): model versions beside the model file, trained warm on the
  grown dataset and promoted only when not worse on a validation split that stays fixed.
* :func:`watch` (:mod:`faceforge.collect.watch`): ingest as files arrive.

The other names are imported lazily. ``ingest`` and ``watch`` are imported here: they share their
names with their modules, and a package attribute set by importing a submodule would otherwise
hide the function (both modules import only light modules at their top).
"""

from __future__ import annotations

import importlib
from typing import Any

from faceforge.collect.ingest import IngestReport as IngestReport, ingest as ingest
from faceforge.collect.watch import watch as watch

_LAZY = {
    "class_health": "faceforge.collect.health",
    "retrain": "faceforge.collect.versions",
    "RetrainResult": "faceforge.collect.versions",
    "history": "faceforge.collect.versions",
    "promote": "faceforge.collect.versions",
    "rollback": "faceforge.collect.versions",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'faceforge.collect' has no attribute {name!r}")


__all__ = sorted([*_LAZY, "IngestReport", "ingest", "watch"])
