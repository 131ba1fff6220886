"""tlsarotate: keep DANE TLSA records in step with TLS certificates (RFC 6698/7671/7672)."""

__version__ = "0.1.0"
