"""Tensors a PyTorch runner captured, as the numpy arrays the layers hold.

Shared by the three runners (exported FX graph, TorchScript, module hooks). Only called
once torch is imported; importing this module imports no framework.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from typing import Any, Callable, Hashable, Optional

import numpy as np

from ..backends.base import one_line
from ..backends.torch import to_numpy
from ._pytorch_graph import LayerPlan, build_layer, check_geometry


@contextlib.contextmanager
def quiet_torch():
    """Keep what torch and the model print or log off stdout and stderr meanwhile.

    torch.export logs failed guards and whole graphs through its own handlers (bound to
    the real stderr, so only `logging.disable` silences them) and warns about its
    deprecations; a model may print. The command's stdout must stay JSON only, and
    errors reach the user as InputError lines, so nothing is lost.
    """
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def reason(exc: BaseException, limit: int = 200) -> str:
    """What went wrong, in one line: 'Type: first line', or for a TorchScript error (a
    traceback of TorchScript code first) its last line, which holds the real reason."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if lines and lines[0].startswith("The following operation failed in the TorchScript interpreter"):
        text = lines[-1]
        return text if len(text) <= limit else text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {one_line(exc, limit)}"


def activation_array(tensor) -> np.ndarray:
    """An NCHW activation (or an unbatched CHW one) as a new NHWC numpy array.

    Always a copy (never a view of the runtime's tensor): a later in-place op of the
    model must not change what was captured.
    """
    import torch
    tensor = tensor.detach()
    if tensor.dim() == 3:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() != 4:
        raise ValueError(f"a conv layer read or wrote a {tensor.dim()}-D tensor {tuple(tensor.shape)}, not NCHW")
    return to_numpy(tensor.permute(0, 2, 3, 1).clone(memory_format=torch.contiguous_format))


def parameter_array(value) -> Optional[np.ndarray]:
    """A weight, bias or BatchNorm statistic as a numpy copy in its own dtype (None stays None)."""
    if value is None:
        return None
    if hasattr(value, "detach"):
        return to_numpy(value.detach().clone())
    return np.asarray(value)


class CaptureStore:
    """The arrays captured for each plan, each tensor converted once.

    `put` converts a tensor the runner hands it for one plan's role; a tensor already
    converted for the same `key` (the runner's name for the value) and `version` (its
    in-place version counter, when it has one) is shared, not copied again: the output
    of one layer is usually the input of the next. With `keep` (`convcheck.models.spill.Spill.keep`),
    each activation is handed to it as soon as it is converted and the store holds what it
    returns (a map of the tensor on disk): the run holds one layer's copy at a time.
    """

    def __init__(self, plans: list[LayerPlan], keep: Optional[Callable[[np.ndarray], np.ndarray]] = None):
        self.plans = plans
        self.keep = keep
        self.arrays: list[dict] = [{} for _ in plans]
        self._cache: dict = {}

    def put(self, index: int, role: str, value: Any, activation: bool, key: Hashable = None) -> None:
        """Store `value` (a tensor, a constant or None) as role `role` of plan `index`."""
        if key is not None:
            version = getattr(value, "_version", None)
            cached = self._cache.get((key, activation))
            if cached is not None and cached[0] == version:
                self.arrays[index][role] = cached[1]
                return
        array = activation_array(value) if activation else parameter_array(value)
        if activation and self.keep is not None:
            array = self.keep(array)
        if key is not None:
            self._cache[(key, activation)] = (getattr(value, "_version", None), array)
        self.arrays[index][role] = array

    def layers(self) -> list:
        """The ConvLayers, in plan order; ValueError when a capture contradicts its plan."""
        self._cache.clear()
        layers = []
        for plan, arrays in zip(self.plans, self.arrays):
            missing = [role for role in ("input", "output", "weight") if arrays.get(role) is None]
            if missing:
                raise ValueError(f"layer '{plan.name}': the run never produced its {', '.join(missing)}")
            check_geometry(plan, arrays)
            layers.append(build_layer(plan, arrays))
        return layers
