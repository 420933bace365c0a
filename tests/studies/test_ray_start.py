"""Connecting to or starting Ray for a run (studies.ray_start): an address where no Ray
answers fails at once with one line; a local run starts its own instance, never joins
another one on the machine; a local trial gets no more CPUs than the machine has.

No test here starts Ray in the test process: ``ray.init`` is replaced where a start
would happen, and the real starts run in processes of their own, so the session's
``ray_session`` instance is left alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from studies import ray_start
from studies.ray_start import RayUnreachable, check_local_cpus, machine_cores, probe, start_ray

ROOT = Path(__file__).resolve().parents[2]
BOUND_S = 30.0  # the bound for an unreachable address


def _free_port() -> int:
    """A port where nothing listens (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _server(reply: bytes | None) -> Iterator[int]:
    """A TCP server on 127.0.0.1 that sends ``reply`` to each connection (None: says
    nothing and keeps it open); yields its port."""
    srv = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = srv.accept()
                held.append(conn)
                if reply is not None:
                    conn.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield srv.getsockname()[1]
    finally:
        srv.close()
        for conn in held:
            conn.close()


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """As if this process had no Ray: ``ray.init`` records its arguments instead."""
    import ray

    calls: list[dict] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: calls.append(kw))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return calls


def _refused(address: str | None) -> tuple[str, float]:
    start = time.monotonic()
    with pytest.raises(RayUnreachable) as info:
        start_ray(address, {"cpu": 1})
    return str(info.value), time.monotonic() - start


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_an_address_where_nothing_listens_fails_at_once_in_one_clear_line(
    scheme: str, no_ray: list[dict]
) -> None:
    address = f"{scheme}127.0.0.1:{_free_port()}"
    message, took = _refused(address)
    assert took < BOUND_S, took
    assert f"No Ray cluster answers at address {address!r}: connection refused" in message
    assert "`ray start --head`" in message and "leave --address out" in message
    assert "\n" not in message and not no_ray, "refused before Ray is asked"


def test_a_port_that_answers_but_is_not_ray_fails_at_once(no_ray: list[dict]) -> None:
    with _server(b"HTTP/1.1 400 Bad Request\r\n\r\n") as port:
        message, took = _refused(f"127.0.0.1:{port}")
    assert took < BOUND_S, took
    assert "something answers there, but it is not a Ray cluster" in message and not no_ray


def test_a_port_that_stays_silent_is_given_up_on_within_the_timeout() -> None:
    # Each of the probe's two steps waits CONNECT_TIMEOUT_S (5 s) at most: well in the
    # bound. Shortened here to keep the test fast.
    assert 2 * ray_start.CONNECT_TIMEOUT_S < BOUND_S
    with _server(None) as port:
        start = time.monotonic()
        assert probe("127.0.0.1", port, timeout=0.5) == "no answer within 0.5 s"
    assert time.monotonic() - start < 2


def test_the_probe_accepts_a_grpc_server() -> None:
    settings = bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # what a gRPC server sends first
    with _server(settings) as port:
        assert probe("127.0.0.1", port) is None
    assert (
        probe("no-such-host.invalid", 6379)
        == "the host name 'no-such-host.invalid' does not resolve"
    )


def test_auto_fails_at_once_without_a_live_ray_start_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_ray: list[dict]
) -> None:
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))  # where Ray keeps its record
    message, _ = _refused("auto")
    assert "address 'auto' finds no Ray cluster on this machine" in message
    # A record left by a cluster killed without `ray stop`: its port is closed.
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{_free_port()}")
    message, took = _refused("auto")
    assert "the cluster `ray start` recorded on this machine" in message, message
    assert "connection refused" in message and took < BOUND_S and not no_ray


def test_ray_address_counts_as_an_address_given(
    monkeypatch: pytest.MonkeyPatch, no_ray: list[dict]
) -> None:
    address = f"127.0.0.1:{_free_port()}"
    monkeypatch.setenv("RAY_ADDRESS", address)
    message, _ = _refused(None)
    assert f"address {address!r}, from RAY_ADDRESS" in message and not no_ray


def test_a_local_start_is_an_instance_of_its_own_with_the_machines_cores(
    no_ray: list[dict],
) -> None:
    assert start_ray(None, {"cpu": 1}) is True
    (kwargs,) = no_ray
    assert kwargs["address"] == "local", "never the cluster `ray start` recorded"
    assert kwargs["num_cpus"] == machine_cores()


def test_a_local_trial_gets_no_more_cpus_than_the_machine_has(no_ray: list[dict]) -> None:
    cores = machine_cores()
    with pytest.raises(ValueError, match=rf"asks for {cores + 1} CPUs .* has {cores} cores"):
        start_ray(None, {"cpu": cores + 1})
    assert not no_ray, "refused before Ray starts"
    check_local_cpus({"cpu": 2, "workers": 2}, cores=2)  # the trial's CPUs, in all
    with pytest.raises(ValueError, match="at most 2"):
        check_local_cpus({"cpu": 2.5}, cores=2)


def test_a_ray_this_process_has_is_used_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    assert start_ray("127.0.0.1:1", {"cpu": 999}) is False


@pytest.mark.parametrize(
    ("target", "default", "expected"),
    [
        ("10.0.0.1:6379", None, ("10.0.0.1", 6379)),
        ("[::1]:6379", None, ("::1", 6379)),
        ("head.example", 10001, ("head.example", 10001)),
    ],
)
def test_host_and_port(target: str, default: int | None, expected: tuple[str, int]) -> None:
    assert ray_start._host_port(target, default) == expected


def test_an_address_without_a_port_is_refused() -> None:
    with pytest.raises(ValueError, match="has no HOST:PORT"):
        ray_start._host_port("head.example", None)


# --- a real `ray start --head` cluster beside a local run ----------------------------

# In a process of its own: a local start, then "auto"; prints where each landed.
LANDED = textwrap.dedent(
    """
    import json, ray
    from studies.ray_start import start_ray

    out = {}
    for address in (None, "auto"):
        start_ray(address, {"cpu": 1})
        out[str(address)] = [ray.get_runtime_context().gcs_address,
                             ray.cluster_resources().get("CPU")]
        ray.shutdown()
    print(json.dumps(out))
    """
)


def _group_alive(pgid: int) -> bool:
    for p in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                return True
    return False


def _stop_group(process: subprocess.Popen) -> None:
    """Stop a process started in a session of its own, and everything in its group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)  # `ray start --block` stops its cluster
    deadline = time.monotonic() + 30
    while _group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


def _wait(check: Callable[[], bool], what: str, timeout: float, process: subprocess.Popen):
    deadline = time.monotonic() + timeout
    while not check():
        assert process.poll() is None, f"{what}: the process exited"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@pytest.mark.slow
def test_a_local_run_does_not_join_a_ray_start_cluster_on_the_machine() -> None:
    # Ray's record of the cluster (ray_current_cluster) goes to a temp dir of this test's
    # own (short: Ray's socket paths live under it), not to /tmp/ray, where it would
    # send other Ray users of this machine to this cluster; its ports are free ones.
    temp = tempfile.mkdtemp(prefix="atr-", dir="/tmp")
    env = {**os.environ, "RAY_TMPDIR": temp, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    ray_cli = str(Path(sys.executable).with_name("ray"))
    ports = ["--port", str(_free_port()), "--dashboard-port", str(_free_port())]
    quiet = ["--include-dashboard=false", "--disable-usage-stats"]
    head = subprocess.Popen(
        [ray_cli, "start", "--head", "--block", "--num-cpus", "1", *ports, *quiet],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its whole process group is stopped below
    )
    driver = None
    try:
        record = Path(temp, "ray", "ray_current_cluster")
        _wait(lambda: record.exists() and record.read_text().strip() != "", "the head", 90, head)
        cluster = record.read_text().strip()
        driver = subprocess.Popen(
            [sys.executable, "-c", LANDED],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        out, err = driver.communicate(timeout=240)
        assert driver.returncode == 0, err[-3000:]
        landed = json.loads(out.strip().splitlines()[-1])
        assert landed["None"][0] != cluster, "the local run joined the `ray start` cluster"
        assert landed["None"][1] == machine_cores()
        assert landed["auto"] == [cluster, 1.0], "'auto' joins the recorded cluster"
    finally:
        if driver is not None:
            _stop_group(driver)
        _stop_group(head)
        shutil.rmtree(temp, ignore_errors=True)
