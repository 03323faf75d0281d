"""`convcheck model`: walk a model and its port conv layer by conv layer (CONTRACT section 6).

One loader per format (`onnx`, `pytorch`, `keras`, `tflite`) captures every 2-D
convolution as a `convcheck.models.layers.ConvLayer`; matching pairs the layers of two
models; the walk judges each pair with the engine's public entry point, exactly as
`compare` does for backends. The engine never imports a model format.
"""
