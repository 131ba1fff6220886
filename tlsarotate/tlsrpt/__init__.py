"""SMTP TLS Reporting (RFC 8460): what sending MTAs saw when they delivered to our MX hosts.

``tlsarotate reports`` and ``check`` read the daily JSON reports senders mail in:
:mod:`~tlsarotate.tlsrpt.ingest` (I/O: files, Maildir, mbox, stdin; every size bounded, each
bad input one line), :mod:`~tlsarotate.tlsrpt.model` (the typed report),
:mod:`~tlsarotate.tlsrpt.validate` (a decoded JSON document in, a report or one line out; the
policy domains a config serves), :mod:`~tlsarotate.tlsrpt.correlate` (each failure against the
rollover history in the state, in words), :mod:`~tlsarotate.tlsrpt.render` (text and JSON) and
:mod:`~tlsarotate.tlsrpt.command` (the command itself).

A service's own TLSRPT record (``tlsrpt_record``: the ``_smtp._tls`` TXT record senders read):
:mod:`~tlsarotate.tlsrpt.record` (pure: the rua URIs, the text, what the TXT RRset becomes) and
:mod:`~tlsarotate.tlsrpt.publish` (``plan``/``apply`` through the service's provider).
"""
