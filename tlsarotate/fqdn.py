"""What counts as a host or zone name the user typed: an absolute DNS name of at least two
labels (a final dot optional), each label letters, digits, '-' and '_' (no '-' at either end,
at most 63 bytes). Pure: the config loader and the command-line options share this one rule."""

from __future__ import annotations

import re

import dns.name

_LABEL_RE = re.compile(rb"^(?:[A-Za-z0-9_]|[A-Za-z0-9_][A-Za-z0-9_-]*[A-Za-z0-9_])$")


def parse(text: str) -> dns.name.Name:
    """``text`` as an absolute name; ValueError with one line ("invalid DNS name ...") else."""
    try:
        name = dns.name.from_text(text.rstrip(".") + ".")
    except Exception as e:  # dnspython raises several types
        raise ValueError(f"invalid DNS name {text!r}: {e}") from None
    if len(name.labels) < 2:
        raise ValueError(f"invalid DNS name {text!r}")
    for label in name.labels[:-1]:
        if not _LABEL_RE.match(label) or len(label) > 63:
            raise ValueError(
                f"invalid DNS name {text!r}: label {label.decode('ascii', 'replace')!r} "
                "(use letters, digits, '-' and '_'; no '-' at either end)"
            )
    return name
