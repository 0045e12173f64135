"""Status page groups are checked each on its own: a bad group (its name, its list)
never hides another group's problems, and an empty group or a selector matching
nothing is always reported; the wording of neighbouring key and id problems."""

from __future__ import annotations

import pytest

from server.validation import ConfigError, parse_config

SERVICES = (
    "services:\n"
    "  - {id: a, type: command, command: {command: [/bin/true]}}\n"  # line 2
)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "f.yaml", environ={})
    return [str(p) for p in caught.value.problems]


def test_a_group_with_an_unquoted_number_name_does_not_hide_another_groups_selectors() -> None:
    text = SERVICES + (
        "status_page:\n"
        "  groups:\n"
        "    - {name: G, services: [zzz]}\n"  # line 5
        "    - {name: 5, services: [a]}\n"  # line 6
    )
    assert problems(text) == [
        'f.yaml:5 status_page.groups[0].services[0]: "zzz" matches no service; use a service '
        "id, stack:<name> or glob",
        'f.yaml:6 status_page.groups[1].name: expected a string, got 5 unquoted; quote it: "5"',
    ]


def test_every_group_problem_is_reported_at_once() -> None:
    text = SERVICES + (
        "status_page:\n"
        "  groups:\n"
        "    - {name: G, services: [zzz, 'stack:none', 'q*']}\n"  # line 5
        "    - {name: 5, services: [a]}\n"
        "    - {services: [a]}\n"
        "    - {name: H, services: []}\n"  # line 8
        "    - {name: I, services: a}\n"
        "    - {name: G, services: [nope]}\n"  # line 10
    )
    found = problems(text)
    for expected in [
        'f.yaml:5 status_page.groups[0].services[0]: "zzz" matches no service',
        'f.yaml:5 status_page.groups[0].services[1]: "stack:none" matches no service',
        'f.yaml:5 status_page.groups[0].services[2]: "q*" matches no service',
        "f.yaml:6 status_page.groups[1].name: expected a string",
        "f.yaml:7 status_page.groups[2].name: is required",
        "f.yaml:8 status_page.groups[3].services: list at least one service id",
        'f.yaml:9 status_page.groups[4].services: expected a list, got "a"',
        "f.yaml:10 status_page.groups[5].name: expected a unique, non-empty group name",
        'f.yaml:10 status_page.groups[5].services[0]: "nope" matches no service',
    ]:
        assert [p for p in found if p.startswith(expected)], (expected, found)
    assert len(found) == 9, found


def test_an_unquoted_number_id_says_quote_it_and_is_no_second_problem_where_used() -> None:
    text = SERVICES + (
        "  - {id: 5, type: command, command: {command: [/bin/true]}}\n"  # line 3
        "status_page:\n"
        "  groups:\n"
        "    - {name: G, services: [a, '5']}\n"
    )
    assert problems(text) == [
        'f.yaml:3 services[1].id: expected a string, got 5 unquoted; quote it: "5"'
    ]


def test_an_unknown_key_in_an_optional_block_lists_the_keys_it_takes() -> None:
    text = (
        "services:\n"
        "  - {id: a, type: command, command: {command: [/bin/true]}, "
        "slo: {target: 99.9, extra: 1}}\n"
    )
    assert problems(text) == [
        "f.yaml:2 services[0].slo.extra: unknown key; expected one of: target, window"
    ]


def test_an_unquoted_number_id_counts_as_its_text_wherever_services_are_named() -> None:
    # every check judges the id as meant ("123", as quoting it writes it): no
    # "unknown service" where a relation, a rule or a group names it, and an
    # slo_burn rule finds its objective
    text = (
        "services:\n"
        "  - {id: 123, type: command, command: {command: [/bin/true]}, slo: {target: 99.9}}\n"
        "  - {id: b, type: command, command: {command: [/bin/true]}}\n"
        "relations:\n"
        "  - {source: '123', target: b}\n"
        "alert_rules:\n"
        "  - {id: r, service: '123', condition: 'status >= FAILED'}\n"
        "  - {id: burn, service: '123', condition: slo_burn}\n"
        "status_page:\n"
        "  groups:\n"
        "    - {name: G, services: ['123', b]}\n"
    )
    assert problems(text) == [
        'f.yaml:2 services[0].id: expected a string, got 123 unquoted; quote it: "123"'
    ]


def test_what_holds_for_an_unquoted_number_id_as_its_text_is_said_at_once() -> None:
    # quoting it would make it a duplicate of "123", without the objective the rule needs
    text = (
        "services:\n"
        "  - {id: 123, type: command, command: {command: [/bin/true]}}\n"  # line 2
        "  - {id: '123', type: command, command: {command: [/bin/true]}}\n"  # line 3
        "alert_rules:\n"
        "  - {id: burn, service: '123', condition: slo_burn}\n"  # line 5
    )
    assert problems(text) == [
        'f.yaml:2 services[0].id: expected a string, got 123 unquoted; quote it: "123"',
        'f.yaml:3 services[1].id: duplicate service id "123" (first at line 2)',
        "f.yaml:5 alert_rules[0].condition: slo_burn needs an objective on every service the "
        'rule selects, and it selects services without slo: "123", "123"; add slo: {target: '
        "99.9, window: 30d} to each, or narrow the rule's service",
    ]
