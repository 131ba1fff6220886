"""tlsarotate.config.yamlnode: typed getters over YAML nodes; every error one line with the
file, the node's line and the key path as fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tlsarotate.config.yamlnode import YamlFile, kind, line_of
from tlsarotate.errors import ConfigError

FILE = Path("/etc/tlsarotate/config.yaml")
DOC = YamlFile(FILE)


def node(text: str) -> yaml.Node:
    n = yaml.compose(text, Loader=yaml.SafeLoader)
    assert n is not None
    return n


def value_of(text: str, key: str = "v") -> yaml.Node:
    """The value node of ``key`` in the mapping ``text``."""
    found: yaml.Node = next(v for k, v in node(text).value if k.value == key)
    return found


def fails(call: Any, *args: Any) -> ConfigError:
    with pytest.raises(ConfigError) as ei:
        call(*args)
    assert "\n" not in str(ei.value)
    return ei.value


def test_line_of_counts_from_one() -> None:
    n = node("a: 1\nb:\n  - x\n  - y\n")
    assert [line_of(k) for k, _ in n.value] == [1, 2]
    assert [line_of(item) for item in n.value[1][1].value] == [3, 4]


def test_err_has_file_line_and_key() -> None:
    e = DOC.err(value_of("a: 1\nv: 2\n"), "services[0].ttl", "ttl 2 out of range")
    assert (e.file, e.line, e.key) == (str(FILE), 2, "services[0].ttl")
    assert str(e) == f"{FILE}:2: services[0].ttl: ttl 2 out of range"
    assert str(DOC.err(None, "", "the config file is empty")) == (
        f"{FILE}: the config file is empty"
    )


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("{a: 1}", "a mapping"),
        ("[1]", "a list"),
        ("abc", "'abc'"),
        ("~", "nothing (an empty value)"),
        ("''", "''"),
    ],
)
def test_kind(text: str, what: str) -> None:
    assert kind(node(text)) == what


def test_mapping_returns_key_and_value_nodes() -> None:
    m = DOC.mapping(node("name: a\nttl: 3\n"), "services[0]", {"name": True, "ttl": False})
    assert list(m) == ["name", "ttl"]
    knode, vnode = m["ttl"]
    assert (knode.value, vnode.value, line_of(vnode)) == ("ttl", "3", 2)


@pytest.mark.parametrize(
    ("text", "line", "key", "message"),
    [
        ("[1]", 1, "s", "expected a mapping, got a list"),
        (
            "name: a\nnmae: b\n",
            2,
            "s.nmae",
            "unknown key (did you mean 'name'?); allowed: name, ttl",
        ),
        ("name: a\nTTL: 3\n", 2, "s.TTL", "unknown key (did you mean 'ttl'?); allowed: name, ttl"),
        ("name: a\nzzz: 3\n", 2, "s.zzz", "unknown key; allowed: name, ttl"),
        ("name: a\nname: b\n", 2, "s.name", "duplicate key"),
        ("\nttl: 3\n", 2, "s.name", "required key is missing"),
    ],
)
def test_mapping_errors(text: str, line: int, key: str, message: str) -> None:
    e = fails(DOC.mapping, node(text), "s", {"name": True, "ttl": False})
    assert (e.line, e.key, e.message) == (line, key, message)


def test_top_level_key_paths_have_no_leading_dot() -> None:
    e = fails(DOC.mapping, node("a: 1\n"), "", {"b": False})
    assert e.key == "a"
    assert fails(DOC.mapping, node("a: 1\n"), "", {"a": False, "b": True}).key == "b"


def test_scalar_reads_yaml_types() -> None:
    assert DOC.scalar(node("3"), "k") == 3
    assert DOC.scalar(node("'3'"), "k") == "3"
    assert DOC.scalar(node("yes"), "k") is True
    assert fails(DOC.scalar, node("[1]"), "k").message == "expected a single value, got a list"
    assert fails(DOC.scalar, node("!!int abc"), "k").message == (
        "cannot read the value (YAML tag tag:yaml.org,2002:int)"
    )


def test_string() -> None:
    assert DOC.string(node("mail"), "k") == "mail"
    assert fails(DOC.string, node("''"), "k").message == "expected a non-empty string, got ''"
    assert fails(DOC.string, node("3"), "k").message == "expected a non-empty string, got '3'"


def test_integer() -> None:
    assert DOC.integer(node("25"), "p", 1, 65535, "port") == 25
    assert fails(DOC.integer, node("0"), "p", 1, 65535, "port").message == (
        "port 0 out of range 1-65535"
    )
    assert fails(DOC.integer, node("true"), "p", 0, 1).message == (
        "expected a whole number, got 'true'"
    )
    assert fails(DOC.integer, node("2.5"), "p", 0, 9).message == (
        "expected a whole number, got '2.5'"
    )


def test_number() -> None:
    got = DOC.number(node("5"), "t", 0.1, 600, "timeout")
    assert got == 5.0 and isinstance(got, float)
    assert fails(DOC.number, node("0"), "t", 0.1, 600, "timeout").message == (
        "timeout 0 out of range 0.1-600"
    )
    assert fails(DOC.number, node("x"), "d", 0, 365, "next_min_days", "days").message == (
        "expected a number of days, got 'x'"
    )


def test_boolean() -> None:
    assert DOC.boolean(node("false"), "b") is False
    assert fails(DOC.boolean, node("1"), "b").message == "expected true or false, got '1'"


def test_sequence_hands_each_item_its_key_path() -> None:
    seen: list[str] = []

    def item(n: yaml.Node, kp: str) -> str:
        seen.append(kp)
        return DOC.string(n, kp)

    assert DOC.sequence(node("[a, b]"), "hosts", item) == ("a", "b")
    assert seen == ["hosts[0]", "hosts[1]"]
    e = fails(DOC.sequence, node("- a\n- ''\n"), "hosts", DOC.string)
    assert (e.line, e.key) == (2, "hosts[1]")
    assert fails(DOC.sequence, node("[]"), "hosts", DOC.string).message == "must not be empty"
    assert DOC.sequence(node("[]"), "reload", DOC.string, nonempty=False) == ()
    assert fails(DOC.sequence, node("a"), "hosts", DOC.string).message == (
        "expected a list, got 'a'"
    )


def test_path_is_relative_to_the_config_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/op")
    assert DOC.path(node("certs/mx.pem"), "k") == Path("/etc/tlsarotate/certs/mx.pem")
    assert DOC.path(node("/srv/mx.pem"), "k") == Path("/srv/mx.pem")
    assert DOC.path(node("~/mx.pem"), "k") == Path("/home/op/mx.pem")


def test_fqdn() -> None:
    assert DOC.fqdn(node("mx.example.test"), "h").to_text() == "mx.example.test."
    assert DOC.fqdn(node("_25._tcp.example.test."), "h").to_text() == "_25._tcp.example.test."
    assert DOC.fqdn(node("localhost"), "h").to_text() == "localhost."
    assert fails(DOC.fqdn, node("'.'"), "h").message == "invalid DNS name '.'"
    assert fails(DOC.fqdn, node("-mx.example.test"), "h").message == (
        "invalid DNS name '-mx.example.test': label '-mx' "
        "(use letters, digits, '-' and '_'; no '-' at either end)"
    )
    assert fails(DOC.fqdn, node("a..example"), "h").message.startswith(
        "invalid DNS name 'a..example': "
    )


def test_elements_pairs_each_node_with_its_key_path() -> None:
    n = node("[a, b]")
    assert [(e.value, k) for e, k in DOC.elements(n, "certificates")] == [
        ("a", "certificates[0]"),
        ("b", "certificates[1]"),
    ]
    assert fails(DOC.elements, node("[]"), "certificates").key == "certificates"
    assert DOC.elements(node("[]"), "reload", nonempty=False) == []
