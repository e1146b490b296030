"""Train faceforge's own 7-class facial-expression network on FER2013 and export it to ONNX.

A compact VGG-style CNN (four conv-conv-pool stages with batch norm, a small fully connected
head) trained from scratch with PyTorch on the FER2013 ``train`` split only. A fixed, stratified,
seeded 10% of ``train`` is held out as validation and picks the epoch (the weights are an
exponential moving average of the training weights); ``public_test`` is evaluated once, at the
end, with the exported ONNX file and onnxruntime.

Input contract (the same as ``faceforge.attributes.emotion.EmotionModel.crops``): grey face chips
resized to 64x64 (the 48x48 FER2013 images are upscaled with ``cv2.resize(..., INTER_LINEAR)``),
scaled to [-1, 1] as ``(grey / 255 - 0.5) * 2``. The ONNX graph takes ``input`` of shape
``(n, 64, 64)`` float32 and returns ``probs`` ``(n, 7)`` (softmax, classes in
:data:`CLASSES` order). By default the graph averages the prediction of each chip and of its
mirror image (horizontal-flip test-time augmentation) itself; ``--no-tta-graph`` exports the
plain network.

Only inference-free packages are needed at run time: PyTorch is used here for training only
(``pip install torch``), the shipped model runs with onnxruntime.

    nice -n 10 python scripts/train_emotion.py --data ../shared/data/emotion/fer2013 \\
        --out src/faceforge/attributes/models/emotion.onnx --epochs 30
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: The order of ``faceforge.attributes.emotion.CLASSES`` (and of fer's network).
CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
SIZE = 64
EXTS = {".png", ".jpg", ".jpeg", ".bmp"}


# ----------------------------------------------------------------------------------------- data
def load_split(folder: Path, cache: Path | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(n, 64, 64) uint8`` grey chips (cv2 INTER_LINEAR upscale), ``(n,)`` labels, file names."""
    import cv2

    if cache is not None and cache.is_file():
        z = np.load(cache, allow_pickle=False)
        return z["x"], z["y"], list(z["names"])
    xs, ys, names = [], [], []
    for label, cls in enumerate(CLASSES):
        files = sorted(p for p in (folder / cls).iterdir() if p.suffix.lower() in EXTS)
        if not files:
            sys.exit(f"no images in {folder / cls}")
        for p in files:
            img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
            if img is None:
                sys.exit(f"cannot read {p}")
            if img.shape != (SIZE, SIZE):
                img = cv2.resize(img, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
            xs.append(img)
            ys.append(label)
            names.append(f"{cls}/{p.name}")
    x, y = np.stack(xs), np.asarray(ys, np.int64)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, x=x, y=y, names=np.asarray(names))
        os.replace(tmp, cache)
    return x, y, names


def to_input(u8: np.ndarray) -> np.ndarray:
    """uint8 grey chips -> float32 in [-1, 1], exactly as ``EmotionModel.crops``."""
    return (u8.astype(np.float32) / 255.0 - 0.5) * 2.0


def stratified_split(y: np.ndarray, frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    val = []
    for c in range(len(CLASSES)):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        val.append(idx[: int(round(frac * len(idx)))])
    val = np.sort(np.concatenate(val))
    train = np.setdiff1d(np.arange(len(y)), val)
    return train, val


# ------------------------------------------------------------------------------------- network
def build_model(width: int = 32, fc: int = 256, drop: float = 0.3, inner: int = 48, drop2d: float = 0.0,
                folded: bool = False):
    """The network; ``folded``: convolutions with a bias and no batch norm, the form the exported
    ONNX graph has (batch norm folded into the convolutions), so an exported model can be trained on."""
    import torch
    from torch import nn
    import torch.nn.functional as F

    def block(cin: int, cout: int) -> list:
        if folded:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=True), nn.ReLU(inplace=True)]
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    class EmotionNet(nn.Module):
        """(n, 64, 64) in [-1, 1] -> (n, 7) logits. Resized to ``inner`` pixels inside (FER2013's
        native 48) so the 64x64 contract costs no more than the original resolution."""

        def __init__(self) -> None:
            super().__init__()
            w = [width, 2 * width, 4 * width, 8 * width]
            layers: list = []
            cin = 1
            for i, c in enumerate(w):
                layers += block(cin, c) + block(c, c) + [nn.MaxPool2d(2)]
                if i >= 1 and drop2d > 0:
                    layers.append(nn.Dropout2d(drop2d))
                cin = c
            self.features = nn.Sequential(*layers)
            side = inner // 16
            self.head = nn.Sequential(
                nn.Flatten(), nn.Dropout(drop), nn.Linear(cin * side * side, fc, bias=False),
                nn.BatchNorm1d(fc), nn.ReLU(inplace=True), nn.Dropout(drop), nn.Linear(fc, len(CLASSES)))
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x.unsqueeze(1)
            if self.inner != SIZE:
                x = F.interpolate(x, size=(self.inner, self.inner), mode="bilinear", align_corners=False)
            return self.head(self.features(x))

    return EmotionNet()


class TTAWrapper:
    """Module factory: softmax of a network, averaged over the chip and its mirror image."""

    @staticmethod
    def build(net, tta: bool):
        import torch
        from torch import nn

        class Export(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.net = net
                self.register_buffer("rev", torch.arange(SIZE - 1, -1, -1), persistent=False)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                if not tta:
                    return torch.softmax(self.net(x), dim=1)
                n = x.shape[0]
                both = torch.cat([x, torch.index_select(x, 2, self.rev)], dim=0)
                p = torch.softmax(self.net(both), dim=1)
                return (p[:n] + p[n:]) * 0.5

        return Export()


def load_onnx_weights(model, path: Path) -> None:
    """Copy the weights of an exported emotion graph (``emotion.onnx``) into a ``folded`` model.

    The graph's convolutions (batch norm folded in), then MatMul -> BatchNormalization -> Gemm of
    the head, in order; float16-stored initialisers are read back as float32.
    """
    import onnx
    import torch
    from onnx import helper, numpy_helper

    g = onnx.load(str(path)).graph
    arrays = {i.name: numpy_helper.to_array(i).astype(np.float32) for i in g.initializer}
    for n in g.node:  # Cast(x_fp16) -> x
        if n.op_type == "Cast" and n.input[0] in arrays:
            arrays[n.output[0]] = arrays[n.input[0]]
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    lin1, bn, lin2 = model.head[2], model.head[3], model.head[6]
    ci = 0
    with torch.no_grad():
        for n in g.node:
            if n.op_type == "Conv":
                convs[ci].weight.copy_(torch.from_numpy(arrays[n.input[1]]))
                convs[ci].bias.copy_(torch.from_numpy(arrays[n.input[2]]))
                ci += 1
            elif n.op_type == "MatMul":
                lin1.weight.copy_(torch.from_numpy(arrays[n.input[1]].T.copy()))
            elif n.op_type == "BatchNormalization":
                for t, name in zip((bn.weight, bn.bias, bn.running_mean, bn.running_var), n.input[1:5]):
                    t.copy_(torch.from_numpy(arrays[name]))
            elif n.op_type == "Gemm":
                trans = next((helper.get_attribute_value(a) for a in n.attribute if a.name == "transB"), 0)
                w = arrays[n.input[1]]
                lin2.weight.copy_(torch.from_numpy(w if trans else w.T.copy()))
                lin2.bias.copy_(torch.from_numpy(arrays[n.input[2]]))
    if ci != len(convs):
        sys.exit(f"{path}: {ci} convolutions, the model has {len(convs)}")


# -------------------------------------------------------------------------------- augmentation
def video_crop(u8: np.ndarray, rng: np.random.Generator, jitter: float = 0.12, shift: float = 0.06) -> np.ndarray:
    """A 64x64 training chip as the emotion path would cut it from a video frame.

    The face is shown at a random size (32-140 px), with reflected context, gain and offset,
    blur, lost resolution (down- and upscaling), sensor noise and JPEG compression, then a
    jittered box (side x exp(N(0, jitter)), centre moved by N(0, shift) x side) is cut exactly as
    :func:`faceforge.attributes.emotion_crop.emotion_chips` cuts a detection (the shipped recipe).
    """
    import cv2

    from faceforge.attributes.emotion import RECIPE
    from faceforge.attributes.emotion_crop import emotion_chips
    from faceforge.types import Faces

    s = int(round(math.exp(rng.uniform(math.log(32), math.log(140)))))
    face = cv2.resize(u8, (s, s), interpolation=cv2.INTER_AREA if s < u8.shape[0] else cv2.INTER_LINEAR)
    face = face.astype(np.float32) * rng.uniform(0.7, 1.15) + rng.uniform(-25, 25)
    pad = s // 2 + 2
    img = cv2.copyMakeBorder(face, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    sigma = rng.uniform(0.0, 1.2)
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    h, w = img.shape
    if rng.random() < 0.5:
        d = rng.uniform(1.0, 1.8)
        img = cv2.resize(cv2.resize(img, (max(8, int(w / d)), max(8, int(h / d))), interpolation=cv2.INTER_AREA),
                         (w, h), interpolation=cv2.INTER_LINEAR)
    img = np.clip(img + rng.normal(0, rng.uniform(0, 4), img.shape), 0, 255).astype(np.uint8)
    if rng.random() < 0.8:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 91))])
        img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    side = s * math.exp(rng.normal(0, jitter))
    cx, cy = pad + s / 2 + rng.normal(0, shift) * s, pad + s / 2 + rng.normal(0, shift) * s
    faces = Faces(np.array([[cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]], np.float32),
                  np.ones(1, np.float32), None, (w, h), "yunet")
    return emotion_chips(np.repeat(img[:, :, None], 3, axis=2), faces, SIZE, RECIPE.with_(rotate=False))[0]


def video_batch(u8: np.ndarray, rng: np.random.Generator, p: float) -> np.ndarray:
    """``u8`` chips, each replaced by :func:`video_crop` with probability ``p``."""
    out = u8.copy()
    for i in np.flatnonzero(rng.random(len(u8)) < p):
        out[i] = video_crop(u8[i], rng)
    return out


def augment(x, gen, rot: float = 15.0, scale: float = 0.12, shift: float = 0.10, erase: float = 0.25,
            contrast: float = 0.3, brightness: float = 0.2):
    """Random mirror, rotation, scale, shift (one affine warp), brightness/contrast and erasing.

    ``x``: (b, 64, 64) float in [-1, 1]; returns a new tensor. ``shift`` is a fraction of the side.
    """
    import torch
    import torch.nn.functional as F

    b = x.shape[0]

    def u(lo: float, hi: float):
        return torch.rand(b, generator=gen) * (hi - lo) + lo

    a = u(-rot, rot) * math.pi / 180
    s = torch.exp(u(-scale, scale))
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(a) / s, torch.sin(a) / s
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = cos * flip
    theta[:, 0, 1] = -sin
    theta[:, 0, 2] = u(-shift, shift) * 2
    theta[:, 1, 0] = sin * flip
    theta[:, 1, 1] = cos
    theta[:, 1, 2] = u(-shift, shift) * 2
    grid = F.affine_grid(theta, (b, 1, SIZE, SIZE), align_corners=False)
    out = F.grid_sample(x.unsqueeze(1), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    out = out.squeeze(1)
    # contrast around the image mean, then brightness
    mean = out.mean(dim=(1, 2), keepdim=True)
    c = torch.exp(u(-contrast, contrast)).view(b, 1, 1)
    br = u(-brightness, brightness).view(b, 1, 1)
    out = ((out - mean) * c + mean + br).clamp_(-1.0, 1.0)
    if erase > 0:  # random erasing: a box of 2-20% of the area filled with noise
        do = torch.rand(b, generator=gen) < erase
        area = u(0.02, 0.20) * SIZE * SIZE
        ratio = torch.exp(u(math.log(0.3), math.log(3.3)))
        h = (area * ratio).sqrt().clamp(4, SIZE - 1).long()
        w = (area / ratio).sqrt().clamp(4, SIZE - 1).long()
        y0 = (torch.rand(b, generator=gen) * (SIZE - h + 1).float()).long()
        x0 = (torch.rand(b, generator=gen) * (SIZE - w + 1).float()).long()
        rows = torch.arange(SIZE).view(1, SIZE, 1)
        cols = torch.arange(SIZE).view(1, 1, SIZE)
        box = ((rows >= y0.view(b, 1, 1)) & (rows < (y0 + h).view(b, 1, 1))
               & (cols >= x0.view(b, 1, 1)) & (cols < (x0 + w).view(b, 1, 1)) & do.view(b, 1, 1))
        noise = torch.rand(out.shape, generator=gen) * 2 - 1
        out = torch.where(box, noise, out)
    return out


# ------------------------------------------------------------------------------------ training
def evaluate_torch(model, x: np.ndarray, batch: int = 512, tta: bool = False) -> np.ndarray:
    """``(n, 7)`` softmax probabilities of ``model`` on uint8 chips ``x``."""
    import torch

    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(to_input(x[i:i + batch]))
            p = torch.softmax(model(xb), 1)
            if tta:
                p = (p + torch.softmax(model(torch.flip(xb, dims=[2])), 1)) / 2
            out.append(p.numpy())
    return np.concatenate(out)


def onnx_probs(path: Path, x: np.ndarray, batch: int = 256, threads: int = 2) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: to_input(x[i:i + batch])})[0] for i in range(0, len(x), batch)])


def export_onnx(net, out: Path, tta: bool, fp16_weights: bool) -> None:
    """Atomic ONNX export (opset 17) of ``net`` (+ flip TTA and softmax), checked with onnx."""
    import onnx
    import torch

    net = net.eval()
    wrapped = TTAWrapper.build(net, tta).eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=".onnx", dir=out.parent, prefix=".emotion-")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        kwargs = dict(input_names=["input"], output_names=["probs"], opset_version=17,
                      dynamic_axes={"input": {0: "n"}, "probs": {0: "n"}}, do_constant_folding=True)
        dummy = torch.zeros(2, SIZE, SIZE)
        try:
            torch.onnx.export(wrapped, (dummy,), str(tmp), dynamo=False, **kwargs)
        except TypeError:  # older torch without the dynamo switch
            torch.onnx.export(wrapped, (dummy,), str(tmp), **kwargs)
        model = onnx.load(str(tmp))
        if fp16_weights:
            model = weights_to_fp16(model)
        model.producer_name = "faceforge scripts/train_emotion.py"
        meta = {"classes": ",".join(CLASSES), "input": "(n,64,64) float32 grey in [-1,1]",
                "output": "(n,7) softmax probabilities", "flip_tta": str(bool(tta))}
        for k, v in meta.items():
            p = model.metadata_props.add()
            p.key, p.value = k, v
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()


def weights_to_fp16(model):
    """Store large float initialisers as float16 followed by a Cast to float32 (computed in fp32:
    onnxruntime folds the casts when it loads the graph). Halves the file size."""
    import onnx
    from onnx import helper, numpy_helper

    g = model.graph
    new_inits, casts = [], []
    for init in g.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.float32 and arr.size >= 1024:
            half = numpy_helper.from_array(arr.astype(np.float16), init.name + "_fp16")
            new_inits.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=onnx.TensorProto.FLOAT,
                                          name=init.name + "_cast"))
        else:
            new_inits.append(init)
    del g.initializer[:]
    g.initializer.extend(new_inits)
    nodes = casts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)
    return model


def per_class(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    return {c: float(np.mean(pred[y == i] == i)) for i, c in enumerate(CLASSES)}


def confusion(y: np.ndarray, pred: np.ndarray) -> list[list[int]]:
    m = np.zeros((len(CLASSES), len(CLASSES)), np.int64)
    np.add.at(m, (y, pred), 1)
    return m.tolist()


def latency_ms(path: Path, runs: int = 300) -> float:
    """Median single-face latency (one 64x64 chip, onnxruntime with one thread)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(-1, 1, (1, SIZE, SIZE)).astype(np.float32)
    name = sess.get_inputs()[0].name
    for _ in range(20):
        sess.run(None, {name: x})
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        sess.run(None, {name: x})
        ts.append(time.perf_counter() - t)
    return float(np.median(ts) * 1000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "emotion" / "fer2013",
                    help="folder with train/<class>/ and public_test/<class>/")
    ap.add_argument("--out", type=Path, default=ROOT / "src" / "faceforge" / "attributes" / "models" / "emotion.onnx")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "emotion_train.json",
                    help="results JSON ('' to skip)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (AdamW, one-cycle)")
    ap.add_argument("--wd", type=float, default=0.02, help="decoupled weight decay (conv and linear weights)")
    ap.add_argument("--width", type=int, default=32, help="channels of the first stage (x2 per stage)")
    ap.add_argument("--fc", type=int, default=256)
    ap.add_argument("--drop", type=float, default=0.3, help="dropout before both fully connected layers")
    ap.add_argument("--drop2d", type=float, default=0.0, help="channel dropout after stages 2-4")
    ap.add_argument("--rot", type=float, default=15.0, help="augmentation: max rotation (degrees)")
    ap.add_argument("--scale", type=float, default=0.12, help="augmentation: max log zoom")
    ap.add_argument("--shift", type=float, default=0.10, help="augmentation: max shift (fraction of the side)")
    ap.add_argument("--contrast", type=float, default=0.3, help="augmentation: max log contrast factor")
    ap.add_argument("--brightness", type=float, default=0.2, help="augmentation: max brightness offset (of 2)")
    ap.add_argument("--erase", type=float, default=0.25, help="augmentation: random erasing probability")
    ap.add_argument("--inner", type=int, default=48, help="resolution the network runs at inside the graph")
    ap.add_argument("--smoothing", type=float, default=0.1)
    ap.add_argument("--ema", type=float, default=0.999, help="weight EMA decay (0 = off)")
    ap.add_argument("--val-frac", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="use only this many training batches per epoch (smoke test)")
    ap.add_argument("--cache", type=Path, default=None, help="optional folder (outside the repo) for decoded arrays")
    ap.add_argument("--no-tta-graph", action="store_true", help="export without the built-in flip averaging")
    ap.add_argument("--fp16-weights", choices=["auto", "yes", "no"], default="auto",
                    help="store weights as float16 in the ONNX file (auto: if fp32 would exceed 6 MB)")
    ap.add_argument("--init", type=Path, default=None,
                    help="start from this PyTorch state dict (a --checkpoint of an earlier run): continue training")
    ap.add_argument("--checkpoint", type=Path, default=None, help="also save the best PyTorch state dict here")
    ap.add_argument("--init-onnx", type=Path, default=None,
                    help="start from an exported emotion.onnx (batch norm folded: the convolutions get biases)")
    ap.add_argument("--video-aug", type=float, default=0.0,
                    help="probability that a training chip is re-cut as from a video frame (video_crop)")
    ap.add_argument("--val-video", action="store_true",
                    help="choose the epoch on the mean of clean and video-style (seeded video_crop) "
                         "validation accuracy")
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    t_start = time.time()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)

    cache = args.cache
    x_all, y_all, _ = load_split(args.data / "train", cache / "fer2013_train_64.npz" if cache else None)
    tr_idx, va_idx = stratified_split(y_all, args.val_frac, args.seed)
    x_tr, y_tr = x_all[tr_idx], y_all[tr_idx]
    x_va, y_va = x_all[va_idx], y_all[va_idx]
    print(f"train {len(x_tr)}  val {len(x_va)}  (from {args.data / 'train'}), "
          f"load {time.time() - t_start:.1f}s", flush=True)

    folded = args.init_onnx is not None
    model = build_model(args.width, args.fc, args.drop, args.inner, args.drop2d, folded)
    if args.init_onnx:
        load_onnx_weights(model, args.init_onnx)
        print(f"starting from {args.init_onnx}", flush=True)
    if args.init:
        model.load_state_dict(torch.load(args.init, map_location="cpu"))
        print(f"starting from {args.init}", flush=True)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"EmotionNet width {args.width} fc {args.fc} inner {args.inner}: {n_params / 1e6:.2f} M parameters",
          flush=True)
    ema = None
    if args.ema > 0:
        ema = build_model(args.width, args.fc, args.drop, args.inner, args.drop2d, folded)
        ema.load_state_dict(model.state_dict())
        for p in ema.parameters():
            p.requires_grad_(False)

    decay, no_decay = [], []
    for _name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr)
    steps_per_epoch = len(x_tr) // args.batch
    if args.limit:
        steps_per_epoch = min(steps_per_epoch, args.limit)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch,
                                                pct_start=0.15, div_factor=20, final_div_factor=200)
    x_tr_t = torch.from_numpy(to_input(x_tr))
    y_tr_t = torch.from_numpy(y_tr)

    vrng = np.random.default_rng(args.seed + 1) if args.video_aug > 0 else None
    x_va_video = video_batch(x_va, np.random.default_rng(args.seed + 2), 1.0) if args.val_video else None

    def val_score(m) -> float:
        """Validation accuracy (the mean of clean and video-style when --val-video)."""
        clean = float(np.mean(evaluate_torch(m, x_va).argmax(1) == y_va))
        if x_va_video is None:
            return clean
        video = float(np.mean(evaluate_torch(m, x_va_video).argmax(1) == y_va))
        print(f"  val clean {clean:.4f}  video-style {video:.4f}", flush=True)
        return (clean + video) / 2

    best = (-1.0, -1)
    best_state = None
    if args.init_onnx or args.init:  # the starting point is a candidate too (epoch 0)
        best = (val_score(ema if ema is not None else model), 0)
        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        best_src = "init"
        print(f"epoch   0  val {best[0]:.4f} (the starting weights)", flush=True)
    history = []
    t_train = time.time()
    step = 0
    for epoch in range(1, args.epochs + 1):
        model.train()
        t0 = time.time()
        perm = torch.randperm(len(x_tr), generator=gen)
        tot, correct, seen = 0.0, 0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch}/{args.epochs}", leave=False, mininterval=5,
                   file=sys.stdout)
        for i in bar:
            idx = perm[i * args.batch:(i + 1) * args.batch]
            xin = x_tr_t[idx] if vrng is None else torch.from_numpy(to_input(video_batch(x_tr[idx.numpy()], vrng,
                                                                                               args.video_aug)))
            xb = augment(xin, gen, rot=args.rot, scale=args.scale, shift=args.shift, erase=args.erase,
                         contrast=args.contrast, brightness=args.brightness)
            yb = y_tr_t[idx]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb, label_smoothing=args.smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if ema is not None:
                d = min(args.ema, (1 + step) / (10 + step))
                with torch.no_grad():
                    for pe, pm in zip(ema.parameters(), model.parameters()):
                        pe.mul_(d).add_(pm.detach(), alpha=1 - d)
                    for be, bm in zip(ema.buffers(), model.buffers()):
                        be.copy_(bm)
            tot += loss.item() * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
            seen += len(idx)
            if i % 20 == 0:
                bar.set_postfix(loss=f"{tot / seen:.3f}", acc=f"{correct / seen:.3f}")
        bar.close()
        evals = {"net": model} if ema is None else {"ema": ema}  # EMA weights: one evaluation per epoch
        accs = {}
        for k, m in evals.items():
            accs[k] = val_score(m)
        pick = max(accs, key=accs.get)
        row = {"epoch": epoch, "train_loss": tot / seen, "train_acc": correct / seen,
               "val_acc": accs[pick], "weights": pick, "lr": sched.get_last_lr()[0],
               "seconds": time.time() - t0}
        history.append(row)
        mark = ""
        if accs[pick] > best[0]:
            best = (accs[pick], epoch)
            best_state = {k: v.detach().clone() for k, v in evals[pick].state_dict().items()}
            best_src = pick
            mark = f"  * best ({pick})"
        print(f"epoch {epoch:3d}  train loss {row['train_loss']:.4f}  train acc {row['train_acc']:.4f}  "
              f"val acc{' (ema)' if ema is not None else ''} {accs[pick]:.4f}  lr {row['lr']:.2e}  "
              f"{row['seconds']:.0f}s{mark}", flush=True)
    train_seconds = time.time() - t_train

    final = build_model(args.width, args.fc, args.drop, args.inner, args.drop2d, folded)
    final.load_state_dict(best_state)
    final.eval()
    if args.checkpoint:
        args.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        torch.save(best_state, args.checkpoint)
    val_tta = float(np.mean(evaluate_torch(final, x_va, tta=True).argmax(1) == y_va))
    print(f"best epoch {best[1]} ({best_src}): val acc {best[0]:.4f}, with flip TTA {val_tta:.4f}", flush=True)

    # ---- export (fp32, or fp16-stored weights when fp32 would not fit in 6 MB)
    tta_graph = not args.no_tta_graph
    fp16 = args.fp16_weights == "yes" or (args.fp16_weights == "auto" and n_params * 4 > 5.9e6)
    export_onnx(final, args.out, tta=tta_graph, fp16_weights=fp16)
    plain = Path(tempfile.mkdtemp()) / "plain.onnx"
    export_onnx(final, plain, tta=False, fp16_weights=fp16)
    size_mb = args.out.stat().st_size / 1e6
    print(f"exported {args.out} ({size_mb:.2f} MB, fp16 weights: {fp16}, flip TTA in graph: {tta_graph})", flush=True)

    # ---- public_test, once, with onnxruntime
    x_te, y_te, _ = load_split(args.data / "public_test", cache / "fer2013_public_test_64.npz" if cache else None)
    p_plain = onnx_probs(plain, x_te)
    p_tta = onnx_probs(args.out, x_te) if tta_graph else None
    if p_tta is None:  # TTA computed outside the graph
        p_tta = (p_plain + onnx_probs(plain, x_te[:, :, ::-1].copy())) / 2
    # the ONNX graph must agree with PyTorch
    p_torch = evaluate_torch(final, x_te[:256])
    max_diff = float(np.abs(p_torch - p_plain[:256]).max())
    lat_plain = latency_ms(plain)
    lat_out = latency_ms(args.out)
    results = {}
    for name, p in (("no_tta", p_plain), ("flip_tta", p_tta)):
        pred = p.argmax(1)
        results[name] = {"accuracy": float(np.mean(pred == y_te)), "per_class": per_class(y_te, pred),
                         "confusion": confusion(y_te, pred)}
    print(f"\npublic_test ({len(y_te)} images), onnxruntime; max |onnx - torch| = {max_diff:.2e}")
    print(f"{'class':10s} {'n':>5s} {'no TTA':>8s} {'flip TTA':>9s}")
    for i, c in enumerate(CLASSES):
        print(f"{c:10s} {int(np.sum(y_te == i)):5d} {results['no_tta']['per_class'][c]:8.4f} "
              f"{results['flip_tta']['per_class'][c]:9.4f}")
    print(f"{'overall':10s} {len(y_te):5d} {results['no_tta']['accuracy']:8.4f} {results['flip_tta']['accuracy']:9.4f}")
    wall = time.time() - t_start
    print(f"latency (1 face, onnxruntime 1 thread): {lat_plain:.2f} ms plain, {lat_out:.2f} ms shipped graph")
    print(f"training {train_seconds / 60:.1f} min, total wall time {wall / 60:.1f} min")

    if str(args.results):
        cmd = "python " + " ".join([str(Path(sys.argv[0]))] + sys.argv[1:])
        rec = {
            "date": dt.datetime.now().isoformat(timespec="seconds"),
            "machine": "2-core CPU",
            "platform": platform.platform(),
            "torch": torch.__version__,
            "command": cmd,
            "model": str(args.out.relative_to(ROOT)) if args.out.is_relative_to(ROOT) else str(args.out),
            "model_bytes": args.out.stat().st_size,
            "fp16_weights": fp16,
            "flip_tta_in_graph": tta_graph,
            "parameters": n_params,
            "hyperparameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "n_train": int(len(x_tr)), "n_val": int(len(x_va)), "n_public_test": int(len(y_te)),
            "best_epoch": best[1], "best_weights": best_src, "val_accuracy": best[0], "val_accuracy_flip_tta": val_tta,
            "classes": CLASSES,
            "public_test": results,
            "public_test_accuracy": results["no_tta"]["accuracy"],
            "public_test_accuracy_flip_tta": results["flip_tta"]["accuracy"],
            "onnx_vs_torch_max_abs_diff": max_diff,
            "latency_ms_1_face_1_thread": {"no_tta": lat_plain, "shipped": lat_out},
            "train_seconds": train_seconds,
            "wall_seconds": wall,
            "history": history,
        }
        args.results.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.results.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(rec, indent=2) + "\n")
        os.replace(tmp, args.results)
        print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
