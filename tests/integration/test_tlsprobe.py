"""tlsarotate.handshake against real servers: aiosmtpd STARTTLS, scripted IMAP/POP3/implicit TLS,
an SMTP server whose replies arrive byte by byte and in odd chunks, on 127.0.0.1 and ::1."""

# ruff: noqa: F811
from __future__ import annotations

import ssl
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from tests.support.servers import free_port
from tests.support.tls_servers import (  # noqa: F401
    LOOPBACKS,
    Chain,
    ScriptedServer,
    ServerPool,
    chains,
    servers,
)
from tlsarotate.handshake import fetch_chain
from tlsarotate.served import ServedChain, resolve_starttls


def _ders(chain: Chain) -> tuple[bytes, ...]:
    return (
        chain.leaf.cert.public_bytes(Encoding.DER),
        *(c.cert.public_bytes(Encoding.DER) for c in chain.cas),
    )


@pytest.mark.parametrize("addr", LOOPBACKS)
def test_smtpd_starttls_full_chain(
    addr: str, servers: ServerPool, chains: Callable[..., Chain]
) -> None:
    ch = chains("a")
    srv = servers.smtpd(ch, addr)
    got = fetch_chain(addr, srv.port, "smtp", 10, "mx.example.test")
    assert got.error is None, got.error
    assert got.der == _ders(ch)  # leaf AND the CA: the full chain as sent
    assert len(got.der) == 2
    assert got.tls_version and got.tls_version.startswith("TLSv1.")
    assert got.address == addr and got.port == srv.port and got.starttls == "smtp"


def test_leaf_only_chain(servers: ServerPool, chains: Callable[..., Chain]) -> None:
    ch = chains("leafonly", send_ca=False)
    srv = servers.smtpd(ch)
    got = fetch_chain("127.0.0.1", srv.port, "smtp", 10, "mx.example.test")
    assert got.der == _ders(ch) and len(got.der) == 1


@pytest.mark.parametrize("addr", LOOPBACKS)
@pytest.mark.parametrize(
    "mode,starttls", [("implicit", "none"), ("imap", "imap"), ("pop3", "pop3")]
)
def test_other_protocols(
    addr: str, mode: str, starttls: str, servers: ServerPool, chains: Callable[..., Chain]
) -> None:
    ch = chains(f"p-{mode}")
    srv = servers.scripted(ch, mode, addr)
    got = fetch_chain(addr, srv.port, starttls, 10, "mx.example.test")
    assert got.error is None, got.error
    assert got.der == _ders(ch)
    assert srv.sni_seen == ["mx.example.test"]  # SNI is sent


@pytest.mark.parametrize("addr", LOOPBACKS)
def test_smtp_replies_in_odd_chunks(
    addr: str, servers: ServerPool, chains: Callable[..., Chain]
) -> None:
    """Greeting and EHLO reply arrive byte by byte / split inside lines and keywords."""
    ch = chains("odd")
    srv = servers.scripted(ch, "smtp-odd", addr)
    got = fetch_chain(addr, srv.port, "smtp", 10, "mx.example.test")
    assert got.error is None, got.error
    assert got.der == _ders(ch)
    assert srv.sni_seen == ["mx.example.test"]


def test_no_sni_for_addresses(servers: ServerPool, chains: Callable[..., Chain]) -> None:
    srv = servers.scripted(chains("nosni"), "implicit")
    assert fetch_chain("127.0.0.1", srv.port, "none", 10, "127.0.0.1").ok
    assert fetch_chain("127.0.0.1", srv.port, "none", 10).ok
    assert srv.sni_seen == [None, None]


def test_starttls_not_offered(servers: ServerPool, chains: Callable[..., Chain]) -> None:
    srv = servers.scripted(chains("nost"), "smtp-nostarttls")
    got = fetch_chain("127.0.0.1", srv.port, "smtp", 10, "mx.example.test")
    assert got.error == "STARTTLS not offered (after EHLO)"
    assert got.der == () and not got.ok


def test_data_after_starttls_reply_is_refused(
    servers: ServerPool, chains: Callable[..., Chain]
) -> None:
    srv = servers.scripted(chains("inj"), "smtp-inject")
    got = fetch_chain("127.0.0.1", srv.port, "smtp", 10, "mx.example.test")
    assert got.error is not None and "after its STARTTLS reply" in got.error
    assert srv.handshakes == 0


@pytest.mark.parametrize("addr", LOOPBACKS)
def test_connection_refused(addr: str) -> None:
    got = fetch_chain(addr, free_port((addr,)), "smtp", 5)
    assert got.error == "connection refused"


def test_timeout_is_one_line_naming_what_it_waited_for(
    servers: ServerPool, chains: Callable[..., Chain]
) -> None:
    srv = servers.scripted(chains("silent"), "silent")
    got = fetch_chain("127.0.0.1", srv.port, "smtp", 0.5, "mx.example.test")
    assert got.error == "timeout after 0.5s (waiting for the SMTP greeting)"


def test_tls_to_a_plaintext_server_fails_cleanly(
    servers: ServerPool, chains: Callable[..., Chain]
) -> None:
    """Implicit TLS against a server that speaks IMAP in clear text: a handshake error."""
    srv = servers.scripted(chains("plain"), "imap")
    got = fetch_chain("127.0.0.1", srv.port, "none", 5, "mx.example.test")
    assert got.error is not None
    assert got.error.startswith(("TLS handshake failed", "connection closed"))
    assert "\n" not in got.error


def test_wrong_protocol_is_named(servers: ServerPool, chains: Callable[..., Chain]) -> None:
    srv = servers.scripted(chains("pop"), "pop3")
    got = fetch_chain("127.0.0.1", srv.port, "smtp", 5)
    assert got.error is not None and got.error.startswith("not an SMTP reply")


def test_auto_picks_by_port() -> None:
    assert resolve_starttls("auto", 25) == "smtp"
    assert resolve_starttls("auto", 587) == "smtp"
    assert resolve_starttls("auto", 143) == "imap"
    assert resolve_starttls("auto", 110) == "pop3"
    for port in (465, 993, 995, 443, 8443):
        assert resolve_starttls("auto", port) == "none"
    assert resolve_starttls("imap", 25) == "imap"


def test_served_chain_is_frozen() -> None:
    s = ServedChain("127.0.0.1", 25, "smtp")
    with pytest.raises(AttributeError):
        s.error = "x"  # type: ignore[misc]


def test_a_certificate_cryptography_cannot_parse_is_one_line(
    servers: ServerPool, chains: Callable[..., Chain], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The served chain is parsed once where it arrives: bytes OpenSSL passed but cryptography
    rejects are the endpoint's error in one line, never a traceback in describe/diagnose."""
    from tlsarotate import handshake

    srv = servers.smtpd(chains("a"))
    real = handshake._handshake

    def garbled(*a: object, **k: object) -> tuple[list[bytes], str, str | None]:
        der, version, cipher = real(*a, **k)  # type: ignore[arg-type]
        return [der[0], b"\x30\x03\x02\x01\x01"], version, cipher

    monkeypatch.setattr(handshake, "_handshake", garbled)
    got = fetch_chain("127.0.0.1", srv.port, "smtp", 10, "mx.example.test")
    assert not got.der
    assert got.error is not None and "\n" not in got.error
    assert "certificate at depth 1 that cannot be parsed" in got.error


# ---------------------------------------------------------------------------------------------
# key types: a server with an RSA and an ECDSA certificate side by side (OpenSSL picks the one
# the client's cipher suites and signature algorithms allow)


def _dual(
    servers: ServerPool, chains: Callable[..., Chain], mode: str, tls12: bool = False
) -> tuple[ScriptedServer, Chain, Chain]:
    """A scripted server holding an ECDSA and an RSA certificate (``tls12``: at most TLS 1.2,
    where the cipher suites decide)."""
    ec = chains(f"dual-ec-{mode}")
    rsa = chains(f"dual-rsa-{mode}", kind="rsa2048")
    srv = servers.scripted(ec, mode)
    srv.ctx.load_cert_chain(str(rsa.fullchain), str(rsa.key))
    if tls12:
        srv.ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return srv, rsa, ec


@pytest.mark.parametrize("tls12", [False, True], ids=["tls13", "tls12"])
@pytest.mark.parametrize(("mode", "starttls"), [("implicit", "none"), ("smtp-odd", "smtp")])
def test_key_type_picks_that_certificate_of_a_dual_server(
    mode: str, starttls: str, tls12: bool, servers: ServerPool, chains: Callable[..., Chain]
) -> None:
    srv, rsa, ec = _dual(servers, chains, mode, tls12)
    for kt, ch in (("rsa", rsa), ("ecdsa", ec), ("rsa", rsa)):
        got = fetch_chain("127.0.0.1", srv.port, starttls, 10, "mx.example.test", key_type=kt)
        assert got.error is None, got.error
        assert got.der == _ders(ch) and got.key_type == kt
        assert got.tls_version == ("TLSv1.2" if tls12 else "TLSv1.3")
        if tls12:  # the TLS 1.2 suite is authenticated by that key type
            assert got.cipher and got.cipher.startswith(
                "ECDHE-RSA-" if kt == "rsa" else "ECDHE-ECDSA-"
            )


@pytest.mark.parametrize("tls12", [False, True], ids=["tls13", "tls12"])
def test_a_key_type_the_server_lacks_is_a_refused_handshake(
    tls12: bool, servers: ServerPool, chains: Callable[..., Chain]
) -> None:
    srv = servers.scripted(chains("only-ec"), "implicit")
    if tls12:
        srv.ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    got = fetch_chain("127.0.0.1", srv.port, "none", 10, "mx.example.test", key_type="rsa")
    assert not got.ok and not got.der
    assert got.tls_refused and not got.unreachable and got.key_type == "rsa"
    assert got.error and "(offering only RSA certificates)" in got.error and "\n" not in got.error
    ec = fetch_chain("127.0.0.1", srv.port, "none", 10, "mx.example.test", key_type="ecdsa")
    assert ec.ok and ec.key_type == "ecdsa"
    anyone = fetch_chain("127.0.0.1", srv.port, "none", 10, "mx.example.test")
    assert anyone.ok and anyone.key_type is None and not anyone.tls_refused
    # a refused connection is unreachable, never "does not serve that key type"
    srv.stop()
    gone = fetch_chain("127.0.0.1", srv.port, "none", 10, "mx.example.test", key_type="rsa")
    assert gone.unreachable and not gone.tls_refused


def test_without_sigalgs_bindings_a_key_type_caps_the_handshake_at_tls12(
    servers: ServerPool, chains: Callable[..., Chain], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cryptography without SSL_CTX_set1_sigalgs_list: TLS 1.3 cannot be restricted, so the
    handshake stays at TLS 1.2, where the cipher suites pick the certificate."""
    from cryptography.hazmat.bindings.openssl import binding

    class NoSigalgs:
        Cryptography_HAS_SIGALGS = 0

    srv, rsa, ec = _dual(servers, chains, "implicit")
    monkeypatch.setattr(binding.Binding, "lib", NoSigalgs())
    for kt, ch in (("rsa", rsa), ("ecdsa", ec)):
        got = fetch_chain("127.0.0.1", srv.port, "none", 10, "mx.example.test", key_type=kt)
        assert got.error is None, got.error
        assert got.der == _ders(ch) and got.tls_version == "TLSv1.2"


def test_a_leaf_of_another_key_type_than_offered_is_one_line(
    servers: ServerPool, chains: Callable[..., Chain], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should a server present another key type than the only one offered, that is the
    endpoint's error, not a result of the type asked for."""
    from tlsarotate import handshake

    srv = servers.scripted(chains("ec-anyway"), "implicit")
    real = handshake._handshake
    monkeypatch.setattr(handshake, "_handshake", lambda c, sni, kt=None: real(c, sni))
    got = fetch_chain("127.0.0.1", srv.port, "none", 10, "mx.example.test", key_type="rsa")
    assert not got.ok and got.tls_refused
    assert got.error == "asked for an RSA certificate, the server sent one with key EC P-256"
