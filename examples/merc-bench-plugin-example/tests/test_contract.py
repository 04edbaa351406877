"""This package's components pass merc-bench's contract kit — the same checks the built-ins pass."""

import pytest

from merc_bench.testing import check_component, check_dataset, plugin_entries

ENTRIES = plugin_entries("merc-bench-plugin-example")


def test_everything_we_ship_is_registered():
    assert {(e.kind, e.name) for e in ENTRIES} == {
        ("fuser", "merc-bench-plugin-example:lmf"), ("dataset", "merc-bench-plugin-example:tiny-dialogues")}


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: f"{e.kind}:{e.name}")
def test_contract(entry):
    if entry.kind == "dataset":
        check_dataset(entry)
    else:
        check_component(entry)
