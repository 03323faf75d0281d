"""The field table (convcheck.vocabulary): one row per CONTRACT section 2 field, in contract order,
and a cause and a label for every value a field can name."""

import dataclasses
import subprocess
import sys

import pytest

from convcheck.choices import FIELDS
from convcheck.vocabulary import FIELD_ROWS, FIELD_TABLE, Explanation, cause_for, plain_label

BASELINES = [Explanation(), Explanation(precision="float32", padding="valid", stride=(2, 2), output_layout="chw",
                                        kernel_layout="oihw", groups=2, algorithm="fft")]


def test_the_table_has_one_row_per_field_in_contract_order():
    names = [row.name for row in FIELD_TABLE]
    assert names == list(FIELDS)
    assert names == [f.name for f in dataclasses.fields(Explanation)]
    assert list(FIELD_ROWS) == names


@pytest.mark.parametrize("row", FIELD_TABLE, ids=lambda row: row.name)
def test_each_row_declares_its_default_first(row):
    assert row.default == getattr(Explanation(), row.name)
    assert row.group in ("geometry", "layout", "values")
    assert row.enumerated and row.why
    if row.values is not None:
        assert row.values[0] == row.default
        assert len(set(row.values)) == len(row.values)


@pytest.mark.parametrize("row", [row for row in FIELD_TABLE if row.values is not None], ids=lambda row: row.name)
def test_every_value_of_a_finite_field_has_a_cause_and_a_label(row):
    for value in row.values:
        label = plain_label(row.name, value)
        assert isinstance(label, str) and label, value
        for baseline in BASELINES:
            for explanation in (None, baseline.with_(**{row.name: value})):
                cause = cause_for(row.name, value, baseline, explanation)
                assert (cause.field, cause.value) == (row.name, value)
                assert cause.summary and cause.fix and cause.why, value


def test_numbers_and_pairs_have_causes_and_labels_too():
    base = Explanation()
    for name, value in [("stride", (2, 1)), ("dilation", (2, 2)), ("offset", (-1, 0)), ("groups", 3),
                        ("cval", 0.5), ("bias", 0.25), ("bias", (0.5, 1.0)), ("scale", 2.0), ("scale", (1.0, 3.0)),
                        ("boundary", "constant"), ("boundary", ("zero", "wrap"))]:
        assert cause_for(name, value, base).summary and plain_label(name, value)


def test_an_unknown_field_is_refused():
    with pytest.raises(ValueError, match="unknown explanation field 'nonsense'"):
        cause_for("nonsense", 1, Explanation())


def test_importing_the_vocabulary_imports_no_numpy():
    code = "import sys, convcheck.vocabulary; sys.exit('numpy' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
