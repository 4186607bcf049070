"""Cut the bundled EfficientNet-Lite0 after its stride-4 and stride-8 stages (dev-only).

Dense pixel features for density counting (:class:`featcell.features.image.CNNPixelFeatures`)
need the network's early feature maps, not its pooled embedding. This script extracts, from
``featcell/models/efficientnet_lite0.onnx``, the sub-graph from ``input`` to

* ``stride4``: the output of MBConv block 2, ``(N, 24, H/4, W/4)``;
* ``stride8``: the output of MBConv block 4, ``(N, 40, H/8, W/8)``;

keeps the same input convention (RGB in ``[0, 1]``, ImageNet mean/std), adds the metadata
``featcell.model_name``, checks the graph with ``onnx.checker`` and checks that onnxruntime gives
the same two maps as the full model (the same tensors exposed as extra outputs). It needs the
``onnx`` package, a development dependency; featcell only runs the result with onnxruntime.

Usage::

    python tools/cut_onnx_early.py [--output featcell/models/efficientnet_lite0_stride8.onnx]
"""

import argparse
import hashlib
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnx.utils
import onnxruntime as ort

MODELS = Path(__file__).resolve().parents[1] / "featcell" / "models"
SOURCE = MODELS / "efficientnet_lite0.onnx"
DEFAULT_OUTPUT = MODELS / "efficientnet_lite0_stride8.onnx"
CUTS = {"stride4": "/_blocks.2/Add_output_0", "stride8": "/_blocks.4/Add_output_0"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cut = Path(tmp) / "cut.onnx"
        onnx.utils.extract_model(str(SOURCE), str(cut), ["input"], list(CUTS.values()))
        model = onnx.load(str(cut))
    rename = {old: new for new, old in CUTS.items()}
    for node in model.graph.node:
        node.output[:] = [rename.get(o, o) for o in node.output]
        node.input[:] = [rename.get(i, i) for i in node.input]
    for output in model.graph.output:
        output.name = rename.get(output.name, output.name)
    del model.metadata_props[:]
    for key, value in {
        "featcell.model_name": "EfficientNetLite0Stride8",
        "featcell.source": f"{SOURCE.name} cut after MBConv blocks 2 (stride 4) and 4 (stride 8) "
        "by tools/cut_onnx_early.py",
        "featcell.license": "Apache-2.0",
    }.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(args.output))

    # the cut graph's maps equal the full model's intermediate tensors
    full = onnx.load(str(SOURCE))
    for name in CUTS.values():
        full.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    reference = ort.InferenceSession(full.SerializeToString(), providers=["CPUExecutionProvider"])
    session = ort.InferenceSession(str(args.output), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(2, 3, 128, 96)).astype(np.float32)
    got = session.run(list(CUTS), {"input": x})
    want = reference.run(list(CUTS.values()), {"input": x})
    worst = 0.0
    for name, a, b in zip(CUTS, got, want):
        print(f"{name}: shape {a.shape}, max |cut - full| = {np.abs(a - b).max():.2e}")
        worst = max(worst, float(np.abs(a - b).max()))
    size = args.output.stat().st_size
    digest = hashlib.sha256(args.output.read_bytes()).hexdigest()
    print(f"wrote {args.output} ({size / 1024:.0f} KiB), sha256 {digest}")
    if worst > 1e-5 or got[0].shape[2:] != (32, 24) or got[1].shape[2:] != (16, 12):
        sys.exit("check failed")


if __name__ == "__main__":
    main()
