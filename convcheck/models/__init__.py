"""`convcheck model`: walk a model and its port conv layer by conv layer (CONTRACT section 6).

One loader per format (`onnx`, `pytorch`, `keras`, `tflite`, picked by `formats`) captures
every 2-D convolution as a `convcheck.models.layers.ConvLayer`; `matching` pairs the layers
of two models by their weights and order; `judge` judges each pair with the engine's public
entry point, exactly as `compare` does for backends, and relates their weights; `report`
holds what was found (`ModelReport`, JSON `convcheck/model/1`); `walk` runs the whole walk.
The engine never imports a model format.
"""
