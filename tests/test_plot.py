"""`convcheck.plot.save_plot`: writes a PNG for real diagnoses; a missing matplotlib is an InputError."""

from __future__ import annotations

import builtins

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal

from convcheck.engine import explain
from convcheck.errors import InputError

pytest.importorskip("matplotlib")

from convcheck.plot import plot_items, save_plot  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def problem():
    image = np.random.default_rng(5).standard_normal((12, 12))
    kernel = np.array([[1.0, 2.0, 0.0], [-1.0, 0.5, 3.0], [0.25, -2.0, 1.0]])
    return image, kernel


def test_png_for_flip_boundary_and_bug(problem, tmp_path):
    image, kernel = problem
    bug = scipy.signal.correlate2d(image, kernel, mode="same")
    bug[3, 7] += 1.0
    items = [
        ("convolve2d", explain(image, kernel, scipy.signal.convolve2d(image, kernel, mode="same"), keep_arrays=True)),
        ("ndimage", explain(image, kernel, scipy.ndimage.correlate(image, kernel), keep_arrays=True)),
        ("bug", explain(image, kernel, bug, keep_arrays=True)),
        ("equal", explain(image, kernel, scipy.signal.correlate2d(image, kernel, mode="same"), keep_arrays=True)),
        ("full", explain(image, kernel, scipy.signal.correlate2d(image, kernel), keep_arrays=True)),
    ]
    path = tmp_path / "plot.png"
    save_plot(items, path)
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 20_000
    import matplotlib.image
    height, width = matplotlib.image.imread(path).shape[:2]
    assert height > 4 * 300 and width > 1000  # four rows (the equal one is left out)


def test_multichannel_and_all_equal(problem, tmp_path):
    image, kernel = problem
    rgb = np.stack([image, image * 2, -image], axis=-1)
    kernels = np.random.default_rng(1).standard_normal((3, 3, 3, 2))
    output = sum(scipy.signal.convolve2d(rgb[:, :, c], kernels[:, :, c, 0], mode="same") for c in range(3))
    output = np.stack([output, output], axis=-1)
    diagnosis = explain(rgb, kernels, output, keep_arrays=True)
    save_plot(diagnosis, tmp_path / "multi.png")          # a Diagnosis directly
    assert (tmp_path / "multi.png").read_bytes()[:8] == PNG

    equal = explain(image, kernel, scipy.signal.correlate2d(image, kernel, mode="same"), keep_arrays=True)
    save_plot([("equal", equal)], tmp_path / "equal.png")
    assert (tmp_path / "equal.png").read_bytes()[:8] == PNG


def test_plot_items_accepts_a_compare_report(problem, tmp_path):
    from convcheck.comparison import compare
    image, kernel = problem
    report = compare(image, kernel, backends=["scipy.signal.correlate2d", "scipy.signal.convolve2d"],
                     keep_arrays=True)
    assert [title for title, _ in plot_items(report)] == ["scipy.signal.correlate2d", "scipy.signal.convolve2d"]
    save_plot(report, tmp_path / "compare.png")
    assert (tmp_path / "compare.png").read_bytes()[:8] == PNG


def test_arrays_not_kept_still_plots(problem, tmp_path):
    image, kernel = problem
    diagnosis = explain(image, kernel, scipy.signal.convolve2d(image, kernel, mode="same"))
    save_plot([("no arrays", diagnosis)], tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0


def test_missing_matplotlib_is_an_input_error(problem, tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    image, kernel = problem
    diagnosis = explain(image, kernel, scipy.signal.convolve2d(image, kernel, mode="same"), keep_arrays=True)
    with pytest.raises(InputError, match=r"^--plot needs matplotlib: pip install 'convcheck\[plot\]'$"):
        save_plot([("x", diagnosis)], tmp_path / "p.png")
    from convcheck.plot import require_matplotlib
    with pytest.raises(InputError, match="convcheck\\[plot\\]"):
        require_matplotlib()
    assert not (tmp_path / "p.png").exists()


def test_unwritable_path_is_an_input_error(problem, tmp_path):
    image, kernel = problem
    diagnosis = explain(image, kernel, scipy.signal.convolve2d(image, kernel, mode="same"), keep_arrays=True)
    with pytest.raises(InputError, match="cannot be written"):
        save_plot([("x", diagnosis)], tmp_path / "missing" / "p.png")
