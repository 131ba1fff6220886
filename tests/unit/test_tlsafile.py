"""tlsafile.read_tlsa_file: the records of ``probe --tlsa-from FILE``; a bad file is one line
that names the file and, for a bad line, the line."""

from __future__ import annotations

from pathlib import Path

import dns.name
import pytest
from dns.rdtypes.ANY.TLSA import TLSA

from tlsarotate import records
from tlsarotate.errors import RecordError
from tlsarotate.tlsafile import read_tlsa_file

OWNER = dns.name.from_text("_25._tcp.mx.example.test.")
A = "3 1 1 " + "ab" * 32
B = "2 0 2 " + "cd" * 64
C = "3 0 0 0102030405"


def _file(tmp_path: Path, *lines: str) -> Path:
    p = tmp_path / "tlsa.txt"
    p.write_text("\n".join(lines) + "\n")
    return p


def _texts(rds: list[TLSA]) -> list[str]:
    return [records.to_text(r) for r in rds]


@pytest.mark.parametrize(
    ("lines", "want"),
    [
        ((A,), [A]),
        ((A, B, C), [A, B, C]),
        (("; a comment", "", A, "# another", "   ", B + " ; trailing comment"), [A, B]),
        ((A.upper(),), [A]),  # hex in any case
        (("3 1 1 " + " ".join(["abab"] * 16),), [A]),  # hex chunked
        ((f"_25._tcp.mx.example.test. 300 IN TLSA {A}",), [A]),
        ((f"_25._tcp.mx.example.test. TLSA {A}", f"_25._tcp.MX.example.test. in tlsa {B}"), [A, B]),
        ((f"_25._tcp.other.test. 300 IN TLSA {A}", f"_25._tcp.mx.example.test. TLSA {B}"), [B]),
        ((f"relative 300 IN TLSA {A}",), [A]),  # a relative owner is not compared
        ((f"TLSA {A}",), [A]),
    ],
)
def test_good_files(tmp_path: Path, lines: tuple[str, ...], want: list[str]) -> None:
    assert _texts(read_tlsa_file(_file(tmp_path, *lines), OWNER)) == want


def test_no_owner_takes_every_zone_file_line(tmp_path: Path) -> None:
    p = _file(tmp_path, f"_25._tcp.a.test. TLSA {A}", f"_443._tcp.b.test. 60 IN TLSA {B}")
    assert _texts(read_tlsa_file(p, None)) == [A, B]
    with pytest.raises(RecordError) as e:
        read_tlsa_file(p, OWNER)
    assert str(e.value) == f"{p}: no TLSA records found for {OWNER} (2 line(s) for other owners)"


def _one_line(e: pytest.ExceptionInfo[RecordError]) -> str:
    msg = str(e.value)
    assert "\n" not in msg and "Traceback" not in msg, msg
    return msg


@pytest.mark.parametrize(
    ("lines", "line_no", "needle"),
    [
        (("3 1 1 abcd",), 1, "invalid TLSA record '3 1 1 abcd'"),
        ((A, "3 1 1 zz" + "ab" * 31), 2, "invalid TLSA record"),
        ((A, "", "hello world"), 3, "invalid TLSA record 'hello world'"),
        (("; x", "3 1"), 2, "invalid TLSA record '3 1'"),
        (("_25._tcp.mx.example.test. IN TLSA",), 1, "invalid TLSA record ''"),
        ((A, f"{'x' * 64}.example.test. TLSA {A}"), 2, "invalid owner name"),
        ((f"a..b. TLSA {A}",), 1, "invalid owner name 'a..b.'"),
    ],
)
def test_a_bad_line_is_one_line_naming_file_and_line(
    tmp_path: Path, lines: tuple[str, ...], line_no: int, needle: str
) -> None:
    p = _file(tmp_path, *lines)
    with pytest.raises(RecordError) as e:
        read_tlsa_file(p, OWNER)
    msg = _one_line(e)
    assert msg.startswith(f"{p}:{line_no}: "), msg
    assert needle in msg, msg


@pytest.mark.parametrize(
    "content",
    [b"", b"; only a comment\n\n# and another\n", b"\n\n"],
)
def test_no_records_is_one_line(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "empty.txt"
    p.write_bytes(content)
    with pytest.raises(RecordError) as e:
        read_tlsa_file(p, OWNER)
    assert _one_line(e) == f"{p}: no TLSA records found"


def test_unreadable_files_are_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing.txt"
    with pytest.raises(RecordError) as e:
        read_tlsa_file(missing, OWNER)
    assert str(missing) in _one_line(e) and "not found" in str(e.value)
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe3 1 1\n")
    with pytest.raises(RecordError) as e:
        read_tlsa_file(binary, OWNER)
    assert str(binary) in _one_line(e) and "UTF-8" in str(e.value)
    with pytest.raises(RecordError) as e:
        read_tlsa_file(tmp_path, OWNER)  # a directory
    assert str(tmp_path) in _one_line(e)
