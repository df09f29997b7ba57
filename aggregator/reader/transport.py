"""The sockets under requests: a whole-request deadline and the internal-address guard.

requests only offers per-read timeouts, and it cannot say which address a
redirect led to. So fetch.py mounts an adapter whose connections report to
the fetch in progress on their thread (a ``Watch``): each socket is
registered the moment it is connected, so the deadline can shut it down even
while headers are still trickling in, and each connection's peer address is
checked before a request is sent on it, including reused keep-alive ones.

The guard's rule: a fetch whose configured URL is on a public address may
not be led (by a redirect, or DNS changing its mind) to a loopback, private,
link-local, multicast or otherwise non-global address such as the cloud
metadata service 169.254.169.254. A configured URL that is itself on such an
address is the operator's choice and is allowed to stay there.
"""

from __future__ import annotations

import heapq
import ipaddress
import itertools
import os
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

#: Networks to treat as public although they are not globally routable: "10.1.0.0/16 127.0.0.2/32".
PUBLIC_NETWORKS_ENV = "AGGREGATOR_PUBLIC_NETWORKS"

#: IPv6 addresses that carry an IPv4 address a NAT64 gateway will reach (RFC 6052).
NAT64 = ipaddress.ip_network("64:ff9b::/96")

_local = threading.local()


class AddressRefused(Exception):
    """A connection would reach an internal address the fetch may not reach."""


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses count as internal; ``public`` lists networks the operator declares public."""

    public: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def from_environment(cls) -> AddressPolicy:
        networks = []
        for text in os.environ.get(PUBLIC_NETWORKS_ENV, "").replace(",", " ").split():
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                continue
        return cls(tuple(networks))

    def is_internal(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return True  # not an address we understand: do not trust it
        embedded = getattr(ip, "ipv4_mapped", None) or getattr(ip, "sixtofour", None)
        if embedded is None and ip in NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            ip = embedded
        if any(ip in network for network in self.public):
            return False
        return not ip.is_global or ip.is_multicast


class Watchdog:
    """One thread that fires every fetch's deadline: a timer thread per fetch cost more than a 304 does."""

    def __init__(self):
        self._heap: list[list] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def schedule(self, seconds: float, callback) -> list:
        entry = [time.monotonic() + seconds, next(self._order), callback]
        with self._wake:
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="fetch-deadlines", daemon=True)
                self._thread.start()
            self._wake.notify()
        return entry

    @staticmethod
    def cancel(entry: list) -> None:
        entry[2] = None  # dropped when it reaches the top of the heap

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._heap and self._heap[0][2] is None:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._wake.wait()
                    continue
                delay = self._heap[0][0] - time.monotonic()
                if delay > 0:
                    self._wake.wait(delay)
                    continue
                callback = heapq.heappop(self._heap)[2]
            if callback is not None:
                callback()


WATCHDOG = Watchdog()


class Watch:
    """One fetch's view of its sockets: the deadline that shuts them, the guard that vets them."""

    def __init__(self, seconds: float, policy: AddressPolicy, check_addresses: bool = True):
        self.policy = policy
        self.check_addresses = check_addresses  # off behind a proxy: the peer is then the proxy
        self.hop = 0
        self.allow_internal = False
        self.expired = False
        self.refused: str | None = None
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._left = max(seconds, 0.001)  # of the deadline, while its clock stands still
        self._ends = 0.0  # while it runs

    def __enter__(self) -> Watch:
        self._previous = getattr(_local, "watch", None)
        _local.watch = self
        return self

    def __exit__(self, *exc) -> None:
        _local.watch = self._previous

    @contextmanager
    def running(self) -> Iterator[None]:
        """The deadline's clock runs only meanwhile: while the fetch talks to a host, not while it waits its turn."""
        self._ends = time.monotonic() + self._left
        deadline = WATCHDOG.schedule(self._left, self._expire)
        try:
            yield
        finally:
            WATCHDOG.cancel(deadline)
            self._left = self.remaining()

    def remaining(self) -> float:
        """Seconds left before the deadline (while its clock runs)."""
        return self._ends - time.monotonic()

    def adopt(self, sock: socket.socket | None) -> None:
        """Register a socket so the deadline can shut it; shut it at once if already too late.

        Sockets, not connections: http.client drops a connection's socket when
        the response says Connection: close, while the response still reads it.
        """
        if sock is None:
            return
        with self._lock:
            if not any(s is sock for s in self._sockets):
                self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shut(sock)

    def before_connect(self, host: str, port: int) -> None:
        """Refuse a redirect target before connecting when every address it resolves to is off limits."""
        if not self.check_addresses or self.hop == 0 or self.allow_internal:
            return
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            return  # urllib3 reports the resolution failure itself
        internal = [info[4][0] for info in infos if self.policy.is_internal(info[4][0])]
        if internal and len(internal) == len(infos):
            self._refuse(host, internal[0])

    def vet_peer(self, connection: HTTPConnection, sock: socket.socket | None) -> None:
        """Check the address a request is about to go to (new or reused connection)."""
        if not self.check_addresses or sock is None:
            return
        vetted = getattr(connection, "_vetted", None)  # a kept-alive socket's peer does not change
        if vetted is not None and vetted[0] is sock and vetted[1] == self.policy:
            internal, peer = vetted[2], vetted[3]
        else:
            try:
                peer = sock.getpeername()[0]
            except OSError:
                return  # not connected: the request fails on its own
            internal = self.policy.is_internal(peer)
            connection._vetted = (sock, self.policy, internal, peer)
        if self.hop == 0:
            self.allow_internal = self.allow_internal or internal
        elif internal and not self.allow_internal:
            _shut(sock)
            self._refuse(connection.host, peer)

    def _refuse(self, host: str, address: str) -> None:
        self.refused = (f"refused to follow a redirect to {host} ({address}), an internal address, from a public "
                        f"source; list the network in {PUBLIC_NETWORKS_ENV} if it is really public")
        raise AddressRefused(self.refused)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)


def current_watch() -> Watch | None:
    return getattr(_local, "watch", None)


def _shut(sock: socket.socket) -> None:
    """End the connection under whoever is blocked reading it (they see EOF)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class _Watched:
    """Mixed into urllib3's connections: report sockets and peers to the current Watch."""

    def _new_conn(self):
        watch = current_watch()
        if watch is None:
            return super()._new_conn()
        watch.before_connect(self._dns_host, self.port)
        sock = super()._new_conn()
        watch.adopt(sock)  # reachable by the deadline during the TLS handshake too
        try:
            watch.vet_peer(self, sock)
        except AddressRefused:
            sock.close()
            raise
        return sock

    def request(self, *args, **kwargs):
        watch = current_watch()
        if watch is not None:
            watch.adopt(self.sock)  # a reused connection's socket, or the TLS socket of a new one
            watch.vet_peer(self, self.sock)
        return super().request(*args, **kwargs)


class _HTTPConnection(_Watched, HTTPConnection):
    pass


class _HTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class WatchedAdapter(HTTPAdapter):
    """requests' adapter, with connections that report to the fetch's Watch."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
        return manager
