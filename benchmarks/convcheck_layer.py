"""`convcheck explain` on a real NCHW layer with its declared padding amounts, stride, bias and
activation, through the Python API: the stand-in for

    convcheck explain X W Y --layout nchw --padding P --stride S --bias B [--expect activation=A] --format json

until the CLI's `--padding N` and `--bias` options exist (benchmarks/run.py uses the CLI as soon
as `convcheck explain --help` lists them). Prints the JSON document (convcheck/explain/2) and
exits as the CLI would (0 equal or explained, 1 unexplained).

Usage: python benchmarks/convcheck_layer.py X.npy W.npy B.npy Y.npy STRIDE PADDING ACTIVATION
"""
import sys

import numpy as np

import convcheck
from convcheck.formats import render_explain
from convcheck.results import exit_code_for

x_path, w_path, b_path, y_path, stride, padding, activation = sys.argv[1:8]
x, w, b, y = (np.load(path, allow_pickle=False) for path in (x_path, w_path, b_path, y_path))
diagnosis = convcheck.explain(x, w, y, layout="nchw", padding=int(padding), stride=int(stride),
                              expected={"bias": b, "activation": activation})
print(render_explain(diagnosis, "json", names={"image": x_path, "kernel": w_path, "output": y_path}))
sys.exit(exit_code_for([diagnosis.verdict]))
