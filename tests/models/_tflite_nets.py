"""Test-only TFLite models written op by op with LiteRT's own FlatBuffer schema module.

They are real .tflite files that LiteRT runs; writing them directly (rather than converting
a Keras model) reaches what a converter rarely emits (a separate RELU6 op, PADV2 with a
value, SYMMETRIC mirror padding, a fused TANH, an int8 conv, open dimensions) and needs
no TensorFlow. `schema` is `ai_edge_litert.schema_py_generated`, passed in by the tests
after their import check.
"""

from __future__ import annotations

import numpy as np

_TYPES = {"float32": 0, "float16": 1, "int32": 2, "int8": 9}


class Net:
    """A main subgraph under construction: add tensors and ops, then `save` it."""

    def __init__(self, schema):
        self.s = schema
        self.tensors = []
        self.buffers = [schema.BufferT()]  # buffer 0: the schema's empty sentinel
        self.ops = []
        self.codes: list[int] = []

    def tensor(self, shape, dtype="float32", data=None, name="", signature=None, quant=None) -> int:
        """Add a tensor (a constant when `data` is given); return its index."""
        t = self.s.TensorT()
        t.shape = list(shape)
        t.shapeSignature = list(signature) if signature is not None else None
        t.type = _TYPES[dtype]
        t.name = name or f"t{len(self.tensors)}"
        t.buffer = 0
        if data is not None:
            buffer = self.s.BufferT()
            buffer.data = np.frombuffer(np.ascontiguousarray(data, dtype=dtype).tobytes(), np.uint8)
            self.buffers.append(buffer)
            t.buffer = len(self.buffers) - 1
        if quant is not None:
            q = self.s.QuantizationParametersT()
            q.scale, q.zeroPoint = list(quant[0]), list(quant[1])
            q.quantizedDimension = quant[2] if len(quant) > 2 else 0
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, name: str, inputs, outputs, options=None, custom: str = "") -> None:
        """Add an operator by its builtin name ('CONV_2D', ...), with its options object."""
        code = self.s.BuiltinOperator.CUSTOM if custom else getattr(self.s.BuiltinOperator, name)
        key = (code, custom)
        if key not in self.codes:
            self.codes.append(key)
        op = self.s.OperatorT()
        op.opcodeIndex = self.codes.index(key)
        op.inputs, op.outputs = list(inputs), list(outputs)
        if options is not None:
            op.builtinOptionsType = getattr(self.s.BuiltinOptions, type(options).__name__[:-1])
            op.builtinOptions = options
        self.ops.append(op)

    def conv(self, name, x, kernel_ohwi, bias, out_shape, padding="VALID", stride=(1, 1), dilation=(1, 1),
             activation="NONE", depthwise=False) -> int:
        """Add a CONV_2D (or DEPTHWISE_CONV_2D, kernel (1, kh, kw, C*m)); return its output tensor."""
        w = self.tensor(kernel_ohwi.shape, data=kernel_ohwi, name=name + "/weights")
        # LiteRT's conv kernels take a missing bias as two inputs, not an omitted (-1) third.
        inputs = [x, w] if bias is None else [x, w, self.tensor(bias.shape, data=bias, name=name + "/bias")]
        out = self.tensor(out_shape, name=name)
        options = self.s.DepthwiseConv2DOptionsT() if depthwise else self.s.Conv2DOptionsT()
        options.padding = getattr(self.s.Padding, padding)
        options.strideH, options.strideW = stride
        options.dilationHFactor, options.dilationWFactor = dilation
        options.fusedActivationFunction = getattr(self.s.ActivationFunctionType, activation)
        if depthwise:
            options.depthMultiplier = kernel_ohwi.shape[3] // self.tensors[x].shape[3]
        self.op("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", inputs, [out], options)
        return out

    def save(self, path, inputs, outputs) -> str:
        """Write the model to `path` with the 'TFL3' identifier; return the path."""
        import flatbuffers

        graph = self.s.SubGraphT()
        graph.tensors, graph.operators = self.tensors, self.ops
        graph.inputs, graph.outputs = list(inputs), list(outputs)
        graph.name = "main"
        model = self.s.ModelT()
        model.version = 3
        model.subgraphs = [graph]
        model.buffers = self.buffers
        model.operatorCodes = []
        for code, custom in self.codes:
            oc = self.s.OperatorCodeT()
            oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 1
            oc.customCode = custom or None
            model.operatorCodes.append(oc)
        model.description = "convcheck test model"
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        with open(path, "wb") as fp:
            fp.write(builder.Output())
        return str(path)


def _weights(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def layers_net(schema, path, rng) -> str:
    """Input (1, 8, 8, 2); five convs, each with something around it:

    a: 3x3 stride 2 SAME on an even size, no bias, then a separate RELU6 op (absorbed);
    b: SYMMETRIC MIRROR_PAD ((1, 1), (2, 2)) then 3x3 VALID with a fused RELU_N1_TO_1;
    c: PADV2 value 0.5 ((1, 0), (0, 1)) then a 2x2 depthwise (multiplier 2), then LOGISTIC;
    d: REFLECT MIRROR_PAD then 3x3 SAME (the pad is not absorbed: the conv pads with zeros
       again), its output read by a RELU and by an ADD (several readers: nothing absorbed);
    e: 1x1 on the ADD, then a separate RELU op (absorbed), the model output.
    """
    s = schema
    net = Net(s)
    x = net.tensor((1, 8, 8, 2), name="image")
    a = net.conv("a/conv", x, _weights(rng, 3, 3, 3, 2), np.zeros(3, np.float32), (1, 4, 4, 3), padding="SAME",
                 stride=(2, 2))
    a6 = net.tensor((1, 4, 4, 3), name="a/relu6")
    net.op("RELU6", [a], [a6])
    pads_b = net.tensor((4, 2), "int32", np.array([[0, 0], [1, 1], [2, 2], [0, 0]]), name="b/paddings")
    pb = net.tensor((1, 6, 8, 3), name="b/mirror")
    mirror = s.MirrorPadOptionsT()
    mirror.mode = s.MirrorPadMode.SYMMETRIC
    net.op("MIRROR_PAD", [a6, pads_b], [pb], mirror)
    b = net.conv("b/conv", pb, _weights(rng, 4, 3, 3, 3), _weights(rng, 4), (1, 4, 6, 4), activation="RELU_N1_TO_1")
    pads_c = net.tensor((4, 2), "int32", np.array([[0, 0], [1, 0], [0, 1], [0, 0]]), name="c/paddings")
    value = net.tensor((), data=np.array(0.5, np.float32), name="c/value")
    pc = net.tensor((1, 5, 7, 4), name="c/padv2")
    net.op("PADV2", [b, pads_c, value], [pc], s.PadV2OptionsT())
    c = net.conv("c/depthwise", pc, _weights(rng, 1, 2, 2, 8), _weights(rng, 8), (1, 4, 6, 8), depthwise=True)
    cs = net.tensor((1, 4, 6, 8), name="c/sigmoid")
    net.op("LOGISTIC", [c], [cs])
    pads_d = net.tensor((4, 2), "int32", np.array([[0, 0], [1, 1], [1, 1], [0, 0]]), name="d/paddings")
    pd = net.tensor((1, 6, 8, 8), name="d/mirror")
    reflect = s.MirrorPadOptionsT()
    reflect.mode = s.MirrorPadMode.REFLECT
    net.op("MIRROR_PAD", [cs, pads_d], [pd], reflect)
    d = net.conv("d/conv", pd, _weights(rng, 8, 3, 3, 8), _weights(rng, 8), (1, 6, 8, 8), padding="SAME")
    dr = net.tensor((1, 6, 8, 8), name="d/relu")
    net.op("RELU", [d], [dr])
    added = net.tensor((1, 6, 8, 8), name="d/add")
    net.op("ADD", [d, dr], [added], s.AddOptionsT())
    e = net.conv("e/conv", added, _weights(rng, 2, 1, 1, 8), _weights(rng, 2), (1, 6, 8, 2))
    er = net.tensor((1, 6, 8, 2), name="e/relu")
    net.op("RELU", [e], [er])
    return net.save(path, [x], [er])


def quantized_net(schema, path, rng, float_tail: bool = True) -> str:
    """Input (1, 6, 6, 2) float32, QUANTIZE to int8, an int8 3x3 CONV_2D (skipped by the
    loader), DEQUANTIZE, then (if `float_tail`) a float 1x1 conv with a fused RELU (captured)."""
    net = Net(schema)
    x = net.tensor((1, 6, 6, 2), name="image")
    xq = net.tensor((1, 6, 6, 2), "int8", name="image/int8", quant=([0.05], [0]))
    net.op("QUANTIZE", [x], [xq])
    scales = [0.01, 0.02, 0.03]
    wq = rng.integers(-100, 100, (3, 3, 3, 2)).astype(np.int8)
    w = net.tensor(wq.shape, "int8", wq, name="q/weights", quant=(scales, [0, 0, 0], 0))
    bq = rng.integers(-50, 50, 3).astype(np.int32)
    b = net.tensor((3,), "int32", bq, name="q/bias", quant=([0.05 * s for s in scales], [0, 0, 0], 0))
    yq = net.tensor((1, 6, 6, 3), "int8", name="q/conv", quant=([0.1], [0]))
    options = schema.Conv2DOptionsT()
    options.padding, options.strideH, options.strideW = schema.Padding.SAME, 1, 1
    options.dilationHFactor = options.dilationWFactor = 1
    net.op("CONV_2D", [xq, w, b], [yq], options)
    y = net.tensor((1, 6, 6, 3), name="q/float")
    net.op("DEQUANTIZE", [yq], [y])
    if not float_tail:
        return net.save(path, [x], [y])
    out = net.conv("f/conv", y, _weights(rng, 2, 1, 1, 3), _weights(rng, 2), (1, 6, 6, 2), activation="RELU")
    return net.save(path, [x], [out])


def open_net(schema, path, rng, signature) -> str:
    """One 3x3 SAME conv on an input of shape (1, 8, 8, 2) declared with `signature` (-1 = open)."""
    net = Net(schema)
    x = net.tensor((1, 8, 8, 2), name="image", signature=signature)
    out_signature = tuple(signature[:3]) + (3,)
    y = net.tensor((1, 8, 8, 3), name="conv", signature=out_signature)
    w = net.tensor((3, 3, 3, 2), data=_weights(rng, 3, 3, 3, 2), name="conv/weights")
    b = net.tensor((3,), data=_weights(rng, 3), name="conv/bias")
    options = schema.Conv2DOptionsT()
    options.padding, options.strideH, options.strideW = schema.Padding.SAME, 1, 1
    options.dilationHFactor = options.dilationWFactor = 1
    net.op("CONV_2D", [x, w, b], [y], options)
    return net.save(path, [x], [y])


def tanh_net(schema, path, rng) -> str:
    """One 3x3 VALID conv with a fused TANH on an input (1, 6, 6, 2)."""
    net = Net(schema)
    x = net.tensor((1, 6, 6, 2), name="image")
    y = net.conv("conv", x, _weights(rng, 3, 3, 3, 2), _weights(rng, 3), (1, 4, 4, 3), activation="TANH")
    return net.save(path, [x], [y])


def split_dilation_net(schema, path, rng) -> str:
    """A dilated conv as converters split it, with an inner SAME conv and uneven crops:
    input (1, 7, 9, 2), SPACE_TO_BATCH_ND block (2, 2) paddings ((1, 2), (0, 1)), a 3x3 SAME
    CONV_2D with a zero bias, BATCH_TO_SPACE_ND crops ((0, 1), (1, 0)), then the bias as an
    ADD with a fused RELU. Together: a 3x3 conv, dilation 2, zero pads ((3, 3), (1, 3))."""
    s = schema
    net = Net(s)
    x = net.tensor((1, 7, 9, 2), name="image")
    block = net.tensor((2,), "int32", np.array([2, 2]), name="block")
    paddings = net.tensor((2, 2), "int32", np.array([[1, 2], [0, 1]]), name="paddings")
    crops = net.tensor((2, 2), "int32", np.array([[0, 1], [1, 0]]), name="crops")
    spaced = net.tensor((4, 5, 5, 2), name="space_to_batch")
    net.op("SPACE_TO_BATCH_ND", [x, block, paddings], [spaced], s.SpaceToBatchNDOptionsT())
    inner = net.conv("conv", spaced, _weights(rng, 3, 3, 3, 2), np.zeros(3, np.float32), (4, 5, 5, 3),
                     padding="SAME")
    back = net.tensor((1, 9, 9, 3), name="batch_to_space")
    net.op("BATCH_TO_SPACE_ND", [inner, block, crops], [back], s.BatchToSpaceNDOptionsT())
    bias = net.tensor((3,), data=_weights(rng, 3), name="bias/value")
    out = net.tensor((1, 9, 9, 3), name="bias")
    add = s.AddOptionsT()
    add.fusedActivationFunction = s.ActivationFunctionType.RELU
    net.op("ADD", [back, bias], [out], add)
    return net.save(path, [x], [out])


def relu_net(schema, path) -> str:
    """No convolution at all: input (1, 4, 4, 1) -> RELU."""
    net = Net(schema)
    x = net.tensor((1, 4, 4, 1), name="image")
    y = net.tensor((1, 4, 4, 1), name="relu")
    net.op("RELU", [x], [y])
    return net.save(path, [x], [y])


def two_input_net(schema, path) -> str:
    """Two inputs added: (1, 4, 4, 1) + (1, 4, 4, 1)."""
    net = Net(schema)
    x, z = net.tensor((1, 4, 4, 1), name="left"), net.tensor((1, 4, 4, 1), name="right")
    y = net.tensor((1, 4, 4, 1), name="sum")
    net.op("ADD", [x, z], [y], schema.AddOptionsT())
    return net.save(path, [x, z], [y])


def custom_op_net(schema, path, rng) -> str:
    """A conv followed by a custom op LiteRT does not know ('ConvcheckMystery')."""
    net = Net(schema)
    x = net.tensor((1, 4, 4, 1), name="image")
    y = net.conv("conv", x, _weights(rng, 1, 1, 1, 1), _weights(rng, 1), (1, 4, 4, 1))
    z = net.tensor((1, 4, 4, 1), name="mystery")
    net.op("CUSTOM", [y], [z], custom="ConvcheckMystery")
    return net.save(path, [x], [z])


# Keras layers of `keras_net`, in order, with the conv each one belongs to.
KERAS_CONVS = ("c1", "c2", "dw", "g3", "c5")


def keras_net(tf, keras, rng):
    """A Keras model for the converter, input (None, 16, 15, 3) (open batch):

    c1: Conv2D stride 2 'same' (even rows, odd columns) + BatchNormalization + ReLU (the
        converter folds the BN and fuses the ReLU);
    c2: ZeroPadding2D ((1, 2), (0, 1)) + Conv2D dilation 2 'valid', then LeakyReLU;
    dw: DepthwiseConv2D multiplier 2 'same' with a fused relu6;
    g3: Conv2D 1x1 with groups=3 and no bias;
    c5: tf.pad REFLECT ((1, 1), (2, 2)) (a MIRROR_PAD) + Conv2D (3, 5) stride (2, 1) 'valid' + ReLU.
    The BatchNormalization has non-trivial statistics, so folding changes the weights.
    """
    layers = keras.layers
    image = keras.Input((16, 15, 3), name="image")
    y = layers.Conv2D(4, 3, strides=2, padding="same", name="c1")(image)
    y = layers.BatchNormalization(epsilon=1e-3, name="bn1")(y)
    y = layers.ReLU(name="r1")(y)
    y = layers.ZeroPadding2D(((1, 2), (0, 1)), name="zp")(y)
    y = layers.Conv2D(6, 3, dilation_rate=2, padding="valid", name="c2")(y)
    y = layers.LeakyReLU(negative_slope=0.1, name="lr")(y)
    y = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu6", name="dw")(y)
    y = layers.Conv2D(6, 1, groups=3, use_bias=False, name="g3")(y)
    y = layers.Lambda(lambda t: tf.pad(t, [[0, 0], [1, 1], [2, 2], [0, 0]], mode="REFLECT"), name="reflect")(y)
    y = layers.Conv2D(5, (3, 5), strides=(2, 1), padding="valid", activation="relu", name="c5")(y)
    model = keras.Model(image, y)
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:  # seeded weights, biases not zero, BN statistics far from the identity
            if isinstance(layer, layers.BatchNormalization):
                weights = [rng.uniform(0.5, 1.5, 4), rng.normal(size=4), rng.normal(size=4), rng.uniform(0.5, 2.0, 4)]
            else:
                weights = [rng.standard_normal(w.shape) * 0.5 for w in weights]
            layer.set_weights([np.asarray(w, np.float32) for w in weights])
    return model


def convert(tf, model, float16: bool = False) -> bytes:
    """The TFLite flatbuffer of a Keras model (float16-quantized weights if asked)."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if float16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()
