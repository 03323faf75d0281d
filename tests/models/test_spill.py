"""A walk's captured tensors on disk (convcheck.models.spill, issue 22 item 7): every tensor kept
reads back bit for bit in its dtype, a tensor two layers share is written once, a judged pair's
pages leave the process, a folder that cannot be written keeps the tensors in memory with a
note, and ONNX Runtime's tensors fetched a group at a time make the same walk as one run.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from convcheck.models import spill
from convcheck.models.layers import ConvLayer, keep_activations

RNG = np.random.default_rng(22)


def _arrays():
    """Arrays over MIN_BYTES of every float dtype a runtime hands over, one of them a transposed view."""
    base = RNG.standard_normal((1, 24, 40, 40))
    arrays = {"float32": base.astype(np.float32), "float64": base, "float16": base.astype(np.float16),
              "nchw view": base.astype(np.float32).transpose(0, 2, 3, 1)}
    try:
        import ml_dtypes
        arrays["bfloat16"] = base.astype(ml_dtypes.bfloat16)
    except ImportError:   # the base install has it (numpy-using frameworks bring it); nothing lost without
        pass
    return arrays


@pytest.mark.parametrize("name", sorted(_arrays()))
def test_a_kept_tensor_reads_back_bit_for_bit_in_its_dtype(name):
    array = _arrays()[name]
    with spill.Spill() as kept:
        mapped = kept.keep(array)
        assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
        assert (mapped.shape, mapped.dtype) == (array.shape, array.dtype)
        width = f"u{array.dtype.itemsize}"
        np.testing.assert_array_equal(mapped.view(width), np.ascontiguousarray(array).view(width))
        assert kept.keep(mapped) is mapped   # kept once


def test_small_and_non_numeric_values_stay_as_they_are():
    with spill.Spill() as kept:
        small = np.zeros(spill.MIN_BYTES // 8 - 1)
        objects = np.empty(spill.MIN_BYTES, dtype=object)
        for value in (None, small, objects, 3.0, np.zeros((1, 0, 4, 4))):
            assert kept.keep(value) is value
        assert kept._folder is None   # nothing written, no folder made


def test_the_folder_goes_when_the_spill_closes():
    with spill.Spill() as kept:
        mapped = kept.keep(np.ones(spill.MIN_BYTES))
        folder = os.path.dirname(mapped.filename)
        assert os.path.isdir(folder) and os.path.basename(folder).startswith("convcheck-walk-")
    assert not os.path.exists(folder)
    assert float(mapped.sum()) == spill.MIN_BYTES   # a map outlives its unlinked file


def test_a_folder_that_cannot_be_written_keeps_the_tensors_in_memory(tmp_path):
    array = np.ones(spill.MIN_BYTES)
    with spill.Spill(parent=str(tmp_path / "missing")) as kept:
        assert kept.keep(array) is array
        assert "kept in memory" in kept.note and "TMPDIR" in kept.note
        assert kept.keep(array + 1) is not None and not isinstance(kept.keep(array), np.memmap)
        assert kept.note.count("kept in memory") == 1


def test_a_tmpfs_is_left_for_a_folder_on_disk(monkeypatch):
    """Spilling into RAM saves no memory: /var/tmp when the temporary folder is a tmpfs and TMPDIR is
    not set; a tmpfs that is the only choice is used, with a note."""
    kinds = {}
    monkeypatch.setattr(spill, "_filesystem", lambda path: kinds.get(path, "ext4"))
    monkeypatch.delenv("TMPDIR", raising=False)
    monkeypatch.setattr(spill.tempfile, "gettempdir", lambda: "/tmp")
    monkeypatch.setattr(spill.os, "access", lambda path, mode: True)
    monkeypatch.setattr(spill.os.path, "isdir", lambda path: True)
    assert spill._disk_folder() == ("/tmp", False)
    kinds["/tmp"] = "tmpfs"
    assert spill._disk_folder() == ("/var/tmp", False)
    kinds["/var/tmp"] = "tmpfs"
    assert spill._disk_folder() == ("/tmp", True)
    monkeypatch.setenv("TMPDIR", "/tmp")
    kinds["/var/tmp"] = "ext4"
    assert spill._disk_folder() == ("/tmp", True)   # the user's own choice


def test_the_filesystem_of_a_path_is_its_deepest_mount():
    kind = spill._filesystem(os.getcwd())
    if not os.path.exists("/proc/mounts"):
        assert kind == ""
    else:
        assert kind and spill._filesystem("/proc") == "proc"


def _resident_kib(array: np.ndarray) -> int:
    """The resident KiB of this process's map that holds `array` (/proc/self/smaps, by address)."""
    address = array.__array_interface__["data"][0]
    inside = False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if fields and "-" in fields[0] and len(fields) >= 5:   # a map's header line
                low, high = (int(bound, 16) for bound in fields[0].split("-"))
                inside = low <= address < high
            elif inside and fields and fields[0] == "Rss:":
                return int(fields[1])
    raise AssertionError("no map holds the array")


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps") or not hasattr(__import__("mmap"), "MADV_DONTNEED"),
                    reason="resident pages per map are read from Linux's /proc/self/smaps")
def test_release_gives_a_judged_tensors_pages_back_and_keeps_its_values(tmp_path):
    array = RNG.standard_normal((1, 64, 64, 32))   # 1 MiB
    with spill.Spill() as kept:
        mapped = kept.keep(array)
        assert not os.path.exists(mapped.filename)   # unlinked once mapped: a killed walk leaves nothing
        assert float(np.sum(mapped)) == float(np.sum(array))   # every page read
        assert _resident_kib(mapped) >= array.nbytes // 1024
        kept.release(mapped, None, array)
        assert _resident_kib(mapped) == 0
        np.testing.assert_array_equal(mapped, array)
        # A map the caller made is not the spill's: its pages (and a private map's own changes) stay.
        np.save(tmp_path / "own.npy", array)
        own = np.load(tmp_path / "own.npy", mmap_mode="c")
        own[0, 0, 0, 0] = 7.0
        assert kept.keep(own) is own
        kept.release(own)
        assert own[0, 0, 0, 0] == 7.0 and _resident_kib(own) > 0


def _layer(name: str, x: np.ndarray, y: np.ndarray) -> ConvLayer:
    return ConvLayer(name=name, op="Conv", kernel=np.ones((1, 1, x.shape[3], y.shape[3])), bias=None, stride=(1, 1),
                     dilation=(1, 1), groups=1, pads=((0, 0), (0, 0)), padding="explicit", input=x, output=y)


def test_a_tensor_two_layers_share_is_handed_over_once():
    x, shared, y = (RNG.standard_normal((1, 32, 32, 16)) for _ in range(3))
    layers = [_layer("a", x, shared), _layer("b", shared, y)]
    handed = []

    def keep(array):
        handed.append(array)
        return array.copy()

    keep_activations(layers, keep)
    assert len(handed) == 3 and layers[0].output is layers[1].input
    assert keep_activations(layers, None) is layers


# ----------------------------------------------------------------------------- ONNX Runtime, a group a run


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """Four convs (8 channels at 48x48, each tensor 72 KiB) and its input."""
    pytest.importorskip("onnxruntime", reason="ONNX Runtime is not installed: pip install 'convcheck[onnx]'")
    from . import _onnx_nets as nets
    net = nets.Net((1, 3, 48, 48), seed=3)
    a = net.conv("x", "a", 3, 8, pads=[1, 1, 1, 1])
    b = net.conv(net.node("Relu", [a], "ra"), "b", 8, 8, pads=[1, 1, 1, 1])
    c = net.conv(b, "c", 8, 8, (1, 1))
    d = net.conv(net.node("Relu", [c], "rc"), "d", 8, 8, pads=[1, 1, 1, 1])
    folder = tmp_path_factory.mktemp("spill_onnx")
    path = nets.save(net.model([d]), folder, "chain")
    x = net.input()
    np.save(folder / "x.npy", x)
    return path, str(folder / "x.npy"), x


def _walk_json(path: str, x_path: str, *extra: str) -> dict:
    from click.testing import CliRunner

    from convcheck.cli import main
    result = CliRunner().invoke(main, ["model", path, "--input", x_path, "--format", "json", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.onnx
@pytest.mark.parametrize("as_run", [False, True])
def test_tensors_fetched_a_group_a_run_walk_as_one_run(chain, monkeypatch, as_run):
    path, x_path, _ = chain
    extra = ("--as-run",) if as_run else ()
    whole = _walk_json(path, x_path, *extra)
    from convcheck.models import onnx as loader
    monkeypatch.setattr(loader, "RUN_BYTES", 100 << 10)   # one tensor a run
    monkeypatch.setattr(loader, "RUN_TENSORS", 1)
    grouped = _walk_json(path, x_path, *extra)
    note = " ".join(grouped["notes"]["original"])
    assert "runs with a group of them marked each" in note and "runs with a group" not in " ".join(
        whole["notes"]["original"])
    whole["notes"] = grouped["notes"] = None
    assert grouped == whole
    assert [layer["verdict"] for layer in grouped["layers"]] == ["equal"] * 4


@pytest.mark.onnx
def test_a_model_saved_with_external_data_serves_every_group(chain, monkeypatch):
    """A model too large for one protobuf message is saved beside its weights for each session;
    saving moves the weights out of the model, which must serve the next group's session too."""
    path, x_path, _ = chain
    from convcheck.models import onnx as loader
    # The model with its weights "too large", without them not (what a first save leaves).
    monkeypatch.setattr(loader, "_PROTOBUF_LIMIT", os.path.getsize(path) - 64)
    monkeypatch.setattr(loader, "RUN_BYTES", 100 << 10)
    monkeypatch.setattr(loader, "RUN_TENSORS", 1)
    for extra in ((), ("--as-run",)):
        report = _walk_json(path, x_path, *extra)
        assert [layer["verdict"] for layer in report["layers"]] == ["equal"] * 4


@pytest.mark.onnx
def test_onnx_tensors_kept_are_the_tensors_of_one_run(chain, monkeypatch):
    path, _, x = chain
    from convcheck.models import onnx as loader
    plain = loader.capture(path, x)
    monkeypatch.setattr(loader, "RUN_BYTES", 100 << 10)
    monkeypatch.setattr(loader, "RUN_TENSORS", 1)
    with spill.Spill() as kept:
        grouped = loader.capture(path, x, keep=kept.keep)
        assert [layer.name for layer in grouped.layers] == [layer.name for layer in plain.layers]
        for ours, theirs in zip(grouped.layers, plain.layers):
            for mine, own in ((ours.input, theirs.input), (ours.output, theirs.output)):
                # the model's input (27 KiB) stays in memory; every conv's tensor (72 KiB) is kept
                assert isinstance(mine, np.memmap) == (own.nbytes >= spill.MIN_BYTES)
                np.testing.assert_array_equal(mine, own)
        assert sum(isinstance(layer.output, np.memmap) for layer in grouped.layers) == 4
        assert grouped.layers[1].output is grouped.layers[2].input   # b's output is c's input: one file
    from onnx import load
    assert len(load(path).graph.output) == 1   # the model file is as it was


def test_fetch_groups_cut_by_size_and_give_up_on_an_unknown_one(monkeypatch):
    from convcheck.models import onnx as loader
    monkeypatch.setattr(loader, "RUN_TENSORS", 1)

    class Arg:
        def __init__(self, name, shape, kind="tensor(float)"):
            self.name, self.shape, self.type = name, shape, kind

    class Session:
        def __init__(self, args):
            self.args = args

        def get_outputs(self):
            return self.args

    x = np.zeros((2, 3, 8, 8), np.float32)
    size = loader.RUN_BYTES // 4   # float32 elements of a full group
    args = [Arg("a", ["batch", size // 2]), Arg("b", [1, size // 2]), Arg("c", [1, size]), Arg("d", [1, 1])]
    # 'a' is batch 2 (its open first dimension is the input's): a full group alone.
    assert loader._fetch_groups(Session(args), ["a", "b", "c", "d"], x) == [["a"], ["b"], ["c"], ["d"]]
    assert loader._fetch_groups(Session(args), ["b", "d"], x) == [["b", "d"]]
    # Tensors larger than RUN_BYTES: RUN_TENSORS of the largest a run, not one run each.
    monkeypatch.setattr(loader, "RUN_TENSORS", 2)
    big = [Arg(name, [1, size]) for name in "pqrst"]
    assert loader._fetch_groups(Session(big), list("pqrst"), x) == [["p", "q"], ["r", "s"], ["t"]]
    args.append(Arg("e", [1, "h", 4]))
    assert loader._fetch_groups(Session(args), ["a", "e"], x) == [["a", "e"]]
    args.append(Arg("f", [1, 4], "tensor(int64)"))
    assert loader._fetch_groups(Session(args), ["a", "f"], x) == [["a", "f"]]
