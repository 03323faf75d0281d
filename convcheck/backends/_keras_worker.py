"""The child process of `keras_other`: Keras on the backend KERAS_BACKEND names.

Reads one JSON request per line on stdin ({"folder", "padding", "dtype",
"library_defaults", "image_dtype", "kernel_dtype", and optionally "stride",
"dilation", "groups"}), runs `KerasConv2D` on
folder/image.npy and folder/kernel.npy, writes folder/output.npy and answers one JSON
line on stdout. Exits at end of input. Not a public entry point.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    out = sys.stdout
    sys.stdout = sys.stderr  # anything a framework prints must not corrupt the answers

    from convcheck.backends.base import one_line
    from convcheck.backends.keras import KerasConv2D, import_keras
    from convcheck.backends.keras_other import load_array, save_array

    keras = import_keras()  # the slow part, done before the first request arrives
    backend = keras.backend.backend()
    conv = KerasConv2D()
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            folder = request["folder"]
            image = load_array(folder, "image", request["image_dtype"])
            kernel = load_array(folder, "kernel", request["kernel_dtype"])
            x64_note = _x64_for(backend, request)
            run = conv.run(image, kernel, padding=request["padding"], dtype=request["dtype"],
                           library_defaults=request["library_defaults"],
                           stride=tuple(request.get("stride", (1, 1))),
                           dilation=tuple(request.get("dilation", (1, 1))),
                           groups=int(request.get("groups", 1)))
            notes = list(run.notes) + ([x64_note] if x64_note else [])
            answer = {"output_dtype": save_array(folder, "output", run.output),
                      "compute_dtype": run.compute_dtype, "padding": run.padding,
                      "seconds": run.seconds, "notes": notes}
        except Exception as exc:  # reported as the row's 'failed' reason
            reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {one_line(exc)}"
            answer = {"error": reason}
        out.write(json.dumps(answer) + "\n")
        out.flush()
    return 0


def _x64_for(backend: str, request: dict) -> str | None:
    """On JAX, x64 on for a float64 run with consistent settings (off otherwise, JAX's default)."""
    if backend != "jax":
        return None
    import jax
    wanted = request["dtype"] == "float64" and not request["library_defaults"]
    if bool(jax.config.jax_enable_x64) != wanted:
        jax.config.update("jax_enable_x64", wanted)
    return ("jax_enable_x64 was turned on for this float64 run (Keras on JAX computes float64 "
            "as float32 without it)") if wanted else None


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    # Out at once: the framework's own teardown (about a second for JAX or PyTorch) has
    # nothing to save, and the parent waits for this process when it exits (`_Worker.close`).
    os._exit(code)
