"""What listens on the network, and who may talk to it.

- BOHB (Pyro4): the nameserver, the dispatcher and the workers bind to loopback unless an
  interface is named; every message is authenticated with the run's HMAC key (a new one per
  run, in the credentials file, mode 0600); a client without the key, or with another, is
  refused by the nameserver and by a worker's daemon started the way the project starts them;
  daemons accept serpent only (no pickle); the nameserver answers no UDP broadcast.
- Dask: a local cluster's scheduler and workers bind to loopback, without a dashboard; with TLS
  settings they speak ``tls://`` and require a certificate signed by the CA.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from offline_bohb import hpb
from offline_bohb.hpb import BOHBError, credentials_path, read_credentials, start_nameserver

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def nameserver(tmp_path):
    ns = start_nameserver("sec1", tmp_path)
    try:
        yield ns
    finally:
        ns.shutdown()
        hpb.use_hmac_key(None)


@pytest.fixture()
def outsider():
    """This process as a client that does not hold the run's key (the nameserver keeps its own)."""
    hpb.use_hmac_key(None)


def _locate(ns, key):
    import Pyro4

    with Pyro4.locateNS(host=ns.host, port=ns.port, hmac_key=key) as proxy:
        return proxy.list()


# --- Pyro4 ---------------------------------------------------------------------------------------------
def test_credentials_hold_a_fresh_key_readable_by_the_owner_only(nameserver, tmp_path):
    path = credentials_path(tmp_path, "sec1")
    assert (path.stat().st_mode & 0o777) == 0o600
    data = json.loads(path.read_text())
    assert data["host"] == "127.0.0.1" and len(data["hmac_key"]) == 64 and data["hmac_key"] == nameserver.hmac_key
    address = read_credentials(tmp_path, "sec1")
    assert address == (nameserver.host, nameserver.port) and address.hmac_key == nameserver.hmac_key
    assert nameserver.hmac_key not in repr(address) + repr(nameserver)  # never logged
    other = start_nameserver("sec2", tmp_path)
    try:
        assert other.hmac_key != nameserver.hmac_key  # one key per run
    finally:
        other.shutdown()
    path.chmod(0o644)
    with pytest.raises(BOHBError, match="readable by others.*chmod 600"):
        read_credentials(tmp_path, "sec1")


def test_the_nameserver_refuses_a_client_without_the_key_or_with_another(nameserver, outsider):
    import Pyro4.errors

    for key in (None, b"not the key", b"0" * 64):
        with pytest.raises(Pyro4.errors.PyroError):  # NamingError: the handshake is refused
            _locate(nameserver, key)
    assert "Pyro.NameServer" in _locate(nameserver, nameserver.hmac_key.encode())


PROBE = """
import sys, Pyro4, Pyro4.errors
what, key = sys.argv[1], (sys.argv[2].encode() if len(sys.argv) > 2 else None)
try:
    if what.startswith("PYRO:"):
        with Pyro4.Proxy(what) as p:
            p._pyroHmacKey = key
            p.is_busy()
    else:
        host, port = what.rsplit(":", 1)
        with Pyro4.locateNS(host=host, port=int(port), hmac_key=key) as ns:
            ns.list()
except Pyro4.errors.PyroError as e:
    print("refused", type(e).__name__, e)
else:
    print("accepted")
"""


def _probe(target: str, *key: str) -> str:
    """What a client in another process (this project's code not imported) gets from ``target``."""
    return subprocess.run([sys.executable, "-c", PROBE, target, *key], capture_output=True, text=True,
                          timeout=60).stdout


def test_a_client_in_another_process_without_the_key_is_refused(nameserver):
    target = f"{nameserver.host}:{nameserver.port}"
    assert _probe(target).startswith("refused")
    assert _probe(target, "wrong").startswith("refused")
    assert _probe(target, nameserver.hmac_key).startswith("accepted")


def test_a_workers_daemon_refuses_a_client_without_the_key(nameserver, tmp_path):
    """A worker started as serve_worker starts it (hpbandster's Worker, its Pyro4 daemon made
    inside hpbandster, the key given to this process): a client in another process reaches it
    with the key, and is refused without it or with another."""
    import Pyro4

    worker = hpb._worker_class()(lambda config, budget, cid: {"status": "ok", "alc": 0.5}, run_id="sec1",
                                 nameserver=nameserver.host, nameserver_port=nameserver.port, host="127.0.0.1",
                                 id="w0")
    thread = threading.Thread(target=worker.run, kwargs={"background": False}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while True:
        with Pyro4.locateNS(host=nameserver.host, port=nameserver.port) as ns:  # this process: the run's key
            found = ns.list(prefix="hpbandster.run_sec1.worker.")
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(found) == 1
    uri = next(iter(found.values()))
    try:
        assert "@127.0.0.1:" in uri  # bound to loopback
        assert _probe(uri).startswith("refused")
        assert _probe(uri, "another key").startswith("refused")
        assert _probe(uri, nameserver.hmac_key).startswith("accepted")
    finally:
        with Pyro4.Proxy(uri) as proxy:
            proxy.shutdown()
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_pyro_accepts_serpent_only_and_the_nameserver_answers_no_broadcast(nameserver, tmp_path, monkeypatch):
    import Pyro4
    import Pyro4.naming

    assert Pyro4.config.SERIALIZERS_ACCEPTED == {"serpent"}
    # with an interface named, Pyro4 would also open its UDP broadcast socket (port 9091, every
    # interface): the project's nameserver never asks for it
    seen = {}
    start = Pyro4.naming.startNS

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return start(*args, **kwargs)

    monkeypatch.setattr(Pyro4.naming, "startNS", spy)
    other = start_nameserver("sec3", tmp_path)
    other.shutdown()
    assert seen.get("enableBroadcast") is False and seen.get("hmac")
    hpb.use_hmac_key(nameserver.hmac_key)
    assert nameserver.host == "127.0.0.1"
    # the nameserver listens on loopback only: not reachable on another address of this machine
    others = {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)} - {"127.0.0.1"}
    for address in sorted(others)[:1]:
        with pytest.raises(OSError):
            socket.create_connection((address, nameserver.port), timeout=2).close()


def test_a_local_run_uses_a_key_end_to_end(tmp_path):
    """A BOHB run on this machine (nameserver here, 1 worker process, master here) works with
    the key: the worker process reads it from the credentials file."""
    from conftest import write_squares

    from offline_bohb.local import run_local
    from offline_bohb.run import RunSpec

    squares = write_squares(tmp_path / "squares")
    spec = RunSpec(dataset=str(squares), space=str(ROOT / "tests" / "data" / "space-tiny.yaml"),
                   objective="offline_bohb.synthetic:synthetic_evaluator", objective_args={"seconds": 0.0},
                   min_budget=1 / 3, max_budget=1.0, eta=3, iterations=1, warm_start="none")
    try:
        summary = run_local(spec, tmp_path / "run", workers=1, ping_interval=1)
    finally:
        hpb.use_hmac_key(None)
    assert summary.new_trials >= 1 and summary.crashed == 0 and summary.lost == 0
    assert not list((tmp_path / "run").glob("nameserver-*.json"))  # removed with the nameserver


# --- Dask --------------------------------------------------------------------------------------------
def _increment(x: int) -> int:
    return x + 1


def test_a_local_dask_cluster_listens_on_loopback_only():
    from autodl.parallel import dask_client

    with dask_client(1) as client:
        info = client.scheduler_info()
        assert client.scheduler.address.startswith("tcp://127.0.0.1:")
        assert info["workers"] and all(w.startswith("tcp://127.0.0.1:") for w in info["workers"])
        assert client.submit(_increment, 1).result() == 2
        # every socket this process and its worker processes listen on (the scheduler, its
        # HTTP endpoints, the nannies, the workers) is on loopback
        assert _listening() and all(host == "127.0.0.1" for host, _ in _listening()), _listening()


def _listening() -> list[tuple[str, int]]:
    import psutil

    me = psutil.Process()
    out = []
    for proc in [me, *me.children(recursive=True)]:
        try:
            conns = proc.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        out += [(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN]
    return out


def _make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.pem", "node.key", "node.csr", "node.pem"))
    run = lambda *a: subprocess.run(["openssl", *map(str, a)], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2",
        "-subj", "/CN=autodl-meta test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1")
    ext = folder / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert, "-days", "2",
        "-extfile", ext)
    return ca, cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make certificates")
def test_dask_with_tls_settings_speaks_tls_and_refuses_plain_clients(tmp_path):
    from dask.distributed import Client

    from autodl.errors import AutoDLError
    from autodl.parallel import apply_tls_arguments, dask_client, set_default_security, tls_security

    ca, cert, key = _make_certificates(tmp_path)
    security = tls_security(ca, cert, key)
    with dask_client(1, security=security) as client:
        address = client.scheduler.address
        assert address.startswith("tls://127.0.0.1:")
        assert client.submit(_increment, 41).result() == 42
        with pytest.raises(Exception):  # noqa: B017 - a plain TCP client cannot talk to it
            Client(address.replace("tls://", "tcp://"), timeout=3)
    # the command line's options, all three or none
    import argparse

    with pytest.raises(AutoDLError, match="--tls-key"):
        apply_tls_arguments(argparse.Namespace(tls_ca_file=str(ca), tls_cert=str(cert), tls_key=None))
    with pytest.raises(AutoDLError, match="not found"):
        apply_tls_arguments(argparse.Namespace(tls_ca_file=str(ca), tls_cert=str(cert),
                                               tls_key=str(tmp_path / "none.key")))
    try:
        apply_tls_arguments(argparse.Namespace(tls_ca_file=str(ca), tls_cert=str(cert), tls_key=str(key)))
        with pytest.raises(AutoDLError, match="tls://"):
            with dask_client(1, scheduler="tcp://10.0.0.1:8786"):
                pass
    finally:
        set_default_security(None)


def test_the_cli_offers_tls_wherever_it_offers_a_scheduler():
    from autodl_meta.cli import build_parser

    parser = build_parser()
    for argv in (["portfolio", "cost-matrix"], ["portfolio", "build"], ["metafeatures", "extract"],
                 ["benchmark", "heldout"]):
        sub = parser
        for word in argv:
            sub = next(a for a in sub._actions if a.__class__.__name__ == "_SubParsersAction").choices[word]
        options = {o for a in sub._actions for o in a.option_strings}
        assert {"--scheduler", "--tls-ca-file", "--tls-cert", "--tls-key"} <= options, argv
