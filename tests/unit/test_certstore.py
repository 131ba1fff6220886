"""certstore: the versioned store of a cert + key pair on tmp_path files. Version numbering,
the one-rename ``current`` switch, the conversion of regular files into links that read the
same, what prune keeps, owner-keeping writes, and hostile entries where the store expects its
own directories (one line, nothing followed, nothing deleted through a link)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tlsarotate import pki
from tlsarotate.certstore import (
    CERT,
    CURRENT,
    KEY,
    STORE,
    CertStore,
    file_meta,
    mkdir_like,
    prev_path,
    store_for,
    write_like,
)
from tlsarotate.config import CertPaths, CertSlot
from tlsarotate.errors import SwapError


def _pair(ca: pki.Issued) -> tuple[bytes, bytes]:
    leaf = pki.make_leaf(ca, ["mx.example.test"])
    return pki.fullchain_pem(leaf, ca), leaf.key_pem


@pytest.fixture
def deployed(tmp_path: Path, ca: pki.Issued) -> CertStore:
    """Regular files at the deployed paths, as a user has them before the first swap."""
    d = tmp_path / "deployed"
    d.mkdir()
    chain, key = _pair(ca)
    (d / "fullchain.pem").write_bytes(chain)
    (d / "privkey.pem").write_bytes(key)
    (d / "privkey.pem").chmod(0o640)
    return CertStore(d / "fullchain.pem", d / "privkey.pem")


def _one_line(e: pytest.ExceptionInfo[SwapError], *needles: str) -> None:
    text = str(e.value)
    assert "\n" not in text and "Traceback" not in text
    for n in needles:
        assert n in text


# -- layout and numbering ----------------------------------------------------------------------


def test_the_store_lives_beside_the_key_named_after_it(deployed: CertStore) -> None:
    assert deployed.root == deployed.key.parent / STORE / "privkey.pem"
    assert deployed.current == deployed.root / CURRENT


def test_versions_are_numbered_past_every_one_there_and_past_after(deployed: CertStore) -> None:
    assert deployed.numbers() == [] and deployed.fresh() == deployed.root / "1"
    deployed.root.mkdir(parents=True)
    for name in ("1", "3", "current", ".3.abc.tmp", "x7"):
        (deployed.root / name).mkdir()
    assert deployed.numbers() == [1, 3]
    assert deployed.fresh() == deployed.root / "4"
    assert deployed.fresh(after=9) == deployed.root / "10"


def test_a_journal_names_a_version_only_inside_this_store(deployed: CertStore) -> None:
    assert deployed.version(str(deployed.root / "2")) == deployed.root / "2"
    assert deployed.version("") is None
    assert deployed.version(str(deployed.root / "current")) is None
    assert deployed.version(str(deployed.root.parent / "other" / "2")) is None
    assert deployed.version(str(deployed.root / "2" / "x")) is None


def test_store_for_a_combined_file_is_none(tmp_path: Path) -> None:
    combined = CertSlot("default", CertPaths(combined=tmp_path / "mx.pem"), None)
    assert store_for(combined) is None
    split = CertSlot("default", CertPaths(cert=tmp_path / "c", key=tmp_path / "k"), None)
    assert store_for(split) == CertStore(tmp_path / "c", tmp_path / "k")
    assert prev_path(tmp_path / "mx.pem") == tmp_path / "mx.pem.prev"


# -- conversion and the current switch ---------------------------------------------------------


def test_convert_makes_links_that_read_as_the_files_did(deployed: CertStore) -> None:
    chain, key = deployed.cert.read_bytes(), deployed.key.read_bytes()
    assert not deployed.converted()
    deployed.convert(deployed.fresh())
    assert deployed.converted()
    assert deployed.current_version() == deployed.root / "1"
    assert os.readlink(deployed.current) == "1"  # relative: the store can move with its dir
    assert os.readlink(deployed.key) == f"{STORE}/privkey.pem/{CURRENT}/{KEY}"
    assert deployed.cert.read_bytes() == chain and deployed.key.read_bytes() == key
    assert stat.S_IMODE(os.stat(deployed.root / "1" / KEY).st_mode) == 0o640


def test_one_switch_of_current_changes_both_files(deployed: CertStore, ca: pki.Issued) -> None:
    deployed.convert(deployed.fresh())
    chain, key = _pair(ca)
    v2 = deployed.fresh()
    deployed.write_version(v2, chain, key)
    assert deployed.cert.read_bytes() != chain  # written beside, not yet deployed
    deployed.switch(v2)
    assert deployed.current_version() == v2
    assert deployed.cert.read_bytes() == chain and deployed.key.read_bytes() == key
    assert deployed.pair_at(v2) is not None and deployed.pair_at(deployed.root / "9") is None


def test_a_cert_in_another_directory_links_by_absolute_path(
    deployed: CertStore, tmp_path: Path
) -> None:
    other = tmp_path / "certs"
    other.mkdir()
    cert = other / "fullchain.pem"
    cert.write_bytes(deployed.cert.read_bytes())
    store = CertStore(cert, deployed.key)
    store.convert(store.fresh())
    assert os.readlink(cert) == str(store.current / CERT)
    assert store.converted()


def test_link_repairs_the_deployed_paths_after_a_switch(deployed: CertStore) -> None:
    deployed.convert(deployed.fresh())
    deployed.cert.unlink()
    deployed.cert.write_bytes(b"a stray file")
    assert not deployed.converted()
    deployed.link()
    assert deployed.converted()


def test_prune_keeps_current_and_what_it_is_told(deployed: CertStore, ca: pki.Issued) -> None:
    deployed.convert(deployed.fresh())
    for _ in range(3):
        chain, key = _pair(ca)
        deployed.write_version(deployed.fresh(), chain, key)
    deployed.switch(deployed.root / "3")
    deployed.prune({deployed.root / "4"})
    assert deployed.numbers() == [3, 4]
    assert deployed.converted()


def test_temp_paths_cover_every_file_of_every_version(deployed: CertStore) -> None:
    deployed.convert(deployed.fresh())
    paths = deployed.temp_paths()
    assert {deployed.cert, deployed.key, deployed.current} <= set(paths)
    assert {deployed.root / "1" / CERT, deployed.root / "1" / KEY} <= set(paths)


# -- owner, group, mode ------------------------------------------------------------------------


def test_a_key_is_never_written_readable_by_others(tmp_path: Path) -> None:
    f = tmp_path / "k"
    f.write_bytes(b"old")
    f.chmod(0o644)
    write_like(f, b"new", file_meta(f), secret=True)
    assert stat.S_IMODE(f.stat().st_mode) == 0o640 and f.read_bytes() == b"new"
    write_like(tmp_path / "fresh.key", b"k", None, secret=True)
    write_like(tmp_path / "fresh.pem", b"c", None, secret=False)
    assert stat.S_IMODE((tmp_path / "fresh.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "fresh.pem").stat().st_mode) == 0o644
    assert file_meta(tmp_path / "missing") is None


def test_a_new_store_directory_takes_its_parent_s_mode(tmp_path: Path) -> None:
    parent = tmp_path / "p"
    parent.mkdir()
    parent.chmod(0o2750)
    mkdir_like(parent / "d", parent)
    assert stat.S_IMODE((parent / "d").stat().st_mode) == 0o2750


# -- hostile entries ---------------------------------------------------------------------------


def test_a_file_where_the_store_directory_goes_is_one_line(
    deployed: CertStore, ca: pki.Issued
) -> None:
    (deployed.key.parent / STORE).write_text("not a directory")
    with pytest.raises(SwapError) as e:
        deployed.write_version(deployed.fresh(), *_pair(ca))
    _one_line(e, str(deployed.key.parent / STORE), "is not a directory", "refusing")


def test_a_symlink_where_the_key_s_store_goes_is_refused_not_followed(
    deployed: CertStore, ca: pki.Issued, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (deployed.key.parent / STORE).mkdir()
    deployed.root.symlink_to(elsewhere)
    with pytest.raises(SwapError) as e:
        deployed.convert(deployed.root / "1")
    _one_line(e, str(deployed.root), "is not a directory", "refusing")
    assert list(elsewhere.iterdir()) == []  # no key was written through the link


def test_a_file_or_link_named_like_a_version_is_skipped_and_never_deleted_through(
    deployed: CertStore, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious").write_text("keep me")
    deployed.convert(deployed.fresh())  # version 1
    (deployed.root / "2").write_text("a file, not a version")
    (deployed.root / "3").symlink_to(victim)
    assert deployed.fresh() == deployed.root / "4"  # never written into either
    deployed.prune(set())
    assert (victim / "precious").read_text() == "keep me"
    assert deployed.converted() and deployed.current_version() == deployed.root / "1"


def test_current_pointing_outside_the_store_is_not_a_version(deployed: CertStore) -> None:
    deployed.convert(deployed.fresh())
    os.unlink(deployed.current)
    os.symlink("../../../etc", deployed.current)
    assert deployed.current_version() is None
    assert not deployed.converted()
    (deployed.current).unlink()
    deployed.current.write_text("a regular file")
    assert deployed.current_version() is None and not deployed.converted()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a directory another owner")
def test_a_store_directory_owned_by_someone_else_is_one_line(
    deployed: CertStore, ca: pki.Issued
) -> None:
    (deployed.key.parent / STORE).mkdir()
    os.chown(deployed.key.parent / STORE, 4242, 4242)
    with pytest.raises(SwapError) as e:
        deployed.write_version(deployed.fresh(), *_pair(ca))
    _one_line(e, "owned by uid 4242", "refusing to keep keys there")
