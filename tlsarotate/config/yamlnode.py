"""Reading typed values out of composed YAML nodes, each error one line at its file, line and
key path.

:class:`YamlFile` knows the config file's path (for messages) and directory (relative paths
start there); its getters take a node and the node's key path (``services[0].ports[1]``) and
return a checked Python value or raise :class:`~tlsarotate.errors.ConfigError` with those
fields set. Nodes, not plain data, so that every error can name its line.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import dns.name
import yaml

from tlsarotate import fqdn
from tlsarotate.errors import ConfigError

T = TypeVar("T")
# a host name label (LDH, plus "_" which some operators use); IDNs arrive here as xn--

#: a mapping's keys, each with the node of its key and the node of its value
Entries = dict[str, tuple[yaml.Node, yaml.Node]]


def line_of(node: yaml.Node) -> int:
    """The node's 1-based line in the file."""
    return int(node.start_mark.line) + 1


def kind(node: yaml.Node) -> str:
    """What the node is, in words, for "expected X, got Y"."""
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if isinstance(node, yaml.ScalarNode):
        if node.tag == "tag:yaml.org,2002:null" or (node.value == "" and not node.style):
            return "nothing (an empty value)"
        return f"{node.value!r}"
    return "something else"


def _construct(node: yaml.ScalarNode) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


class YamlFile:
    """Typed getters over the nodes of one config file (``file``)."""

    def __init__(self, path: Path) -> None:
        self.file = path
        self.base = path.parent

    def err(self, node: yaml.Node | None, keypath: str, msg: str) -> ConfigError:
        """The error about ``node`` (None: the file as a whole) at ``keypath``."""
        line = line_of(node) if node is not None else None
        return ConfigError(msg, file=self.file, line=line, key=keypath)

    def mapping(self, node: yaml.Node, kp: str, allowed: Mapping[str, bool]) -> Entries:
        """key -> (key node, value node); ``allowed`` maps each key to whether it is required.
        Unknown (with a did-you-mean hint), duplicate and missing keys are errors."""
        if not isinstance(node, yaml.MappingNode):
            raise self.err(node, kp, f"expected a mapping, got {kind(node)}")
        out: Entries = {}
        for knode, vnode in node.value:
            key = knode.value if isinstance(knode, yaml.ScalarNode) else None
            sub = f"{kp}.{key}" if kp else str(key)
            if not isinstance(key, str):
                raise self.err(knode, kp, "keys must be strings")
            if key in out:
                raise self.err(knode, sub, "duplicate key")
            if key not in allowed:
                close = [k for k in allowed if k.replace("_", "") == key.replace("_", "").lower()]
                close = close or difflib.get_close_matches(key.lower(), list(allowed), 1, 0.75)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.err(knode, sub, f"unknown key{hint}; allowed: {', '.join(allowed)}")
            out[key] = (knode, vnode)
        for key, required in allowed.items():
            if required and key not in out:
                raise self.err(node, f"{kp}.{key}" if kp else key, "required key is missing")
        return out

    def scalar(self, node: yaml.Node, kp: str) -> Any:
        """The value of a single-value node, as YAML's safe loader reads it."""
        if not isinstance(node, yaml.ScalarNode):
            raise self.err(node, kp, f"expected a single value, got {kind(node)}")
        try:
            return _construct(node)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError):
            raise self.err(node, kp, f"cannot read the value (YAML tag {node.tag})") from None

    def string(self, node: yaml.Node, kp: str) -> str:
        v = self.scalar(node, kp)
        if not isinstance(v, str) or not v.strip():
            raise self.err(node, kp, f"expected a non-empty string, got {kind(node)}")
        return v

    def integer(self, node: yaml.Node, kp: str, lo: int, hi: int, what: str = "value") -> int:
        v = self.scalar(node, kp)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.err(node, kp, f"expected a whole number, got {kind(node)}")
        if not lo <= v <= hi:
            raise self.err(node, kp, f"{what} {v} out of range {lo}-{hi}")
        return v

    def number(
        self, node: yaml.Node, kp: str, lo: float, hi: float, what: str, unit: str = "seconds"
    ) -> float:
        v = self.scalar(node, kp)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.err(node, kp, f"expected a number of {unit}, got {kind(node)}")
        if not lo <= v <= hi:
            raise self.err(node, kp, f"{what} {v} out of range {lo:g}-{hi:g}")
        return float(v)

    def boolean(self, node: yaml.Node, kp: str) -> bool:
        v = self.scalar(node, kp)
        if not isinstance(v, bool):
            raise self.err(node, kp, f"expected true or false, got {kind(node)}")
        return v

    def elements(
        self, node: yaml.Node, kp: str, nonempty: bool = True
    ) -> list[tuple[yaml.Node, str]]:
        """Each element of a list node with its key path (``kp[i]``)."""
        if not isinstance(node, yaml.SequenceNode):
            raise self.err(node, kp, f"expected a list, got {kind(node)}")
        if nonempty and not node.value:
            raise self.err(node, kp, "must not be empty")
        return [(n, f"{kp}[{i}]") for i, n in enumerate(node.value)]

    def sequence(
        self,
        node: yaml.Node,
        kp: str,
        item: Callable[[yaml.Node, str], T],
        nonempty: bool = True,
    ) -> tuple[T, ...]:
        """``item(node, keypath)`` of each element of a list node."""
        return tuple(item(n, k) for n, k in self.elements(node, kp, nonempty))

    def path(self, node: yaml.Node, kp: str) -> Path:
        """A file name, ``~`` expanded, relative to the config file's directory."""
        p = Path(os.path.expanduser(self.string(node, kp)))
        return p if p.is_absolute() else self.base / p

    def fqdn(self, node: yaml.Node, kp: str) -> dns.name.Name:
        """An absolute DNS name of at least two labels (a final dot is optional): fqdn.parse."""
        try:
            return fqdn.parse(self.string(node, kp))
        except ValueError as e:
            raise self.err(node, kp, str(e)) from None
