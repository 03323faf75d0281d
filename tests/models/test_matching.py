"""Matching conv layers of a model and its port (convcheck.models.matching): numpy only, on
kernels shaped as the loaders give them (grouped HWIO), changed as ports change them."""

from __future__ import annotations

import numpy as np
import pytest

from convcheck.errors import InputError
from convcheck.models.layers import ConvLayer
from convcheck.models.matching import (EXACT, READINGS, THRESHOLD, VALUES_READING, chance_threshold,
                                       match_layers, parse_match, similarity_matrix)


def layer(name: str, kernel: np.ndarray, groups: int = 1) -> ConvLayer:
    """A ConvLayer around `kernel` (matching reads only names and kernels)."""
    empty = np.zeros((1, 1, 1, 1), np.float32)
    return ConvLayer(name=name, op="Conv", kernel=np.asarray(kernel, np.float32), bias=None, stride=(1, 1),
                     dilation=(1, 1), groups=groups, pads=((0, 0), (0, 0)), padding="valid", input=empty,
                     output=empty)


def kernels(seed: int, *shapes) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(0.0, 0.5, shape).astype(np.float32) for shape in shapes]


def pairs_of(matching) -> list[tuple[int, int]]:
    return [(p.original, p.port) for p in matching.pairs]


# A small ResNet-style stack: several layers share a shape, so weights (not shapes) must decide.
SHAPES = [(3, 3, 3, 8), (3, 3, 8, 8), (3, 3, 8, 8), (1, 1, 8, 8), (3, 3, 8, 16), (3, 3, 16, 16), (1, 1, 8, 16)]


@pytest.fixture(scope="module")
def stack() -> list[ConvLayer]:
    return [layer(f"layer{i}", k) for i, k in enumerate(kernels(0, *SHAPES))]


def test_same_model_matches_itself_in_order(stack):
    matching = match_layers(stack, stack)
    assert pairs_of(matching) == [(i, i) for i in range(len(stack))]
    assert all(p.by == "weights" and p.similarity == pytest.approx(1.0) and p.reading == READINGS[0]
               for p in matching.pairs)
    assert matching.unmatched_original == () and matching.unmatched_port == ()


def test_permuted_layer_order_is_matched_by_weights(stack):
    order = [4, 0, 6, 2, 1, 5, 3]
    port = [layer(f"p{j}", stack[j].kernel) for j in order]
    matching = match_layers(stack, port)
    assert sorted(pairs_of(matching)) == sorted((j, k) for k, j in enumerate(order))


def test_folded_batchnorm_keeps_the_match(stack):
    """A BatchNorm folded into the port's weights scales each output channel (some negatively)."""
    rng = np.random.default_rng(3)
    port = []
    for item in stack:
        factor = rng.uniform(0.3, 2.0, item.kernel.shape[-1]) * rng.choice([-1.0, 1.0], item.kernel.shape[-1])
        port.append(layer(item.name + "_fused", (item.kernel * factor).astype(np.float32)))
    matching = match_layers(stack, port)
    assert pairs_of(matching) == [(i, i) for i in range(len(stack))]
    assert min(p.similarity for p in matching.pairs) > 0.999


def test_an_extra_layer_in_the_port_is_left_unmatched(stack):
    extra = layer("extra", kernels(9, (3, 3, 8, 8))[0])
    port = stack[:2] + [extra] + stack[2:]
    matching = match_layers(stack, port)
    assert pairs_of(matching) == [(0, 0), (1, 1), (2, 3), (3, 4), (4, 5), (5, 6), (6, 7)]
    assert matching.unmatched_port == (2,) and matching.unmatched_original == ()


def test_a_layer_missing_in_the_port_is_listed(stack):
    port = stack[:3] + stack[4:]
    matching = match_layers(stack, port)
    assert matching.unmatched_original == (3,) and matching.unmatched_port == ()
    assert pairs_of(matching) == [(0, 0), (1, 1), (2, 2), (4, 3), (5, 4), (6, 5)]


def test_identical_twin_layers_are_resolved_by_order():
    twin, other = kernels(4, (3, 3, 4, 4), (3, 3, 4, 4))
    original = [layer("a", twin), layer("b", other), layer("c", twin), layer("d", twin)]
    port = [layer("A", twin), layer("B", other), layer("C", twin), layer("D", twin)]
    assert pairs_of(match_layers(original, port)) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    # With an extra layer up front the twins still pair in order.
    shifted = [layer("X", kernels(5, (1, 1, 4, 4))[0])] + port
    assert pairs_of(match_layers(original, shifted)) == [(0, 1), (1, 2), (2, 3), (3, 4)]


def test_match_option_overrides_the_weights():
    twin, other = kernels(6, (3, 3, 4, 4), (3, 3, 4, 4))
    original = [layer("a", twin), layer("b", other), layer("c", twin)]
    port = [layer("A", twin), layer("B", other), layer("C", twin)]
    matching = match_layers(original, port, [("a", "C"), ("b", "A")])
    assert pairs_of(matching) == [(0, 2), (1, 0)]
    by = {(p.original, p.port): p for p in matching.pairs}
    assert by[(0, 2)].by == "name" and by[(0, 2)].similarity == pytest.approx(1.0)
    assert by[(1, 0)].by == "name" and by[(1, 0)].similarity < THRESHOLD   # forced, though unrelated
    # What is left (c, a twin, and B, another kernel) is assigned by weights: no match.
    assert matching.unmatched_original == (2,) and matching.unmatched_port == (1,)
    swapped = match_layers(original, port, [("a", "C")])
    assert pairs_of(swapped) == [(0, 2), (1, 1), (2, 0)]
    assert [p.by for p in swapped.pairs] == ["name", "weights", "weights"]


def test_match_option_names_must_exist_and_be_used_once():
    a, b = kernels(7, (3, 3, 2, 2), (3, 3, 2, 2))
    original, port = [layer("conv_one", a), layer("conv_two", b)], [layer("p1", a), layer("p2", b)]
    with pytest.raises(InputError, match="'conv_on' is not a conv layer of the original model.*"
                                         "did you mean 'conv_one'"):
        match_layers(original, port, [("conv_on", "p1")])
    with pytest.raises(InputError, match="'p9' is not a conv layer of the port model"):
        match_layers(original, port, [("conv_one", "p9")])
    with pytest.raises(InputError, match="named in two --match pairs"):
        match_layers(original, port, [("conv_one", "p1"), ("conv_one", "p2")])


def test_parse_match():
    assert parse_match(["a.b=c", " x = y "]) == (("a.b", "c"), ("x", "y"))
    assert parse_match(["odd=name=port"]) == (("odd=name", "port"),)
    for bad in ("noequals", "=port", "orig="):
        with pytest.raises(InputError, match="is not ORIGINAL_NAME=PORT_NAME"):
            parse_match([bad])


@pytest.mark.parametrize("mistake, reading", [
    ("swap", READINGS[1]), ("oihw_reshape", READINGS[2]), ("hwio_reshape", READINGS[3]), ("flip", READINGS[4])])
def test_scrambled_kernels_are_matched_through_their_reading(mistake, reading):
    """The classic porting mistakes keep the shape: each is matched, and the reading named."""
    decoy, kernel = kernels(8, (3, 3, 6, 6), (3, 3, 6, 6))
    if mistake == "swap":
        port_kernel = kernel.transpose(0, 1, 3, 2)
    elif mistake == "oihw_reshape":
        port_kernel = kernel.transpose(3, 2, 0, 1).reshape(kernel.shape)   # PyTorch OIHW reshaped into HWIO
    elif mistake == "hwio_reshape":   # Keras HWIO reshaped into OIHW by a PyTorch port, read back as HWIO
        port_kernel = kernel.reshape(6, 6, 3, 3).transpose(2, 3, 1, 0)
    else:
        port_kernel = kernel[::-1, ::-1]
    matching = match_layers([layer("decoy", decoy), layer("k", kernel)],
                            [layer("decoy", decoy), layer("p", port_kernel)])
    assert pairs_of(matching) == [(0, 0), (1, 1)]
    assert matching.pairs[1].reading == reading and matching.pairs[1].similarity == pytest.approx(1.0)


def test_values_in_another_order_are_matched_by_their_multiset():
    """Input channels reversed (a port meant for BGR): no reading maps it, the values are the same."""
    decoy, kernel = kernels(10, (3, 3, 3, 8), (3, 3, 3, 8))
    matching = match_layers([layer("k", kernel), layer("decoy", decoy)],
                            [layer("decoy", decoy), layer("bgr", kernel[:, :, ::-1, :])])
    assert pairs_of(matching) == [(0, 1), (1, 0)]
    assert matching.pairs[0].reading == VALUES_READING


def test_reinitialised_weights_are_not_a_match(stack):
    port = list(stack)
    port[5] = layer("reinit", kernels(11, SHAPES[5])[0])
    matching = match_layers(stack, port)
    assert matching.unmatched_original == (5,) and matching.unmatched_port == (5,)


def test_shapes_that_cannot_correspond_are_never_paired():
    a, b = kernels(12, (3, 3, 4, 8), (3, 3, 8, 4))
    similarity, _ = similarity_matrix([a], [b, a[:, :, :, :4]])
    assert np.isnan(similarity).all()   # different C_out; fewer weights
    matching = match_layers([layer("a", a)], [layer("b", b)])
    assert matching.pairs == () and matching.unmatched_original == (0,) and matching.unmatched_port == (0,)


def test_separable_halves_and_unfused_batchnorm_match_their_counterparts():
    """PyTorch depthwise + pointwise convs (the pointwise followed by a BatchNorm) against a Keras
    SeparableConv2D's two halves, the port's pointwise half with the BatchNorm folded in."""
    depthwise, pointwise, stem = kernels(13, (3, 3, 1, 8), (1, 1, 8, 16), (3, 3, 3, 8))
    factor = np.random.default_rng(14).uniform(0.5, 1.5, 16)
    original = [layer("stem", stem), layer("dw", depthwise, groups=8), layer("pw", pointwise)]
    port = [layer("stem", stem), layer("sep/depthwise", depthwise, groups=8),
            layer("sep/pointwise", (pointwise * factor).astype(np.float32))]
    matching = match_layers(original, port)
    assert pairs_of(matching) == [(0, 0), (1, 1), (2, 2)]
    assert matching.pairs[2].similarity > 0.999


def test_narrower_port_weights_still_match(stack):
    """A float16 port: every weight rounded; the cosine barely moves."""
    port = [layer(item.name, item.kernel.astype(np.float16)) for item in stack]
    matching = match_layers(stack, port)
    assert pairs_of(matching) == [(i, i) for i in range(len(stack))]


def test_small_kernels_must_be_nearly_the_same_to_match():
    """Four weights per channel: unrelated kernels reach a high cosine by chance, so only a
    near-exact one (a folded BatchNorm) is a match."""
    assert chance_threshold((1, 1, 4, 2)) == EXACT
    assert chance_threshold((3, 3, 64, 64)) == THRESHOLD
    assert THRESHOLD < chance_threshold((1, 1, 8, 8)) < EXACT
    rng = np.random.default_rng(15)
    unrelated = [rng.uniform(-1, 1, (1, 1, 4, 2)).astype(np.float32) for _ in range(20)]
    for a, b in zip(unrelated[::2], unrelated[1::2]):
        matching = match_layers([layer("a", a)], [layer("b", b)])
        assert matching.pairs == (), similarity_matrix([a], [b])[0]
    folded = (unrelated[0] * np.array([0.5, -2.0])).astype(np.float32)
    assert pairs_of(match_layers([layer("a", unrelated[0])], [layer("b", folded)])) == [(0, 0)]
