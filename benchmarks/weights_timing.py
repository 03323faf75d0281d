"""How long `convcheck.engine.weights.relate` takes per layer: the median of repeated calls.

Run: python benchmarks/weights_timing.py [RUNS]. Seeded float32 kernels, 3x3x64x64 and
3x3x512x512 (HWIO), each against a port that is equal, reshaped from OIHW, in/out swapped,
flipped 180 degrees, folded with a BatchNorm factor per channel, cast to float16, and
unrelated. Prints one line per case: milliseconds (median of RUNS calls) and the verdict.
"""

import statistics
import sys
import time

import numpy as np

from convcheck.engine.weights import relate


def ports(original: np.ndarray, rng: np.random.Generator) -> dict:
    factors = rng.uniform(0.5, 2.0, original.shape[-1]).astype(np.float32)
    return {"equal": original.copy(),
            "oihw-reshaped": np.ascontiguousarray(original.transpose(3, 2, 0, 1)).reshape(original.shape),
            "in/out swapped": np.ascontiguousarray(original.transpose(0, 1, 3, 2)),
            "rot180": np.ascontiguousarray(original[::-1, ::-1]),
            "scale per channel": (original * factors).astype(np.float32),
            "float16": original.astype(np.float16),
            "unrelated": rng.standard_normal(original.shape).astype(np.float32)}


def main(runs: int) -> None:
    rng = np.random.default_rng(0)
    for shape in ((3, 3, 64, 64), (3, 3, 512, 512)):
        original = rng.standard_normal(shape).astype(np.float32)
        for name, port in ports(original, rng).items():
            relation = relate(original, port)  # warm-up, and the verdict shown
            seconds = []
            for _ in range(runs):
                start = time.perf_counter()
                relate(original, port)
                seconds.append(time.perf_counter() - start)
            named = "scale per channel" if "scale" in relation.mapping else relation.mapping
            print(f"{'x'.join(map(str, shape)):>12}  {name:<18} {statistics.median(seconds) * 1e3:8.2f} ms  "
                  f"{relation.verdict.value} {named}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 15)
