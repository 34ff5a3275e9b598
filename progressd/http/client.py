"""One pool per member: the HTTP client a run uses.

A run sends HTTP steps to the members it leases (``host:port``); each member gets its own
``HttpPool`` with the same limits, created on first use and closed when the member leaves the
run (``discard``) or the run ends (``wait_closed``).
"""

from __future__ import annotations

import asyncio
import ssl

from progressd.http.pool import HttpPool, PoolStatistics
from progressd.http.request import Origin
from progressd.http.scheduler import Scheduler


class HttpClient:
    """Keep-alive pools keyed by origin, all sharing one loop, scheduler and set of limits.

    Raises:
        ValueError: from ``pool`` when an address is not ``host:port``.
    """

    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        scheduler: Scheduler | None = None,
        max_connections_per_member: int = 100,
        connect_timeout: float = 10.0,
        body_limit: int = 1 << 20,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self._scheduler = scheduler
        self._max = max_connections_per_member
        self._connect_timeout = connect_timeout
        self._body_limit = body_limit
        self._ssl = ssl_context
        self._pools: dict[Origin, HttpPool] = {}

    def pool(self, address: str, *, tls: bool = False) -> HttpPool:
        """The pool for member ``host:port`` (created on first use).

        Raises:
            ValueError: when ``address`` is not ``host:port`` with a numeric port.
        """
        return self.pool_for(parse_address(address, tls=tls))

    def pool_for(self, origin: Origin) -> HttpPool:
        """The pool for ``origin`` (created on first use)."""
        pool = self._pools.get(origin)
        if pool is None:
            pool = HttpPool(
                origin,
                loop=self._loop,
                scheduler=self._scheduler,
                max_connections=self._max,
                connect_timeout=self._connect_timeout,
                body_limit=self._body_limit,
                ssl_context=self._ssl,
            )
            self._pools[origin] = pool
        return pool

    def discard(self, origin: Origin) -> None:
        """Close the member's pool (its requests complete with ``cancelled``) and forget it."""
        pool = self._pools.pop(origin, None)
        if pool is not None:
            pool.close()

    async def wait_closed(self) -> None:
        """Close every pool and wait until every socket is released."""
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.wait_closed()

    def statistics(self) -> list[PoolStatistics]:
        """One record per member pool."""
        return [pool.statistics() for pool in self._pools.values()]


def parse_address(address: str, *, tls: bool = False) -> Origin:
    """``"127.0.0.1:8080"`` or ``"[::1]:8080"`` -> ``Origin``.

    Raises:
        ValueError: when the address has no numeric port in 1..65535.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected a member address like 127.0.0.1:8080, got {address!r}")
    return Origin(host=host.strip("[]"), port=int(port), tls=tls)
