"""Certificates and keys for the local control plane (a throwaway CA per run)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path


def _write_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def _cert(subject: x509.Name, key_pub: object, issuer: x509.Name, issuer_key: ec.EllipticCurvePrivateKey,
          *, ca: bool = False, sans: list[x509.GeneralName] | None = None, client: bool = False,
          ) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key_pub)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if not ca:
        usage = x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH if client else x509.oid.ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(folder: Path, extra_ips: tuple[str, ...] = ()) -> Pki:
    folder.mkdir(parents=True, exist_ok=True)
    p = Pki(*(folder / n for n in ("ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "admin.crt",
                                    "admin.key", "sa.key", "sa.pub")))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gpu-steward-local-ca")])
    ca = _cert(ca_name, ca_key.public_key(), ca_name, ca_key, ca=True)
    _write_key(ca_key, p.ca_key)
    p.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    srv_key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in (
        "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local")]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", "10.0.0.1", *extra_ips)]
    srv = _cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]), srv_key.public_key(),
                ca_name, ca_key, sans=sans)
    _write_key(srv_key, p.serving_key)
    p.serving_cert.write_bytes(srv.public_bytes(serialization.Encoding.PEM))

    adm_key = ec.generate_private_key(ec.SECP256R1())
    adm = _cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "admin"),
                           x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters")]),
                adm_key.public_key(), ca_name, ca_key, client=True)
    _write_key(adm_key, p.admin_key)
    p.admin_cert.write_bytes(adm.public_bytes(serialization.Encoding.PEM))

    # ServiceAccount tokens are signed with RSA (RS256 is what every client verifies).
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(sa_key, p.sa_key)
    p.sa_pub.write_bytes(sa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo))
    return p


def serving_pair(pki: Pki, folder: Path, name: str) -> tuple[Path, Path]:
    """A loopback serving certificate signed by the control plane's CA, written as ``tls.crt`` /
    ``tls.key`` (the names controller-runtime's webhook server reads): the apiserver, which trusts
    that CA, can then call a webhook served on 127.0.0.1 through a URL-based webhook configuration."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), key.public_key(), ca.subject, ca_key,
                 sans=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    crt, pem = folder / "tls.crt", folder / "tls.key"
    _write_key(key, pem)
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return crt, pem
