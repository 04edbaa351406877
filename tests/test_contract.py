"""Every registered model component passes the contract kit (merc_bench.testing)."""

import pytest

from merc_bench.testing import check_component, component_entries

ENTRIES = component_entries()


def test_registry_has_every_kind():
    kinds = {entry.kind for entry in ENTRIES}
    assert kinds == {"encoder", "mixer", "fuser", "distiller"}


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: f"{e.kind}:{e.name}")
def test_component_contract(entry):
    check_component(entry)
