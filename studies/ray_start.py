"""Connecting to or starting the Ray instance a run uses.

Without an address a run starts a Ray instance of its own on this machine and stops it
afterwards, whatever else runs here. Ray's own default (``ray.init()``) would instead
join the cluster that ``ray start`` (or a test's ``ray.cluster_utils.Cluster``) last
recorded in ``/tmp/ray/ray_current_cluster``: a local run would land on someone else's
cluster, be refused its ``num_cpus`` there, or wait on a record left by a cluster that
was killed. So a local start is ``ray.init(address="local")``. The variable
``RAY_ADDRESS`` (``ray job submit`` sets it) counts as an address given, as in Ray.
``"auto"`` keeps Ray's documented meaning: ``RAY_ADDRESS``, else the cluster ``ray start``
recorded on this machine; Ray's undocumented last resort, any Ray process found running
here (another user's or another test's private instance), is not taken.

A given address is checked before Ray is asked, because Ray retries an address where
nothing answers for about a quarter of an hour (20 tries of ~45 s). archtune opens a TCP
connection and says hello in HTTP/2, which Ray's GCS and its Ray Client server both
speak, each step within :data:`CONNECT_TIMEOUT_S`, and refuses with one line otherwise.
Past that check, Ray gives up on a server that answers but will not take the driver (a
wrong token, another Ray version) after 20 quick tries (``RAY_NUM_REDIS_GET_RETRIES``).

A local instance is given the machine's cores as its CPUs (as Ray counts them, container
limits included), and a trial that asks for more is refused: telling Ray the machine
has 64 CPUs on 2 cores would run 64 training threads there, silently.

Example:
    >>> check_local_cpus({"cpu": 1}, cores=2)
    >>> check_local_cpus({"cpu": 64}, cores=2)
    Traceback (most recent call last):
    ...
    ValueError: resources_per_trial asks for 64 CPUs per trial, but this machine has 2 cores; ...
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from typing import Any

CONNECT_TIMEOUT_S = 5.0  # for each of: the TCP connection, the HTTP/2 answer
RAY_CLIENT_PORT = 10001  # Ray Client's port when a ray:// address names none
LOCAL = "local"

# HTTP/2's client preface and an empty SETTINGS frame: a gRPC server answers with its
# own SETTINGS frame (9-byte header, type 0x4) at once.
_H2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


class RayUnreachable(ConnectionError):
    """No Ray cluster answers, or none takes the driver, at the address a run was given."""


def start_ray(address: str | None, resources: Mapping[str, Any]) -> bool:
    """Connect to the Ray cluster at ``address``, or start a local instance for the run.

    A Ray this process already has is used as it is.

    Args:
        address: None (or ``"local"``) for a Ray instance of the run's own on this
            machine, unless ``RAY_ADDRESS`` is set; ``"auto"``, ``"HOST:PORT"`` (a
            GCS) or ``"ray://HOST:PORT"`` to join a cluster.
        resources: The run's ``resources_per_trial`` (checked against the machine's
            cores for a local instance).

    Returns:
        True if this call started or connected Ray (the caller shuts it down).

    Raises:
        RayUnreachable: when no Ray cluster answers at the address (one line: which
            address, why, how to fix it).
        ValueError: when a trial asks for more CPUs than a local instance has.
    """
    import ray

    if ray.is_initialized():
        return False
    if address in (None, "auto"):  # Ray's rule: the variable overrides these two
        address = os.environ.get("RAY_ADDRESS", "").strip() or address
    kwargs: dict[str, Any] = dict(
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
        configure_logging=True,
    )
    if address in (None, LOCAL):
        cores = machine_cores()
        check_local_cpus(resources, cores)
        ray.init(address=LOCAL, num_cpus=cores, **kwargs)
        return True
    target = check_reachable(address)
    try:
        ray.init(address=address, **kwargs)  # "auto": Ray finds the token for it too
    except ConnectionError as e:
        raise RayUnreachable(_refused(address, target, e)) from e
    return True


def machine_cores() -> int:
    """The CPUs a local Ray instance has: Ray's count (container limits included).

    Example:
        >>> machine_cores() >= 1
        True
    """
    try:
        from ray._private.utils import get_num_cpus

        return max(1, int(get_num_cpus(override_docker_cpu_warning=True)))
    except (ImportError, TypeError):  # a Ray without it: the machine's count
        return os.cpu_count() or 1


def check_local_cpus(resources: Mapping[str, Any], cores: int) -> None:
    """Refuse a trial that asks a local instance for more CPUs than the machine has.

    Raises:
        ValueError: naming the request and the machine's cores.
    """
    cpu = float(resources.get("cpu", 0) or 0)
    if cpu > cores:
        raise ValueError(
            f"resources_per_trial asks for {cpu:g} CPUs per trial, but this machine has "
            f"{cores} cores; a local run gives Ray no more CPUs than there are. Lower "
            f"resources_per_trial['cpu'] to at most {cores}, or run on a cluster that "
            "has them (--address)."
        )


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> str:
    """Where ``address`` leads (``HOST:PORT``), once something there speaks gRPC.

    ``"auto"`` is the cluster that ``ray start`` recorded on this machine.

    Raises:
        RayUnreachable: when nothing, or nothing Ray-like, answers there in time.
        ValueError: when ``address`` is not of a Ray address's form.
    """
    if address == "auto":
        from ray._private.utils import read_ray_address

        target = read_ray_address()
        if not target:
            raise RayUnreachable(
                "address 'auto' finds no Ray cluster on this machine. Start one with "
                "`ray start --head`, give the address of a running one, or leave "
                "--address out to run locally."
            )
    else:
        target = address.split("://", 1)[1] if "://" in address else address
    host, port = _host_port(target, RAY_CLIENT_PORT if address.startswith("ray://") else None)
    why = probe(host, port, timeout, grpc=not _tls())
    if why is not None:
        raise RayUnreachable(_unreachable(address, target, why))
    return target


def probe(
    host: str, port: int, timeout: float = CONNECT_TIMEOUT_S, grpc: bool = True
) -> str | None:
    """Why no gRPC server (Ray's GCS, Ray Client) answers at ``host:port``, or None.

    Example:
        >>> s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
        >>> s.close()  # a port where nothing listens
        >>> probe("127.0.0.1", port)
        'connection refused'
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            if not grpc:
                return None
            conn.sendall(_H2_HELLO)
            head = b""
            while len(head) < 9:
                chunk = conn.recv(9 - len(head))
                if not chunk:
                    break
                head += chunk
    except socket.gaierror:
        return f"the host name {host!r} does not resolve"
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except ConnectionRefusedError:
        return "connection refused"
    except OSError as e:
        return (e.strerror or str(e)).lower()
    if len(head) < 9 or head[3] != 4:
        return "something answers there, but it is not a Ray cluster (no gRPC)"
    return None


def _host_port(target: str, default_port: int | None) -> tuple[str, int]:
    """``HOST:PORT`` (``[V6]:PORT``, or ``HOST`` with a default port) split in two."""
    host, sep, port = target.rstrip("/").rpartition(":")
    if not sep or "]" in port:  # no port: "host", "[::1]"
        host, port = target.rstrip("/"), ""
    if not port and default_port is not None:
        port = str(default_port)
    if not host or not port.isdigit():
        raise ValueError(
            f"Ray address {target!r} has no HOST:PORT; give the address `ray start --head` "
            "prints, such as 10.0.0.1:6379, or ray://HOST:10001."
        )
    return host.strip("[]"), int(port)


def _tls() -> bool:
    """Whether Ray speaks TLS (``RAY_USE_TLS``): then only the TCP connection is checked."""
    return os.environ.get("RAY_USE_TLS", "").strip().lower() in ("1", "true", "yes")


def _given(address: str, target: str) -> str:
    """The address as the user gave it, with where ``auto`` or ``RAY_ADDRESS`` led."""
    given = f"address {address!r}"
    if address == "auto":
        given += f" (the cluster `ray start` recorded on this machine, at {target})"
    if os.environ.get("RAY_ADDRESS", "").strip() == address:
        given += ", from RAY_ADDRESS"
    return given


def _refused(address: str, target: str, error: BaseException) -> str:
    """The line for a cluster that answers but would not take the driver."""
    text = str(error.__cause__ or error)
    given = _given(address, target)
    if "InvalidAuthToken" in text or "AuthenticationError" in text:
        return (
            f"The Ray cluster at {given} asks for its token: set RAY_AUTH_MODE=token and "
            "give the cluster's token (~/.ray/auth_token, RAY_AUTH_TOKEN or "
            "RAY_AUTH_TOKEN_PATH), or leave --address out to run locally."
        )
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (
        f"Cannot join the Ray cluster at {given}: {lines[-1] if lines else error!r}. Check "
        "the address, or leave --address out (and RAY_ADDRESS unset) to run locally."
    )


def _unreachable(address: str, target: str, why: str) -> str:
    return (
        f"No Ray cluster answers at {_given(address, target)}: {why}. Start one there "
        "(`ray start --head`), check the address, or leave --address out (and RAY_ADDRESS "
        "unset) to run locally."
    )
