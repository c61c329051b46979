"""A self-signed certificate for the gateway when the site provides none."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path


def self_signed(hostnames: Sequence[str], days: int = 825) -> tuple[bytes, bytes]:
    """(certificate PEM, private key PEM) for ``hostnames`` (DNS names or IP addresses)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not hostnames:
        raise ValueError("at least one hostname is required")
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for name in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            names.append(x509.DNSName(name))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "deepseek-gateway self-signed")])
    start = datetime.now(timezone.utc) - timedelta(minutes=5)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def write_self_signed(cert_path: str, key_path: str, hostnames: Sequence[str], group: str | None = None) -> bool:
    """Write a certificate and key unless the certificate exists; True when written.

    The key is created 0640 (owner root, ``group`` may read it), the certificate 0644.
    """
    if Path(cert_path).exists():
        return False
    certificate, key = self_signed(hostnames)
    gid = -1
    if group:
        import grp

        gid = grp.getgrnam(group).gr_gid
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(descriptor, "wb") as handle:
        os.fchmod(handle.fileno(), 0o640)
        if gid >= 0:
            os.fchown(handle.fileno(), -1, gid)
        handle.write(key)
    Path(cert_path).write_bytes(certificate)
    os.chmod(cert_path, 0o644)
    if gid >= 0:
        os.chown(cert_path, -1, gid)
    return True
