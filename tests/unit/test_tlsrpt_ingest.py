"""tlsarotate.tlsrpt.ingest: report files, Maildir and mbox messages (as Google and Microsoft
send them) and stdin; every hostile input one line, the others still read, memory bounded."""

from __future__ import annotations

import gzip
import io
import json
import os
from pathlib import Path

from tests.support.tlsrpt_reports import (
    google_mail,
    mbox,
    microsoft_mail,
    report,
    rfc_example,
    zip_bomb,
)
from tlsarotate.tlsrpt import ingest
from tlsarotate.tlsrpt.ingest import Limits

T0 = 1_764_460_800.0
DOC = report(
    "example.test", T0, T0 + 86399, [("tlsa-invalid", "209.85.1.1", "mx1.example.test", 4)]
)


def one_line(problems: list[str]) -> None:
    assert all(p and "\n" not in p and "Traceback" not in p for p in problems), problems


def test_a_directory_of_json_and_gzip_reports(tmp_path: Path) -> None:
    (tmp_path / "b.json").write_text(json.dumps(rfc_example()))
    (tmp_path / "a!example.test!1!2.json.gz").write_bytes(gzip.compress(json.dumps(DOC).encode()))
    (tmp_path / "notes.txt").write_text("not a report")
    got = ingest.read_dir(tmp_path)
    assert got.problems == []
    assert [Path(s).name for s, _ in got.documents] == ["a!example.test!1!2.json.gz", "b.json"]
    assert got.documents[0][1] == DOC and got.documents[1][1] == rfc_example()


def test_hostile_files_are_one_line_each_and_the_rest_still_read(tmp_path: Path) -> None:
    (tmp_path / "bomb.json.gz").write_bytes(zip_bomb())  # 1 GiB of zeros in about 1 MB
    (tmp_path / "bomb1.json.gz").write_bytes(zip_bomb(64 << 20, members=False))
    (tmp_path / "deep.json").write_bytes(b"[" * 100_000 + b"]" * 100_000)
    (tmp_path / "latin1.json").write_bytes(
        '{"organization-name": "Soci\xe9t\xe9"}'.encode("latin-1")
    )
    (tmp_path / "notgz.json.gz").write_bytes(b"{}")
    (tmp_path / "cut.json.gz").write_bytes(gzip.compress(b"{}" * 1000)[:-12])
    (tmp_path / "nan.json").write_text('{"x": NaN}')
    (tmp_path / "ok.json").write_text(json.dumps(DOC))
    got = ingest.read_dir(tmp_path, Limits(stored=1024 * 1024 + 100_000 * 2, decompressed=1 << 20))
    one_line(got.problems)
    why = {Path(p.split(": ", 1)[0]).name: p.split(": ", 1)[1] for p in got.problems}
    assert why == {
        "bomb.json.gz": f"larger than {1 << 20} bytes when decompressed",
        "bomb1.json.gz": f"larger than {1 << 20} bytes when decompressed",
        "deep.json": "JSON nested more than 32 levels deep",
        "latin1.json": "not UTF-8 text (byte 27)",
        "notgz.json.gz": why["notgz.json.gz"],
        "cut.json.gz": "truncated gzip data",
        "nan.json": why["nan.json"],
    }, why
    assert why["notgz.json.gz"].startswith("not valid gzip data")
    assert why["nan.json"].startswith("not JSON: NaN is not a JSON number")
    assert [Path(s).name for s, _ in got.documents] == ["ok.json"]


def test_a_file_larger_than_the_limit_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "big.json").write_bytes(b" " * 5000 + b"{}")
    (tmp_path / "ok.json").write_text("{}")
    got = ingest.read_dir(tmp_path, Limits(stored=1000))
    assert got.problems == [
        f"{tmp_path / 'big.json'}: is larger than 1000 bytes, too large for a report file"
    ]
    assert len(got.documents) == 1


def test_the_number_of_reports_is_bounded(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"{i}.json").write_text("{}")
    got = ingest.read_dir(tmp_path, Limits(reports=3))
    assert len(got.documents) == 3 and got.problems == ["more than 3 reports: 2 skipped"]


def test_a_maildir_of_google_and_microsoft_reports(tmp_path: Path) -> None:
    md = tmp_path / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (md / sub).mkdir(parents=True)
    (md / "new" / "1.google").write_bytes(google_mail(DOC))
    (md / "cur" / "2.microsoft:2,S").write_bytes(microsoft_mail(rfc_example("example.test")))
    (md / "cur" / "3.spam:2,").write_bytes(b"From: x@y\nSubject: hello\n\nbuy now\n")
    (md / "cur" / "4.bomb:2,").write_bytes(google_mail(DOC)[:0] + _bomb_mail())
    got = ingest.read_maildir(md)
    one_line(got.problems)
    assert [d for _, d in got.documents] == [DOC, rfc_example("example.test")]
    assert "google.com!example.test!" in got.documents[0][0]
    assert "enterprise.protection.outlook.com!example.test!" in got.documents[1][0]
    assert len(got.problems) == 2
    assert got.problems[0].endswith(
        "3.spam:2,: no TLSRPT report attached (application/tlsrpt+gzip or +json)"
    )
    assert got.problems[1].endswith(
        f"bomb.json.gz): larger than {20 << 20} bytes when decompressed"
    )


def _bomb_mail() -> bytes:
    import base64

    body = base64.encodebytes(zip_bomb()).decode()
    return (
        "From: evil@example.net\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type="tlsrpt"; boundary="b"\n\n--b\n'
        "Content-Type: application/tlsrpt+gzip\n"
        'Content-Disposition: attachment; filename="bomb.json.gz"\n'
        "Content-Transfer-Encoding: base64\n\n" + body + "\n--b--\n"
    ).encode()


def test_an_mbox_with_a_message_too_large(tmp_path: Path) -> None:
    box = tmp_path / "tlsrpt.mbox"
    huge = b"From: a@b\nSubject: big\n\n" + b"x" * 80 + b"\n" + (b"y" * 70 + b"\n") * 2000
    box.write_bytes(mbox(google_mail(DOC), huge, microsoft_mail(DOC)))
    got = ingest.read_mbox(box, Limits(message=50_000))
    assert [d for _, d in got.documents] == [DOC, DOC]
    assert got.problems == [f"{box} message 2: message larger than 50000 bytes"]


def test_not_an_mbox_or_maildir(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("hello\n")
    assert ingest.read_mbox(tmp_path / "f").problems == [
        f"{tmp_path / 'f'}: no messages (not an mbox file?)"
    ]
    assert ingest.read_maildir(tmp_path).problems == [
        f"{tmp_path}: not a Maildir (no cur/ or new/)"
    ]
    assert ingest.read_dir(tmp_path / "nope").problems == [
        f"{tmp_path / 'nope'}: cannot list the reports directory: No such file or directory"
    ]


def test_an_mbox_that_is_a_fifo_or_a_device_is_refused_not_read_for_ever(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # no writer: opening it must not block either
    for path, kind in ((fifo, "a FIFO (named pipe)"), (Path("/dev/zero"), "a character device")):
        assert ingest.read_mbox(path).problems == [
            f"{path}: is {kind}, expected a mailbox (mbox) file"
        ]


def test_stdin_takes_json_gzip_or_a_message() -> None:
    for raw in (
        json.dumps(DOC).encode(),
        gzip.compress(json.dumps(DOC).encode()),
        google_mail(DOC),
    ):
        got = ingest.read_stream(io.BytesIO(raw))
        assert got.problems == [] and [d for _, d in got.documents] == [DOC]
    got = ingest.read_stream(io.BytesIO(b"\xff\xfe garbage"))
    assert got.problems == ["stdin: no TLSRPT report attached (application/tlsrpt+gzip or +json)"]
    got = ingest.read_stream(io.BytesIO(b"{" * 10), limits=Limits(message=5))
    assert got.problems == ["stdin: larger than 5 bytes"]
