"""The bundled EfficientNet-Lite0 as a trainable PyTorch module, rebuilt from its ONNX file.

featcell ships the ImageNet weights of EfficientNet-Lite0 only as ONNX
(``featcell/models/efficientnet_lite0.onnx``, see ``NOTICE.md`` there). To
fine-tune it, :func:`convert_onnx` reads the graph's initializers with
``onnx.numpy_helper`` and maps them onto a small torch module that runs the same
operations: constant padding (TensorFlow ``SAME`` padding, fixed as exported),
convolutions with their batch norm folded into weight and bias, ReLU6 (``Clip``),
residual additions and global average pooling. Nothing is downloaded, and the
module reproduces onnxruntime's output to float tolerance (``tests/test_cnn_finetune.py``).

:func:`efficientnet_lite0` wraps that trunk for :class:`~featcell.CNNClassifier`
(``architecture="efficientnet_lite0"``): crops of any number of channels, a new
classifier head, and a trunk that learns at a fraction of the head's learning rate
and decays towards the pretrained weights (see :class:`_Finetuned`).

torch and onnx (the ``featcell[train]`` extra) are imported inside the functions,
never at import time.
"""

from __future__ import annotations

import numpy as np

from ._sessions import BUNDLED_MODEL

# Ops whose inputs are all constants (the exporter's arithmetic on the padding amounts):
# evaluated once at conversion, never part of the module.
_CONSTANT_OPS = {"Constant", "ConstantOfShape", "Concat", "Reshape", "Slice", "Transpose", "Cast"}
_GRAPH_OPS = {"Mul", "Add", "Pad", "Conv", "Clip", "GlobalAveragePool", "Flatten"}
# The trunk learns at this fraction of the head's learning rate (see _Finetuned).
TRUNK_LR_RATIO = 0.1
N_FEATURES = 1280


def _require_onnx(who):
    try:
        import onnx
    except ImportError as exc:
        raise ImportError(
            f"{who} reads the bundled network's weights with the onnx package, which is not "
            "installed; install featcell's training extra: pip install 'featcell[train]'"
        ) from exc
    return onnx


def _constant_values(model, names):
    """Values of the graph tensors ``names`` that depend on no input (padding amounts).

    The nodes that compute them (and only those) are evaluated with onnx's reference
    evaluator.
    """
    onnx = _require_onnx("convert_onnx")
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    nodes = [n for n in graph.node if n.op_type in _CONSTANT_OPS]
    outputs = [onnx.helper.make_tensor_value_info(name, onnx.TensorProto.UNDEFINED, None)
               for name in names]
    sub = onnx.helper.make_graph(nodes, "constants", [], outputs, list(graph.initializer))
    opset = [onnx.helper.make_opsetid(o.domain, o.version) for o in model.opset_import]
    evaluator = ReferenceEvaluator(onnx.helper.make_model(sub, opset_imports=opset))
    return dict(zip(names, evaluator.run(None, {}), strict=True))


def _parse(path):
    """The graph of an EfficientNet-Lite ONNX file as a program of simple steps.

    Returns
    -------
    steps : list of tuple
        ``(op, inputs, output, extra)`` in execution order, tensor names as in the graph.
    arrays : dict of str to ndarray
        The initializers (weights, biases, the input scale and shift).
    input_name, output_name : str
    """
    onnx = _require_onnx("convert_onnx")
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    unknown = sorted({n.op_type for n in graph.node} - _CONSTANT_OPS - _GRAPH_OPS)
    if unknown or len(graph.input) != 1 or len(graph.output) != 1:
        raise ValueError(
            f"{path}: not an EfficientNet-Lite graph featcell can convert (operators "
            f"{unknown}, {len(graph.input)} inputs, {len(graph.output)} outputs)"
        )
    constants = [n.input[i] for n in graph.node if n.op_type in ("Pad", "Clip")
                 for i in range(1, len(n.input)) if n.input[i]]
    values = _constant_values(model, [c for c in constants if c not in arrays])
    values.update({c: arrays[c] for c in constants if c in arrays})
    steps = []
    for node in graph.node:
        if node.op_type in _CONSTANT_OPS:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        inputs, output = list(node.input), node.output[0]
        extra = None
        if node.op_type == "Pad":
            if attrs.get("mode", b"constant") != b"constant" or (
                len(inputs) > 2 and float(values[inputs[2]]) != 0.0
            ):
                raise ValueError(f"{path}: only zero padding is supported ({node.name})")
            pads = [int(p) for p in values[inputs[1]]]  # begins then ends, per axis
            if any(pads[:2]) or any(pads[4:6]):
                raise ValueError(f"{path}: padding of the batch or channel axis ({node.name})")
            extra = (pads[3], pads[7], pads[2], pads[6])  # torch order: left, right, top, bottom
            inputs = inputs[:1]
        elif node.op_type == "Clip":
            extra = tuple(float(values[name]) for name in inputs[1:3])
            inputs = inputs[:1]
        elif node.op_type == "Conv":
            if any(attrs.get("pads", [0])) or any(d != 1 for d in attrs.get("dilations", [1])):
                raise ValueError(f"{path}: convolution with implicit padding ({node.name})")
            extra = (tuple(attrs.get("strides", (1, 1))), int(attrs.get("group", 1)))
        steps.append((node.op_type, inputs, output, extra))
    return steps, arrays, graph.input[0].name, graph.output[0].name


def _modules():
    import torch
    from torch import nn
    from torch.nn import functional as F

    class _Conv(nn.Module):
        """A convolution whose weights are ``pretrained + scale * delta``.

        Only ``delta`` (and ``delta_bias``) are trained, from zero: with Adam the
        weights then move at ``scale`` times the optimiser's learning rate (a lower
        learning rate for the pretrained trunk), and weight decay pulls them back
        towards the pretrained values rather than towards zero (L2-SP, Li et al. 2018).
        """

        def __init__(self, weight, bias, stride, groups, scale):
            super().__init__()
            self.register_buffer("pretrained", torch.as_tensor(np.array(weight, np.float32)))
            self.register_buffer("pretrained_bias", torch.as_tensor(np.array(bias, np.float32)))
            self.delta = nn.Parameter(torch.zeros_like(self.pretrained))
            self.delta_bias = nn.Parameter(torch.zeros_like(self.pretrained_bias))
            self.stride, self.groups, self.scale = tuple(stride), int(groups), float(scale)

        def forward(self, x):
            weight = self.pretrained + self.scale * self.delta
            bias = self.pretrained_bias + self.scale * self.delta_bias
            return F.conv2d(x, weight, bias, self.stride, 0, 1, self.groups)

    class EfficientNetTrunk(nn.Module):
        """The converted graph: ``forward`` takes what the ONNX file takes (ImageNet-normalised
        RGB), ``trunk`` what its first convolution sees (the input after the graph's own scale
        and shift); both return the (N, 1280) pooled features."""

        def __init__(self, steps, arrays, input_name, output_name, scale=1.0):
            super().__init__()
            if len(steps) < 2 or [s[0] for s in steps[:2]] != ["Mul", "Add"] \
                    or steps[0][1][0] != input_name:
                raise ValueError("the graph does not start with its input scale and shift")
            self.register_buffer("input_scale", torch.tensor(arrays[steps[0][1][1]]))
            self.register_buffer("input_shift", torch.tensor(arrays[steps[1][1][1]]))
            self.first = steps[1][2]  # the tensor the trunk starts from
            self.convs = nn.ModuleList()
            self.program = []
            for op, inputs, output, extra in steps[2:]:
                if op == "Conv":
                    weight = arrays[inputs[1]]
                    bias = arrays[inputs[2]] if len(inputs) > 2 else np.zeros(len(weight))
                    self.convs.append(_Conv(weight, bias, *extra, scale))
                    extra, inputs = len(self.convs) - 1, inputs[:1]
                elif any(name in arrays for name in inputs):
                    raise ValueError(f"unsupported use of a constant by {op} -> {output}")
                self.program.append((op, tuple(inputs), output, extra))
            self.output = output_name

        def trunk(self, x):
            values = {self.first: x}
            for op, inputs, output, extra in self.program:
                a = values[inputs[0]]
                if op == "Conv":
                    out = self.convs[extra](a)
                elif op == "Pad":
                    out = F.pad(a, extra)
                elif op == "Clip":
                    out = torch.clamp(a, *extra)
                elif op == "Add":
                    out = a + values[inputs[1]]
                elif op == "GlobalAveragePool":
                    out = a.mean(dim=(2, 3), keepdim=True)
                elif op == "Flatten":
                    out = torch.flatten(a, 1)
                else:  # Mul inside the graph: not in EfficientNet-Lite
                    raise ValueError(f"unsupported operator {op} inside the graph")
                values[output] = out
            return values[self.output]

        def forward(self, x):
            return self.trunk(x * self.input_scale + self.input_shift)

    class _Finetuned(nn.Module):
        """EfficientNet-Lite0 for K-channel crops in [0, 1], with a new head.

        Each channel is fed as a grey image: the pretrained network saw RGB in [0, 1]
        through its own map ``(255 x - 127) / 128`` (the ImageNet normalisation and the
        graph's scale and shift together), applied here to every channel. The first
        convolution's weights are summed over RGB and shared evenly between the K
        channels, so that a one-channel crop starts exactly as the pretrained network
        sees its grey image, and K channels start as their mean.

        The trunk is trained as ``pretrained + ratio * delta`` (:class:`_Conv`), so it
        learns at ``ratio`` times the head's learning rate and weight decay keeps it
        near the pretrained weights; the head (dropout, linear) learns at full rate.
        """

        def __init__(self, trunk, n_channels, n_classes, dropout=0.2):
            super().__init__()
            self.net = trunk
            stem = trunk.convs[0]
            weight = stem.pretrained.sum(dim=1, keepdim=True) / n_channels
            stem.pretrained = weight.repeat(1, n_channels, 1, 1).contiguous()
            stem.delta = nn.Parameter(torch.zeros_like(stem.pretrained))
            self.register_buffer("scale", torch.tensor(255.0 / 128.0))
            self.register_buffer("shift", torch.tensor(-127.0 / 128.0))
            self.dropout = nn.Dropout(dropout)
            self.fc = nn.Linear(N_FEATURES, n_classes)

        def embed(self, x):
            return self.net.trunk(x * self.scale + self.shift)

        def forward(self, x):
            return self.fc(self.dropout(self.embed(x)))

    return EfficientNetTrunk, _Finetuned


def convert_onnx(path=None, *, trunk_lr_ratio=1.0):
    """The EfficientNet-Lite ONNX file as a torch module (eval mode) with the same output.

    Parameters
    ----------
    path : path-like, default=None
        The ONNX file; ``None`` is the bundled ``efficientnet_lite0.onnx``.
    trunk_lr_ratio : float, default=1.0
        Scale of the trained deltas of the convolutions (see :func:`efficientnet_lite0`).

    Returns
    -------
    torch.nn.Module
        ``forward((N, 3, H, W) ImageNet-normalised RGB) -> (N, 1280)``, as the ONNX file.
    """
    steps, arrays, input_name, output_name = _parse(BUNDLED_MODEL if path is None else path)
    trunk_class, _ = _modules()
    return trunk_class(steps, arrays, input_name, output_name, trunk_lr_ratio).eval()


def efficientnet_lite0(n_channels, n_classes, *, trunk_lr_ratio=TRUNK_LR_RATIO):
    """The bundled EfficientNet-Lite0 with a new head, ready to fine-tune on K-channel crops.

    Parameters
    ----------
    n_channels : int
        Channels of the crops (each fed as a grey image; see ``_Finetuned``).
    n_classes : int
        Outputs of the new linear head, on the 1280 pooled features.
    trunk_lr_ratio : float, default=0.1
        The pretrained convolutions learn at this fraction of the learning rate.

    Returns
    -------
    torch.nn.Module
        ``forward(x)`` gives logits, ``embed(x)`` the (N, 1280) features and ``fc`` is
        the head, as the ResNet of :class:`~featcell.CNNClassifier`; input (N, K, S, S)
        in [0, 1].
    """
    _, finetuned = _modules()
    return finetuned(convert_onnx(trunk_lr_ratio=trunk_lr_ratio), n_channels, n_classes)
