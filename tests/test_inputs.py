"""Tests for convcheck.inputs: every bad input is one clear InputError line, never a traceback."""

from __future__ import annotations

import os
import tempfile

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from convcheck.errors import InputError
from convcheck.inputs import (
    DEFAULT_MAX_ELEMENTS,
    Inputs,
    as_image,
    as_kernel,
    as_output,
    check_pair,
    load_inputs,
    prepare_inputs,
    read_npy,
)


def refused(call, *args, names=(), phrases=(), **kwargs) -> str:
    """Assert `call` raises a one-line InputError naming each of `names`; return the message."""
    with pytest.raises(InputError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    for name in names:
        assert str(name) in message, message
    for phrase in phrases:
        assert phrase in message, message
    return message


def save(tmp_path, name, array, **kwargs) -> str:
    path = os.fspath(tmp_path / name)
    np.save(path, array, **kwargs)
    return path


def write_header_only(path, shape, descr="<f4", fortran_order=False) -> None:
    with open(path, "wb") as fp:
        np.lib.format.write_array_header_1_0(fp, {"descr": descr, "fortran_order": fortran_order,
                                                  "shape": shape})


class Payload:
    """Unpickling this creates a file: proof that a pickle payload ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


# ----------------------------------------------------------------------------- read_npy: files


def test_missing_file_is_refused(tmp_path):
    path = tmp_path / "nope.npy"
    refused(read_npy, path, "image", names=[path], phrases=["image file", "no such file"])


def test_directory_is_refused(tmp_path):
    refused(read_npy, tmp_path, "kernel", names=[tmp_path], phrases=["kernel file", "is a directory, not a .npy file"])


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "zero.npy"
    path.write_bytes(b"")
    refused(read_npy, path, "image", names=[path], phrases=["is empty"])


def test_non_path_is_refused():
    refused(read_npy, None, "image", phrases=["image file", "path"])


@pytest.mark.parametrize("content", [b"1.0,2.0\n3.0,4.0\n", b"\x89PNG\r\n\x1a\n" + b"\0" * 32])
def test_not_npy_is_refused_with_np_save_hint(tmp_path, content):
    path = tmp_path / "data.npy"
    path.write_bytes(content)
    refused(read_npy, path, "image", names=[path], phrases=["is not a .npy file", "np.save"])


def test_npz_archive_of_one_array_is_read_without_a_key(tmp_path):
    path = tmp_path / "arrays.npz"
    np.savez(path, x=np.arange(9.0).reshape(3, 3))
    np.testing.assert_array_equal(read_npy(path, "kernel"), np.arange(9.0).reshape(3, 3))


@pytest.mark.parametrize("save_archive", [np.savez, np.savez_compressed], ids=["stored", "compressed"])
def test_npz_member_is_read_by_key(tmp_path, save_archive):
    path = tmp_path / "layer.npz"
    weight = np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2)
    save_archive(path, weight=weight, bias=np.array([0.5, -1.0], np.float32))
    got = read_npy(f"{path}:weight", "kernel")
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, weight)
    np.testing.assert_array_equal(read_npy(f"{path}:bias", "bias"), [0.5, -1.0])


def test_npz_missing_key_lists_the_keys(tmp_path):
    path = tmp_path / "layer.npz"
    np.savez(path, weight=np.ones((3, 3)), bias=np.ones(3))
    refused(read_npy, f"{path}:wieght", "kernel", names=[f"{path}:wieght"],
            phrases=["no array 'wieght'", "bias, weight", f"{path}:KEY"])


def test_npz_of_several_arrays_without_a_key_lists_them(tmp_path):
    path = tmp_path / "layer.npz"
    np.savez(path, weight=np.ones((3, 3)), bias=np.ones(3))
    refused(read_npy, path, "kernel", names=[path], phrases=["2 arrays", "bias, weight", f"{path}:bias"])


def test_npz_member_is_validated_as_a_npy(tmp_path):
    path = tmp_path / "layer.npz"
    np.savez(path, big=np.ones((4, 4)), text=np.array(["a", "b"]), obj=np.array([{}], dtype=object))
    refused(read_npy, f"{path}:big", "image", max_elements=15, phrases=["16 elements", "--max-elements"])
    refused(read_npy, f"{path}:text", "image", phrases=["holds text"])
    refused(read_npy, f"{path}:obj", "image", phrases=["pickled object array", "never loads"])


def test_npz_member_nan_is_refused_when_loaded(tmp_path):
    path = tmp_path / "layer.npz"
    image = np.ones((5, 5))
    image[2, 3] = np.nan
    np.savez(path, x=image, k=np.ones((3, 3)))
    refused(load_inputs, f"{path}:x", f"{path}:k", names=[f"{path}:x"], phrases=["1 NaN value", "[2, 3]"])


def test_npz_corrupt_archive_is_refused(tmp_path):
    path = tmp_path / "layer.npz"
    np.savez(path, x=np.ones((5, 5)))
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    refused(read_npy, f"{path}:x", "image", names=[path], phrases=["np.savez"])
    refused(read_npy, tmp_path / "missing.npz:x", "image", phrases=["no such file"])


def test_truncated_data_is_refused(tmp_path):
    path = save(tmp_path, "cut.npy", np.arange(64.0).reshape(8, 8))
    with open(path, "r+b") as fp:
        fp.truncate(os.path.getsize(path) - 8)
    refused(read_npy, path, "image", names=[path], phrases=["truncated"])


def test_truncated_header_is_refused(tmp_path):
    path = save(tmp_path, "cut.npy", np.ones((2, 2)))
    with open(path, "r+b") as fp:
        fp.truncate(20)
    refused(read_npy, path, "image", names=[path], phrases=["truncated"])


def test_truncated_magic_is_refused(tmp_path):
    path = tmp_path / "cut.npy"
    path.write_bytes(b"\x93NUM")
    refused(read_npy, path, "image", names=[path], phrases=["truncated"])


def test_too_many_elements_refused_from_header_alone(tmp_path):
    # 2**40 float32 elements (4 TiB) promised, no data at all: the header must be enough.
    path = tmp_path / "huge.npy"
    write_header_only(path, (2**20, 2**20))
    message = refused(read_npy, path, "image", names=[path], phrases=["--max-elements"])
    assert "truncated" not in message


def test_huge_header_within_limit_is_truncated_not_allocated(tmp_path):
    # With the limit raised, the size check must still come before any allocation.
    path = tmp_path / "huge.npy"
    write_header_only(path, (2**20, 2**20))
    refused(read_npy, path, "image", max_elements=2**41, names=[path], phrases=["truncated"])


def test_max_elements_is_a_limit_on_real_files(tmp_path):
    path = save(tmp_path, "img.npy", np.ones((4, 4)))
    refused(read_npy, path, "image", max_elements=15, names=[path], phrases=["--max-elements"])
    assert read_npy(path, "image", max_elements=16).shape == (4, 4)


def test_bad_max_elements_is_refused(tmp_path):
    path = save(tmp_path, "img.npy", np.ones((4, 4)))
    refused(read_npy, path, "image", max_elements=0, phrases=["--max-elements"])


def test_pickled_object_array_is_refused_and_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    path = save(tmp_path, "evil.npy", np.array([Payload(os.fspath(marker))], dtype=object),
                allow_pickle=True)
    refused(read_npy, path, "image", names=[path], phrases=["pickled object array", "allow_pickle"])
    assert not marker.exists()
    # Control: the payload is live, so the assertion above means something.
    np.load(path, allow_pickle=True)
    assert marker.exists()


def test_object_array_refused_even_when_header_is_skipped(tmp_path, monkeypatch):
    # Defence in depth: np.load itself runs with allow_pickle=False.
    import convcheck.inputs.files as files
    marker = tmp_path / "pwned"
    path = save(tmp_path, "evil.npy", np.array([Payload(os.fspath(marker))], dtype=object),
                allow_pickle=True)
    monkeypatch.setattr(files, "check_dtype", lambda *args, **kwargs: None)
    refused(read_npy, path, "image", names=[path])
    assert not marker.exists()


@pytest.mark.parametrize("array, phrase", [
    (np.array([["a", "b"], ["c", "d"]]), "text"),
    (np.array([[b"a", b"b"], [b"c", b"d"]]), "text"),
    (np.ones((2, 2), dtype=np.complex128), "is complex"),
    (np.zeros((2, 2), dtype="i4,f4"), "structured"),
    (np.ones((2, 2), dtype=bool), "uint8"),
    (np.zeros((2, 2), dtype="datetime64[s]"), "float64"),
])
def test_unusable_dtypes_are_refused(tmp_path, array, phrase):
    path = save(tmp_path, "bad.npy", array)
    refused(read_npy, path, "kernel", names=[path], phrases=[phrase])


@pytest.mark.skipif(np.dtype(np.longdouble).itemsize <= 8, reason="longdouble is float64 on this platform")
def test_longdouble_is_refused(tmp_path):
    path = save(tmp_path, "ld.npy", np.ones((2, 2), dtype=np.longdouble))
    refused(read_npy, path, "image", names=[path], phrases=["float64"])


def test_bfloat16_saved_to_npy_gets_a_hint(tmp_path):
    path = save(tmp_path, "bf.npy", np.ones((3, 3), dtype=ml_dtypes.bfloat16))
    refused(read_npy, path, "image", names=[path], phrases=["bfloat16", "float32"])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.uint8, np.int8, np.int16,
                                   np.int32, np.int64, np.uint16, np.uint32, np.uint64])
def test_numeric_dtypes_are_read_as_saved(tmp_path, dtype):
    array = (np.arange(12) % 7).reshape(3, 4).astype(dtype)
    path = save(tmp_path, "ok.npy", array)
    loaded = read_npy(path, "image")
    assert loaded.dtype == dtype
    np.testing.assert_array_equal(loaded, array)


def test_fortran_order_file_is_read_correctly(tmp_path):
    array = np.asfortranarray(np.arange(24.0).reshape(2, 3, 4))
    path = save(tmp_path, "f.npy", array)
    loaded = read_npy(path, "image")
    np.testing.assert_array_equal(loaded, array)
    inputs = load_inputs(path, save(tmp_path, "k.npy", np.ones((1, 1, 4, 2))))
    np.testing.assert_array_equal(inputs.image, array[None])  # canonical (N, H, W, C)


def test_big_endian_file_is_read_natively(tmp_path):
    array = np.arange(6.0).reshape(2, 3).astype(">f4")
    loaded = read_npy(save(tmp_path, "be.npy", array), "image")
    assert loaded.dtype == np.float32 and loaded.dtype.isnative
    np.testing.assert_array_equal(loaded, array)


# ----------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("convert", [as_image, as_kernel, as_output])
@pytest.mark.parametrize("shape", [(), (5,), (1, 2, 2, 2, 1)])
def test_wrong_rank_is_refused_for_every_role(convert, shape):
    refused(convert, np.ones(shape), names=[convert.__name__[3:]])


@pytest.mark.parametrize("convert", [as_image, as_kernel, as_output])
def test_zero_size_is_refused_for_every_role(convert):
    refused(convert, np.ones((0, 3)), phrases=["no elements"])


@pytest.mark.parametrize("convert", [as_image, as_kernel, as_output])
def test_nan_is_refused_with_count_and_first_index(convert):
    array = np.ones((3, 4))
    array[0, 2] = array[1, 1] = array[2, 3] = np.nan
    message = refused(convert, array, phrases=["3 NaN values", "[0, 2]"])
    assert message.startswith(convert.__name__[3:] + ":")


@pytest.mark.parametrize("convert", [as_image, as_kernel, as_output])
def test_inf_is_refused_with_count_and_first_index(convert):
    array = np.ones((1, 3, 3, 1), dtype=np.float32)
    array[0, 2, 1, 0] = -np.inf
    refused(convert, array, phrases=["1 infinite value", "[0, 2, 1, 0]"])


def test_nan_index_is_in_the_users_oihw_shape():
    kernel = np.ones((2, 3, 5, 5))
    kernel[1, 2, 0, 4] = np.nan
    refused(as_kernel, kernel, layout="oihw", phrases=["NaN", "[1, 2, 0, 4]"])


def test_nan_in_bfloat16_is_refused():
    array = np.ones((3, 3), dtype=ml_dtypes.bfloat16)
    array[1, 1] = np.nan
    refused(as_image, array, phrases=["NaN", "[1, 1]"])


def test_nan_in_file_names_the_file(tmp_path):
    image = np.ones((2, 3))
    image[0, 2] = np.nan
    image_path = save(tmp_path, "img.npy", image)
    kernel_path = save(tmp_path, "k.npy", np.ones((3, 3)))
    message = refused(load_inputs, image_path, kernel_path, phrases=["1 NaN value", "[0, 2]"])
    assert message.startswith(f"image file '{image_path}': ")


def test_image_shapes_are_normalised_to_a_batch():
    assert as_image(np.ones((4, 5))).shape == (1, 4, 5, 1)
    assert as_image(np.ones((4, 5, 3))).shape == (1, 4, 5, 3)
    batch = np.arange(120.0).reshape(2, 4, 5, 3)
    np.testing.assert_array_equal(as_image(batch), batch)


def test_channels_first_images_are_read_with_layout_nchw():
    chw = np.arange(60.0).reshape(3, 4, 5)
    np.testing.assert_array_equal(as_image(chw, layout="nchw")[0], chw.transpose(1, 2, 0))
    nchw = np.arange(120.0).reshape(2, 3, 4, 5)
    np.testing.assert_array_equal(as_image(nchw, layout="nchw"), nchw.transpose(0, 2, 3, 1))
    refused(as_image, chw, layout="nwhc", phrases=["'nwhc'", "nhwc", "nchw"])


def test_image_with_five_dimensions_is_refused():
    refused(as_image, np.ones((1, 2, 4, 4, 3)), phrases=["5-D", "(N, H, W, C) batch"])


def test_kernel_shapes_are_normalised():
    kernel = np.arange(6.0).reshape(2, 3)
    result = as_kernel(kernel)
    assert result.shape == (2, 3, 1, 1)
    np.testing.assert_array_equal(result[:, :, 0, 0], kernel)
    assert as_kernel(np.ones((3, 3, 2, 4))).shape == (3, 3, 2, 4)


def test_2d_kernel_ignores_layout():
    kernel = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(as_kernel(kernel, layout="oihw"), as_kernel(kernel))


def test_3d_kernel_is_ambiguous():
    message = refused(as_kernel, np.ones((3, 3, 3)), phrases=["ambiguous", "(3, 3, 3)", "HWIO", "OIHW"])
    assert message.startswith("kernel:")


def test_3d_kernel_file_is_ambiguous_and_names_the_cli_option(tmp_path):
    image_path = save(tmp_path, "img.npy", np.ones((5, 5, 3)))
    kernel_path = save(tmp_path, "k.npy", np.ones((3, 3, 3)))
    refused(load_inputs, image_path, kernel_path, names=[kernel_path],
            phrases=["ambiguous", "--kernel-layout oihw"])


def test_oihw_kernel_is_transposed_to_hwio():
    # Non-symmetric in every axis: each element's value encodes its OIHW index.
    c_out, c_in, kh, kw = 4, 3, 2, 5
    oihw = np.arange(c_out * c_in * kh * kw, dtype=np.float64).reshape(c_out, c_in, kh, kw)
    hwio = as_kernel(oihw, layout="oihw")
    assert hwio.shape == (kh, kw, c_in, c_out)
    for o, i, y, x in np.ndindex(oihw.shape):
        assert hwio[y, x, i, o] == oihw[o, i, y, x]


def test_unknown_layout_is_refused():
    refused(as_kernel, np.ones((3, 3)), layout="nchw", phrases=["'nchw'", "hwio", "oihw"])
    refused(prepare_inputs, np.ones((4, 4)), np.ones((3, 3)), kernel_layout="HWIO",
            phrases=["lower case", "kernel_layout="])


def test_output_shapes_are_normalised():
    assert as_output(np.ones((4, 5))).shape == (1, 4, 5, 1)
    assert as_output(np.ones((4, 5, 2))).shape == (1, 4, 5, 2)
    assert as_output(np.ones((3, 4, 5, 2))).shape == (3, 4, 5, 2)


def test_output_readings_follow_the_batch_and_channels():
    image, kernel = np.ones((2, 6, 6, 3)), np.ones((3, 3, 3, 4))
    assert prepare_inputs(image, kernel, np.ones((2, 6, 6, 4))).output_reading == "nhwc"
    channels_first = prepare_inputs(image, kernel, np.ones((2, 4, 6, 6)))
    assert channels_first.output_reading == "nchw" and channels_first.output_layout == "chw"
    assert channels_first.output.shape == (2, 6, 6, 4)
    single = prepare_inputs(np.ones((2, 6, 6)), np.ones((3, 3)), np.ones((2, 6, 6)), layout="nchw")
    assert single.image.shape == (1, 6, 6, 2)   # (C, H, W) with a per-channel 2-D kernel
    refused(prepare_inputs, image, kernel, np.ones((3, 6, 6, 4)), phrases=["batch of 2", "tried"])


def test_depthwise_and_grouped_kernels():
    image = np.ones((6, 6, 4))
    depthwise = prepare_inputs(image, np.ones((3, 3, 4, 2)), np.ones((6, 6, 8)), kernel_layout="depthwise")
    assert depthwise.kernel.shape == (3, 3, 1, 8) and depthwise.groups == depthwise.expected_groups == 4
    # Shapes that imply a grouping declare it (CONTRACT 2a, version 3).
    recognised = prepare_inputs(image, np.ones((3, 3, 4, 2)), np.ones((6, 6, 8)))
    assert recognised.groups == 4 and recognised.expected_groups == 4
    grouped = prepare_inputs(image, np.ones((3, 3, 2, 6)), np.ones((6, 6, 6)))
    assert grouped.groups == grouped.expected_groups == 2 and grouped.kernel.shape == (3, 3, 2, 6)
    per_channel = prepare_inputs(image, np.ones((3, 3)), np.ones((6, 6, 4)))
    assert per_channel.groups == per_channel.expected_groups == 4


def test_api_dtypes_follow_the_same_rules():
    refused(as_image, np.ones((2, 2), dtype=bool), phrases=["image:", "uint8"])
    refused(as_image, [[1 + 2j, 3j]], phrases=["complex"])
    refused(as_image, [["a", "b"]], phrases=["text"])
    refused(as_image, [[None, 1.0]], phrases=["object"])
    refused(as_image, np.ones((2, 2), dtype=ml_dtypes.float8_e4m3fn), phrases=["float32"])
    refused(as_image, [[1.0, 2.0], [3.0]], phrases=["image:"])


def test_api_accepts_bfloat16_lists_and_ints():
    image = as_image(np.ones((3, 3), dtype=ml_dtypes.bfloat16))
    assert image.dtype == ml_dtypes.bfloat16 and image.shape == (1, 3, 3, 1)
    assert as_image([[1, 2], [3, 4]]).shape == (1, 2, 2, 1)
    assert as_kernel(np.ones((2, 2), dtype=np.uint8)).dtype == np.uint8


def test_as_functions_use_the_given_name():
    refused(as_image, np.ones(3), name="picture", phrases=["picture:"])


# ----------------------------------------------------------------------------- pairs


def test_channel_mismatch_is_refused():
    message = refused(check_pair, np.ones((5, 5, 1)), np.ones((3, 3, 3, 2)), "same",
                      image_name="x.npy", kernel_name="k.npy",
                      phrases=["kernel 'k.npy' has 3 input channels but image 'x.npy' has 1"])
    assert "oihw" in message


def test_valid_padding_with_kernel_larger_than_image_is_refused():
    refused(check_pair, np.ones((2, 6, 1)), np.ones((3, 3, 1, 1)), "valid",
            phrases=["'valid'", "'same'", "'full'"])
    refused(check_pair, np.ones((6, 2, 1)), np.ones((3, 3, 1, 1)), "valid", phrases=["larger"])
    check_pair(np.ones((3, 3, 1)), np.ones((3, 3, 1, 1)), "valid")
    check_pair(np.ones((2, 2, 1)), np.ones((3, 3, 1, 1)), "same")
    check_pair(np.ones((2, 2, 1)), np.ones((3, 3, 1, 1)), "full")


def test_unknown_padding_is_refused():
    refused(check_pair, np.ones((3, 3, 1)), np.ones((3, 3, 1, 1)), "circular",
            phrases=["'circular'", "same", "valid", "full"])
    refused(load_inputs, "does-not-matter.npy", "nor-this.npy", padding=None, phrases=["padding"])


def test_check_pair_accepts_2d_arrays():
    check_pair(np.ones((4, 4)), np.ones((3, 3)), "valid")
    refused(check_pair, np.ones((4, 4)), np.ones((3, 3, 2, 1)), "same", phrases=["2 input channels"])


def test_output_channels_must_match_kernel_c_out(tmp_path):
    image_path = save(tmp_path, "img.npy", np.ones((5, 5, 2)))
    kernel_path = save(tmp_path, "k.npy", np.ones((3, 3, 2, 4)))
    # 5 channels: no order of the kernel's axes gives them (3 would: read as OHIW it fits).
    output_path = save(tmp_path, "out.npy", np.ones((5, 5, 5)))
    refused(load_inputs, image_path, kernel_path, output_path, names=[output_path],
            phrases=["(5, 5, 5)", "4 or 8 output channels", "tried"])
    refused(prepare_inputs, np.ones((5, 5)), np.ones((3, 3)), np.ones((5, 5, 2)),
            phrases=["1 output channel", "tried"])


def test_output_size_is_not_checked_against_padding():
    inputs = prepare_inputs(np.ones((5, 5)), np.ones((3, 3)), np.ones((9, 2)), padding="valid")
    assert inputs.output.shape == (1, 9, 2, 1)


# ----------------------------------------------------------------------------- bundles


def test_load_inputs_happy_path(tmp_path):
    image = np.arange(60, dtype=np.uint8).reshape(1, 5, 4, 3)
    oihw = np.arange(2 * 3 * 3 * 2, dtype=np.int16).reshape(2, 3, 3, 2)
    output = np.zeros((5, 4, 2), dtype=np.float16)
    paths = [save(tmp_path, n, a) for n, a in [("i.npy", image), ("k.npy", oihw), ("o.npy", output)]]
    inputs = load_inputs(*paths, kernel_layout="oihw", padding="same")
    assert isinstance(inputs, Inputs)
    assert inputs.image.shape == (1, 5, 4, 3) and inputs.image.dtype == np.uint8
    assert inputs.kernel.shape == (3, 2, 3, 2) and inputs.kernel.dtype == np.int16
    np.testing.assert_array_equal(inputs.kernel, oihw.transpose(2, 3, 1, 0))
    assert inputs.output.shape == (1, 5, 4, 2) and inputs.output.dtype == np.float16
    assert (inputs.image_shape, inputs.kernel_shape, inputs.output_shape) == \
        ((1, 5, 4, 3), (2, 3, 3, 2), (5, 4, 2))
    assert (inputs.image_name, inputs.kernel_name, inputs.output_name) == tuple(paths)
    assert "array(" not in repr(inputs)


def test_load_inputs_without_output(tmp_path):
    inputs = load_inputs(save(tmp_path, "i.npy", np.ones((4, 4), np.float32)),
                         save(tmp_path, "k.npy", np.ones((2, 2), np.float32)))
    assert inputs.output is None and inputs.output_shape is None and inputs.output_name is None
    assert inputs.image.dtype == np.float32


def test_load_inputs_checks_options_before_files(tmp_path):
    refused(load_inputs, tmp_path / "missing.npy", tmp_path / "missing.npy", kernel_layout="torch",
            phrases=["--kernel-layout"])


def test_load_inputs_uses_max_elements(tmp_path):
    image_path = save(tmp_path, "i.npy", np.ones((4, 4)))
    kernel_path = save(tmp_path, "k.npy", np.ones((3, 3)))
    refused(load_inputs, image_path, kernel_path, max_elements=10, names=[image_path],
            phrases=["--max-elements"])
    assert DEFAULT_MAX_ELEMENTS == 2**28


def test_prepare_inputs_happy_path():
    inputs = prepare_inputs([[1.0, 2.0], [3.0, 4.0]], np.ones((1, 1, 1, 2)), np.zeros((1, 2, 2, 2)))
    assert inputs.image.shape == (1, 2, 2, 1) and inputs.image.dtype == np.float64
    assert inputs.output.shape == (1, 2, 2, 2)
    assert (inputs.image_shape, inputs.kernel_shape, inputs.output_shape) == ((2, 2), (1, 1, 1, 2), (1, 2, 2, 2))
    assert (inputs.image_name, inputs.kernel_name, inputs.output_name) == ("image", "kernel", "output")


def test_prepare_inputs_keeps_dtypes_and_refuses_like_files():
    inputs = prepare_inputs(np.ones((4, 4), np.float16), np.ones((3, 3), ml_dtypes.bfloat16))
    assert inputs.image.dtype == np.float16 and inputs.kernel.dtype == ml_dtypes.bfloat16
    refused(prepare_inputs, np.ones((4, 4)), np.ones((3, 3, 3)), phrases=["kernel:", "ambiguous"])


# ----------------------------------------------------------------------------- round trip

_FLOAT_DTYPES = st.sampled_from([np.float16, np.float32, np.float64])


@st.composite
def _case(draw):
    dtype = draw(_FLOAT_DTYPES)
    elements = st.floats(allow_nan=False, allow_infinity=False, width=np.dtype(dtype).itemsize * 8)
    channels, c_out = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w, kh, kw = (draw(st.integers(1, 6)) for _ in range(4))
    image = draw(hnp.arrays(dtype, (h, w, channels), elements=elements))
    kernel = draw(hnp.arrays(dtype, (kh, kw, channels, c_out), elements=elements))
    output = draw(hnp.arrays(dtype, (h, w, c_out), elements=elements))
    if draw(st.booleans()):
        image = np.asfortranarray(image)
    if channels == 1 and draw(st.booleans()):
        image = image[:, :, 0]
    return image, kernel, output


@settings(max_examples=40, deadline=None)
@given(_case())
def test_valid_float_arrays_round_trip_through_load_inputs(case):
    image, kernel, output = case
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for name, array in (("i.npy", image), ("k.npy", kernel), ("o.npy", output)):
            paths.append(os.path.join(folder, name))
            np.save(paths[-1], array)
        inputs = load_inputs(*paths)
    for loaded, original in ((inputs.image, image), (inputs.kernel, kernel), (inputs.output, output)):
        assert loaded.dtype == original.dtype
        # Bit for bit, so -0.0 and subnormals count too.
        assert np.ascontiguousarray(loaded.reshape(original.shape)).tobytes() == \
            np.ascontiguousarray(original).tobytes()
    assert inputs.image_shape == image.shape


# ----------------------------------------------------------------------------- hostile files


def test_fifo_is_refused_before_opening(tmp_path):
    # Opening a FIFO for reading blocks until a writer appears: refused from its stat alone.
    fifo = tmp_path / "pipe.npy"
    os.mkfifo(fifo)
    refused(read_npy, fifo, "image", names=[fifo], phrases=["named pipe (FIFO)", "not a .npy file"])


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_devices_are_refused_as_devices(device):
    if not os.path.exists(device):
        pytest.skip(f"{device} does not exist here")
    refused(read_npy, device, "kernel", names=[device], phrases=["character device"])


def test_symlink_loop_says_it_is_a_loop(tmp_path):
    os.symlink(tmp_path / "b.npy", tmp_path / "a.npy")
    os.symlink(tmp_path / "a.npy", tmp_path / "b.npy")
    refused(read_npy, tmp_path / "a.npy", "image", phrases=["symbolic link loop"])


def test_broken_symlink_says_where_it_points(tmp_path):
    os.symlink(tmp_path / "gone.npy", tmp_path / "link.npy")
    refused(read_npy, tmp_path / "link.npy", "image", phrases=["broken symbolic link", "gone.npy"])


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any folder")
def test_file_in_unreadable_folder_says_permission_denied(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    path = save(folder, "x.npy", np.ones((3, 3)))
    folder.chmod(0)
    try:
        refused(read_npy, path, "image", phrases=["permission denied"])
    finally:
        folder.chmod(0o755)


def test_unreadable_folder_is_explained_even_for_root(tmp_path, monkeypatch):
    # Root reads every folder, so the EACCES path is exercised by making stat raise it.
    import errno as errno_module

    def denied(path, *args, **kwargs):
        raise PermissionError(errno_module.EACCES, "Permission denied", str(path))

    monkeypatch.setattr("convcheck.inputs.files.os.stat", denied)
    refused(read_npy, tmp_path / "x.npy", "image", phrases=["permission denied"])


def _raw_header(header: str, *, length=None) -> bytes:
    text = header.encode("latin1")
    text += b" " * ((64 - (10 + len(text) + 1) % 64) % 64) + b"\n"
    size = len(text) if length is None else length
    return b"\x93NUMPY\x01\x00" + size.to_bytes(2, "little") + text


@pytest.mark.parametrize("shape, phrase", [("(True, 4)", "not a tuple of integers"),
                                           ("(0, 10**23)", "save it again"),  # an expression, not a literal
                                           ("(0, 100000000000000000000000)", "larger than any array can be")])
def test_crafted_shapes_are_corrupt_headers(tmp_path, shape, phrase):
    path = tmp_path / "crafted.npy"
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': %s, }" % shape
    path.write_bytes(_raw_header(header) + b"\0" * 64)
    refused(read_npy, path, "image", names=[path], phrases=["corrupt .npy header", phrase])


def test_too_short_header_length_field_is_a_corrupt_header(tmp_path):
    path = tmp_path / "short.npy"
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }"
    path.write_bytes(_raw_header(header, length=5) + b"\0" * 64)
    refused(read_npy, path, "image", names=[path], phrases=["corrupt .npy header", "header-length"])


def test_version_3_npy_is_read(tmp_path):
    path = tmp_path / "v3.npy"
    array = np.arange(12.0).reshape(3, 4)
    with open(path, "wb") as fp:
        np.lib.format.write_array(fp, array, version=(3, 0))
    assert np.array_equal(np.load(path), array)  # numpy itself reads it
    assert np.array_equal(read_npy(path, "image"), array)
