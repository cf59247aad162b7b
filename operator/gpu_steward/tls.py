"""Certificates for the operator's admission webhooks (pure: no I/O beyond the files it is told to write).

``self_signed``: one self-signed pair (local runs, tests, ``certificates: kopf``). kopf's own generator
needs ``certbuilder``/``oscrypto``, which cannot parse the version string of current OpenSSL 3 releases;
``cryptography`` builds the same thing. ``ca_and_serving_cert`` / ``usable``: the CA and serving pair the
operator keeps in its Secret under ``certificates: operator`` (``gpu_steward.webhook_certs``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(directory: Path, hosts: Sequence[str], now: dt.datetime, days: int = 365) -> tuple[Path, Path]:
    """Write ``tls.crt`` / ``tls.key`` for ``hosts`` (DNS names or IPs) into ``directory``; the
    certificate is its own CA, so it doubles as the webhook's ``caBundle``."""
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0] if hosts else "gpu-steward")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    certfile, keyfile = directory / "tls.crt", directory / "tls.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    keyfile.chmod(0o600)
    return certfile, keyfile


def ca_and_serving_cert(dns_names: Sequence[str], now: dt.datetime, ca_days: int = 3650,
                        cert_days: int = 365) -> dict[str, bytes]:
    """A CA and a serving certificate for ``dns_names`` signed by it (PEM): ``ca.crt``, ``tls.crt``,
    ``tls.key`` — what the webhook Secret holds (the CA's key is not kept: a new pair is made to rotate)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gpu-steward-webhook-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=ca_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=cert_days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return {
        "ca.crt": ca.public_bytes(serialization.Encoding.PEM),
        "tls.crt": cert.public_bytes(serialization.Encoding.PEM),
        "tls.key": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()),
    }


def usable(files: dict[str, bytes], dns_names: Sequence[str], now: dt.datetime,
           min_left: dt.timedelta = dt.timedelta(days=30)) -> bool:
    """The Secret's pair can serve: all three files parse, the certificate names every host, was signed
    by the CA, and has more than ``min_left`` to run (else a new pair is made: rotation on restart)."""
    try:
        ca = x509.load_pem_x509_certificate(files["ca.crt"])
        cert = x509.load_pem_x509_certificate(files["tls.crt"])
        key = serialization.load_pem_private_key(files["tls.key"], password=None)
        names = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                    .get_values_for_type(x509.DNSName))
        cert.verify_directly_issued_by(ca)
    except (KeyError, ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature):
        return False
    if key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != \
            cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        return False
    return set(dns_names) <= names and min(cert.not_valid_after_utc, ca.not_valid_after_utc) - now > min_left
