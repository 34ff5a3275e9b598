"""The purpose-built HTTP/1.1 load client: ``asyncio.Protocol`` + ``httptools``, keep-alive
pools per member, completion by callback (no task per request), injectable timers."""

from __future__ import annotations

from progressd.http.client import HttpClient, parse_address
from progressd.http.errors import HTTP_ERROR_REASONS, HttpErrorReason, PoolClosedError
from progressd.http.pool import HttpPool, PoolStatistics
from progressd.http.request import EncodedRequest, Origin, encode_request, parse_url
from progressd.http.result import HttpResult, OnDone
from progressd.http.scheduler import Scheduler, TimerHandle

__all__ = [
    "HTTP_ERROR_REASONS",
    "EncodedRequest",
    "HttpClient",
    "HttpErrorReason",
    "HttpPool",
    "HttpResult",
    "OnDone",
    "Origin",
    "PoolClosedError",
    "PoolStatistics",
    "Scheduler",
    "TimerHandle",
    "encode_request",
    "parse_address",
    "parse_url",
]
