"""One name for what every output is compared with (issue 21): CONTRACT section 1's "reference", in
the text formats, the plot and the pytest helper alike, described once as what it is."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from convcheck.engine import explain
from convcheck.formats import render_explain
from convcheck.formats._text import REFERENCE, reference_text
from convcheck.vocabulary import Explanation

from .conftest import NAMES


def test_the_name_is_the_contracts():
    assert REFERENCE == "reference"


def test_the_text_formats_describe_the_float64_reference(diagnoses):
    table = render_explain(diagnoses["explained"], "table", names=NAMES, color=False, width=300)
    line = next(line for line in table.splitlines() if line.startswith(REFERENCE + " "))
    assert "the float64 cross-correlation (kernel not flipped) of image.npy with kernel.npy" in line
    assert "float64 reference" not in table and "expected =" not in table


def test_the_description_says_what_was_declared_and_the_precision_it_allows_for():
    declared = Explanation(padding=((1, 1), (0, 2)), stride=(2, 2), precision="float32", bias=0.5)
    text = reference_text(declared, NAMES)
    assert text.startswith("the float64 cross-correlation (kernel not flipped) of image.npy with kernel.npy, "
                           "padding pads [[1, 1], [0, 2]], zero boundary, with stride [2, 2] + bias 0.5")
    assert text.endswith("; its error bound allows for a float32 computation")
    assert reference_text(Explanation(), NAMES) == ("the float64 cross-correlation (kernel not flipped) of image.npy "
                                                    "with kernel.npy, padding same, zero boundary")


def test_the_plot_names_its_panel_reference():
    pytest.importorskip("matplotlib")
    from convcheck.plot import _RowArea, _pyplot, _row

    rng = np.random.default_rng(1)
    image, kernel = rng.standard_normal((8, 8)), rng.standard_normal((3, 3))
    diagnosis = explain(image, kernel, scipy.signal.convolve2d(image, kernel, mode="same"), keep_arrays=True)
    plt, log_norm = _pyplot()
    fig = plt.figure(figsize=(17, 4))
    try:
        _row(fig, _RowArea(fig, fig.add_gridspec(1, 1)[0]), "flipped", diagnosis, plt, log_norm)
        titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
        assert titles[0] == REFERENCE
        assert not any("cross-correlation" in title or "expected" in title for title in titles)
    finally:
        plt.close(fig)


def test_the_pytest_helper_says_reference_too():
    from convcheck.testing import assert_conv_matches

    rng = np.random.default_rng(1)
    image, kernel = rng.standard_normal((8, 8)), rng.standard_normal((3, 3))
    with pytest.raises(AssertionError) as info:
        assert_conv_matches(scipy.signal.convolve2d(image, kernel, mode="same"), image, kernel)
    message = str(info.value)
    assert "(output vs reference; 5 of 64)" in message and ", reference " in message
    assert "expected" not in message.split("convcheck:")[0] and "float64 reference" not in message
