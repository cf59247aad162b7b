"""The self-signed webhook certificate loads into an SSL context and names the hosts the apiserver dials."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl

from cryptography import x509

from gpu_steward.handlers.run import configure_kopf, webhook_server
from gpu_steward.settings import Settings
from gpu_steward.tls import self_signed


def test_self_signed_pair_is_usable_and_names_hosts(tmp_path):
    cert, key = self_signed(tmp_path, ["127.0.0.1", "localhost"], dt.datetime.now(dt.UTC))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    sans = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    assert oct(key.stat().st_mode & 0o777) == "0o600"


def test_configure_kopf_uses_our_storage_keys_and_webhook_only_when_enabled():
    import kopf

    ks = kopf.OperatorSettings()
    configure_kopf(ks, Settings())
    assert ks.persistence.finalizer.startswith("gpusteward.dev/")
    assert ks.admission.server is None and ks.admission.managed is None
    s = Settings(webhook_enabled=True, webhook_listen_addr="127.0.0.1", webhook_port=0)
    server = webhook_server(s)
    assert server is not None and server.host == "127.0.0.1" and server.cafile == server.certfile
    ks = kopf.OperatorSettings()
    configure_kopf(ks, s)
    assert ks.admission.managed == "gpusteward.dev"
