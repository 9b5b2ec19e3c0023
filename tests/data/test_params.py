"""One-line config errors (data.params.build_config) inside lists and mappings, and at the root."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from data.params import ConfigError, build_config


@dataclass(frozen=True)
class _Item:
    name: str
    size: int


@dataclass(frozen=True)
class _Doc:
    items: tuple[_Item, ...]
    named: dict[str, _Item]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        # an unknown key inside a list item lists the item's keys
        (
            {
                "items": [{"name": "a", "size": 1}, {"name": "b", "size": 2, "colour": 3}],
                "named": {},
            },
            "f.yaml.items[1].colour: unknown key; allowed: ['name', 'size']",
        ),
        # ... and inside a mapping's value
        (
            {"items": [], "named": {"x": {"name": "a", "size": 1, "oops": 2}}},
            "f.yaml.named.x.oops: unknown key; allowed: ['name', 'size']",
        ),
        ({"items": []}, "f.yaml: missing required key 'named'"),
    ],
)
def test_errors_name_the_key_and_what_it_allows(doc: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_config(_Doc, doc, "f.yaml")
    assert str(err.value) == message


def test_a_root_error_without_a_section_name_has_no_empty_key() -> None:
    with pytest.raises(ConfigError) as err:
        build_config(_Doc, {"items": []}, "")
    assert str(err.value) == "missing required key 'named'"
