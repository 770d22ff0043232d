"""Problem 8: the local Dask cluster speaks TLS only and serves no HTTP; remote tls://."""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("distributed", reason="the dask extra is not installed")
pytest.importorskip("cryptography", reason="the dask extra is not installed")

from clisonix_cli.cli.app import app  # noqa: E402
from clisonix_cli.errors import SchedulerTlsError  # noqa: E402
from clisonix_cli.taskarray.remote import dask_client  # noqa: E402

ARGS = ["--jobs", "1", "--format", "nifti", "--connect-timeout", "20"]

_INTRUDER = """
import sys
from distributed import Client
address = sys.argv[1]
for attempt in (address, address.replace("tls://", "tcp://")):
    try:
        Client(attempt, timeout="5s").close()
    except Exception as exc:
        print("refused", attempt, type(exc).__name__)
    else:
        print("CONNECTED", attempt)
"""


def _pem_pair(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate and its key (PEM), usable as CA and as leaf."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _http_status(port: int, route: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{route}", timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _without_certificate(host: str, port: int) -> str:
    """Talk TLS to ``host:port`` with no client certificate: what the server did."""
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=10) as raw,
            ctx.wrap_socket(raw) as tls,
        ):
            tls.sendall(b"\x00" * 64)
            data = tls.recv(1)
    except (ssl.SSLError, ConnectionError):
        return "refused"
    return "hung up" if data == b"" else f"answered {data!r}"


ROUTES = ["/", "/health", "/info/main/workers.html", "/json/identity.json", "/metrics",
          "/status", "/proxy/8787/127.0.0.1/status"]  # fmt: skip


def test_local_cluster_is_tls_only_and_serves_no_http() -> None:
    with dask_client(
        scheduler=None, scheduler_file=None, jobs=1, connect_timeout=30
    ) as client:
        address = client.scheduler.address
        assert address.startswith("tls://127.0.0.1:")
        intruder = subprocess.run(
            [sys.executable, "-c", _INTRUDER, address],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert "CONNECTED" not in intruder.stdout, intruder.stdout
        assert intruder.stdout.count("refused") == 2, intruder.stdout + intruder.stderr
        # a TLS client without the run's certificate is hung up on
        host, port = address.removeprefix("tls://").rsplit(":", 1)
        assert _without_certificate(host, int(port)) in ("refused", "hung up")
        scheduler = client.cluster.scheduler
        assert not any(
            _http_status(scheduler.http_server.port, r) == 200 for r in ROUTES
        )
        ports = client.run(lambda dask_worker: dask_worker.http_server.port)
        for worker_port in ports.values():
            assert {_http_status(worker_port, r) for r in ROUTES} == {404}


@pytest.fixture(scope="module")
def tls_scheduler(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, object]]:
    """A TLS-only Dask cluster in this process, as a remote one would be."""
    import distributed

    folder = tmp_path_factory.mktemp("tls")
    cert, key = _pem_pair(folder, "cluster")
    security = distributed.security.Security(
        tls_ca_file=str(cert),
        tls_scheduler_cert=str(cert), tls_scheduler_key=str(key),
        tls_worker_cert=str(cert), tls_worker_key=str(key),
        tls_client_cert=str(cert), tls_client_key=str(key),
        require_encryption=True,
    )  # fmt: skip
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, protocol="tls://",
        host="127.0.0.1", security=security, dashboard_address=None,
    )  # fmt: skip
    try:
        yield {"address": cluster.scheduler_address, "cert": cert, "key": key,
               "folder": folder}  # fmt: skip
    finally:
        cluster.close()


def test_remote_tls_scheduler_runs_the_job(
    tls_scheduler: dict[str, object], synth_study: Path, tmp_path: Path
) -> None:
    cert, key = str(tls_scheduler["cert"]), str(tls_scheduler["key"])
    result = CliRunner().invoke(
        app,
        ["transform", str(synth_study), str(tmp_path / "out"), *ARGS, "--json",
         "--scheduler", str(tls_scheduler["address"]),
         "--tls-ca-file", cert, "--tls-cert", cert, "--tls-key", key],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["ok"] == 6
    # the same through a scheduler file (dask scheduler --scheduler-file)
    sched = tmp_path / "sched.json"
    sched.write_text(json.dumps({"address": tls_scheduler["address"]}))
    result = CliRunner().invoke(
        app,
        ["transform", str(synth_study), str(tmp_path / "out2"), *ARGS,
         "--scheduler-file", str(sched), "--tls-ca-file", cert, "--tls-cert", cert,
         "--tls-key", key],
    )  # fmt: skip
    assert result.exit_code == 0, result.output


def test_tls_mismatches_exit_3(
    tls_scheduler: dict[str, object], synth_study: Path, tmp_path: Path
) -> None:
    cert, key = str(tls_scheduler["cert"]), str(tls_scheduler["key"])
    other_cert, other_key = _pem_pair(Path(str(tls_scheduler["folder"])), "stranger")
    address = str(tls_scheduler["address"])
    cases = [
        ["--scheduler", address],  # tls:// without certificates
        ["--scheduler", address.replace("tls://", "tcp://"),
         "--tls-ca-file", cert, "--tls-cert", cert, "--tls-key", key],
        ["--scheduler", address, "--tls-ca-file", cert, "--tls-cert", cert],
        ["--scheduler", address, "--tls-ca-file", str(other_cert),
         "--tls-cert", str(other_cert), "--tls-key", str(other_key)],
    ]  # fmt: skip
    for extra in cases:
        result = CliRunner().invoke(
            app, ["transform", str(synth_study), str(tmp_path / "out"), *ARGS, *extra]
        )
        assert result.exit_code == 3, (extra, result.output)
        assert result.stderr.startswith(SchedulerTlsError.code), result.stderr
