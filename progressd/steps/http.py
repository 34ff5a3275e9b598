"""The ``http`` step: render a request from the user's context, send it, judge the response.

Design note. ``start(call)`` renders the URL, headers and body from ``call.context``, encodes
the request and hands it to the member's keep-alive pool with a completion callback; it never
awaits and creates no task. The pool calls back once; the callback records the latency into
the scenario's and the step's bounded histograms, evaluates ``expect`` (status list, latency),
extracts variables (``extract.py``, shared with exec), bumps a few counters (see
``metrics.py`` for the error classes) and completes the call, which makes the user's pollable
ready. Per request that is a handful of attribute updates: no metric library call, no list
of samples.

Everything that does not depend on the user is prepared once per step (``_PreparedHttp``):
compiled templates, the parsed origin of a URL without placeholders, the fully encoded
request when nothing at all is templated, the expected statuses as a frozenset, the parsed
extraction paths.

Default expectation: without ``expect.status`` a status of 400 or above is an error (class
``status``), as in k6's ``http_req_failed``; with it, the status must be one of the list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import msgspec

from progressd.dsl import (
    CompiledTemplate,
    Context,
    HttpSpec,
    RenderError,
    StepPlan,
    compile_template,
    render_json,
)
from progressd.dsl.templates import has_placeholders
from progressd.errors import StateError
from progressd.http import EncodedRequest, HttpClient, HttpPool, HttpResult, Origin, PoolClosedError
from progressd.http.request import encode_request, parse_url
from progressd.runner import SUCCEEDED, StepCall, StepOutcome
from progressd.steps.extract import Extractor, extract, extract_source
from progressd.steps.leases import LeaseWaits, fail_no_lease
from progressd.steps.metrics import ScenarioMetrics, StepMetrics

__all__ = ["DEFAULT_TIMEOUT_S", "HttpStepExecutor", "extract_path"]

DEFAULT_TIMEOUT_S = 30.0
"""A request's timeout when its step sets none."""

_URL = re.compile(r"(https?://[^/?#]+)([^#]*)")
_ORIGINS_MAX = 4096
_SENT_MAX = 1024
_JSON_TYPE = ("Content-Type", "application/json")
_SCALARS = ("status", "body")


def extract_path(source: str) -> tuple[str, tuple[str | int, ...]]:
    """``"json.items[0].id"`` -> ``("json", ("items", 0, "id"))``; ``"status"`` -> ``("status",
    ())``.

    Raises:
        StateError: for ``header.Name`` (the HTTP client does not keep response headers) or a
            source the DSL would not have accepted.
    """
    if source.startswith("header."):
        raise StateError(
            f'extract "{source}": response headers are not kept by the load client; '
            'extract from "json.*", "status" or "body" instead'
        )
    return extract_source(source, _SCALARS)


@dataclass(slots=True, eq=False)
class _PreparedHttp:
    """One step's user-independent parts, resolved once."""

    name: str
    method: str
    url: CompiledTemplate
    origin: tuple[Origin, str, str] | None
    """(origin, Host header, target) of a URL without placeholders."""
    headers: tuple[tuple[str, CompiledTemplate], ...]
    json: Any
    json_templated: bool
    json_type: bool
    """Whether to add ``Content-Type: application/json`` (the step sets none itself)."""
    body: CompiledTemplate | None
    encoded: EncodedRequest | None
    timeout: float
    statuses: frozenset[int]
    max_latency: float | None
    extract: tuple[Extractor, ...]
    metrics: StepMetrics
    reads_lease: bool = False
    url_only: bool = False
    """Only the URL is templated: requests are cached per rendered URL (``sent``)."""
    simple: bool = False
    """``expect`` is a status list only and nothing is extracted: the completion's fast path."""
    pool: HttpPool | None = None
    """The pool of a fully static request (``encoded``), resolved on first use."""
    sent: dict[str, tuple[HttpPool, EncodedRequest]] = field(default_factory=dict)
    """Rendered URL -> its pool and encoded request (``url_only`` steps; at most
    ``_SENT_MAX``, cleared when full): a lease member's URL is encoded once, not per request."""


class HttpStepExecutor:
    """Runs ``http`` steps through ``client``'s member pools. See the module note.

    ``register(step, metrics)`` ties a step to its scenario's metrics and prepares it (the run
    does this for every http step before starting); a step never registered is prepared on
    first use with metrics of its own (``unregistered``). With ``lease_waits``, a step reading
    ``lease.*`` for a user without a lease waits for one (``leases.py``) instead of failing.
    """

    __slots__ = (
        "_client",
        "_default_timeout",
        "_lease_waits",
        "_origins",
        "_prepared",
        "unregistered",
    )

    def __init__(
        self,
        client: HttpClient,
        *,
        default_timeout_s: float = DEFAULT_TIMEOUT_S,
        lease_waits: LeaseWaits | None = None,
    ) -> None:
        self._client = client
        self._default_timeout = default_timeout_s
        self._lease_waits = lease_waits
        self._prepared: dict[int, tuple[StepPlan, _PreparedHttp]] = {}
        self._origins: dict[str, tuple[Origin, str]] = {}
        """``scheme://host:port`` -> its origin and Host header (a rendered URL's origin
        repeats: a lease member or a constant, so the full URL parser runs once per origin)."""
        self.unregistered = ScenarioMetrics(name="unregistered")

    def register(self, step: StepPlan, metrics: ScenarioMetrics) -> None:
        """Prepare ``step`` and count it into ``metrics``.

        Raises:
            StateError: when ``step`` is not an http step, or extracts what the client cannot
                give (response headers).
        """
        spec = step.spec
        if not isinstance(spec, HttpSpec):
            raise StateError(f"step {step.name!r} is a {step.kind} step, not an http step")
        metrics.http_steps.add(step.name)
        self._prepared[id(step)] = (step, self._prepare(step.name, spec, metrics.step(step.name)))

    def start(self, call: StepCall) -> None:
        """Send the request of ``call.step`` for ``call.row``; completes ``call`` later."""
        entry = self._prepared.get(id(call.step))
        if entry is None:
            self.register(call.step, self.unregistered)
            entry = self._prepared[id(call.step)]
        prep = entry[1]
        waits = self._lease_waits
        if prep.reads_lease and waits is not None and "lease" not in call.context:
            waits.park(
                call,
                prep.timeout,
                self.start,
                partial(fail_no_lease, prep.name, prep.metrics, prep.timeout),
            )
            return
        try:
            if prep.encoded is not None:  # nothing templated: the same bytes for every user
                pool = prep.pool
                if pool is None or pool.closed:
                    pool = prep.pool = self._client.pool_for(prep.origin[0])  # type: ignore[index]
                request = prep.encoded
            elif prep.url_only:
                url = prep.url.render(call.context)
                sent = prep.sent.get(url)
                if sent is None or sent[0].closed:
                    sent = self._encode_url(prep, url)
                pool, request = sent
            else:
                origin, request = self._encode(prep, call.context)
                pool = self._client.pool_for(origin)
            pool.send(request, prep.timeout, partial(_on_done, prep, call))
        except (RenderError, ValueError, PoolClosedError) as exc:
            prep.metrics.end("request")
            call.fail(f"{prep.name}: the request could not be sent: {exc}")

    # -- preparing ------------------------------------------------------------------------

    def _prepare(self, name: str, spec: HttpSpec, metrics: StepMetrics) -> _PreparedHttp:
        url = spec.url.compiled()
        origin = None
        if not url.fields:
            try:
                origin = self._split(url.render({}))
            except ValueError as exc:
                raise StateError(f"step {name!r}: {exc}") from None
        headers = tuple((k, t.compiled()) for k, t in spec.headers)
        json_templated = _json_has_templates(spec.json)
        prep = _PreparedHttp(
            name=name,
            method=spec.method,
            url=url,
            origin=origin,
            headers=headers,
            json=spec.json,
            json_templated=json_templated,
            json_type=spec.json is not None
            and all(k.lower() != "content-type" for k, _ in spec.headers),
            body=None if spec.body is None else spec.body.compiled(),
            encoded=None,
            timeout=self._default_timeout if spec.timeout_s is None else spec.timeout_s,
            statuses=frozenset(spec.expect_status),
            max_latency=spec.expect_latency_s,
            extract=tuple((var, *extract_path(source)) for var, source in spec.extract),
            metrics=metrics,
        )
        prep.reads_lease = any(
            f.startswith("lease") for t in (url, *(t for _, t in headers)) for f in t.fields
        ) or any(f.startswith("lease") for f in _json_fields(spec))
        static = (
            origin is not None
            and not json_templated
            and all(not t.fields for _, t in headers)
            and (prep.body is None or not prep.body.fields)
        )
        if static:
            prep.encoded = self._encode(prep, {})[1]
        prep.url_only = (
            bool(url.fields)
            and not json_templated
            and all(not t.fields for _, t in headers)
            and (prep.body is None or not prep.body.fields)
        )
        prep.simple = bool(prep.statuses) and prep.max_latency is None and not prep.extract
        return prep

    def _encode_url(self, prep: _PreparedHttp, url: str) -> tuple[HttpPool, EncodedRequest]:
        """Encode a ``url_only`` step's request for the rendered ``url`` and remember it.

        Raises:
            ValueError: for a bad URL or target.
        """
        origin, request = self._encode_rendered(prep, url, {})
        sent = prep.sent
        if len(sent) >= _SENT_MAX:
            sent.clear()
        entry = sent[url] = (self._client.pool_for(origin), request)
        return entry

    def _split(self, url: str) -> tuple[Origin, str, str]:
        """``parse_url`` with the origin parsed once per ``scheme://host:port``: the origin,
        its Host header and the request target.

        Raises:
            ValueError: for a URL that is not absolute http(s) with a host.
        """
        match = _URL.match(url)
        if match is None:
            origin, target = parse_url(url)  # raises: not an absolute http(s) URL
            return origin, origin.host_header, target
        base, target = match.groups()
        known = self._origins.get(base)
        if known is None:
            origin = parse_url(base)[0]
            if len(self._origins) >= _ORIGINS_MAX:
                self._origins.clear()
            known = self._origins[base] = (origin, origin.host_header)
        if not target:
            target = "/"
        elif target[0] == "?":
            target = "/" + target
        return known[0], known[1], target

    def _encode(self, prep: _PreparedHttp, ctx: Context) -> tuple[Origin, EncodedRequest]:
        """Raises: RenderError, ValueError (bad URL, header or target)."""
        if prep.origin is not None:
            return self._encode_rendered(prep, None, ctx)
        return self._encode_rendered(prep, prep.url.render(ctx), ctx)

    def _encode_rendered(
        self, prep: _PreparedHttp, url: str | None, ctx: Context
    ) -> tuple[Origin, EncodedRequest]:
        """Encode with ``url`` already rendered (``None``: the step's static origin).

        Raises:
            RenderError, ValueError: a template read a missing field; a bad URL, header or
                target.
        """
        origin, host, target = prep.origin if url is None else self._split(url)  # type: ignore[misc]
        if prep.encoded is not None:
            return origin, prep.encoded
        headers = [(k, t.render(ctx)) for k, t in prep.headers]
        body: bytes | None = None
        if prep.json is not None:
            value = render_json(prep.json, ctx) if prep.json_templated else prep.json
            body = msgspec.json.encode(value)
            if prep.json_type:
                headers.append(_JSON_TYPE)
        elif prep.body is not None:
            body = prep.body.render(ctx).encode()
        return origin, encode_request(prep.method, target, host, headers, body)


def _on_done(prep: _PreparedHttp, call: StepCall, result: HttpResult) -> None:
    """The ``on_done`` of one request (bound with ``partial``: no Python ``__init__`` per
    request): judges the response and completes the user's call."""
    metrics = prep.metrics
    scenario = metrics.scenario
    scenario.requests += 1
    latency = result.latency_s
    if result.error is not None:
        scenario.http_failed += 1
        metrics.end(result.error)
        call.fail(f"{prep.name}: {result.error}", latency_s=latency)
        return
    metrics.latency.record(latency)
    if prep.simple and result.status in prep.statuses:  # the common case, inlined
        scenario.checks += 1
        scenario.checks_passed += 1
        scenario.steps += 1
        call.complete(SUCCEEDED)  # the latency is in the histograms: nothing to allocate
        return
    failure = _judge(prep, metrics, result)
    variables: dict[str, Any] | None = None
    if failure is None and prep.extract:
        variables, failure = _extract(prep, result)
    if failure is not None:
        metrics.end(failure[0])
        call.fail(failure[1], latency_s=latency)
        return
    metrics.end(None)
    call.complete(StepOutcome(ok=True, vars=variables, latency_s=latency))


def _judge(prep: _PreparedHttp, metrics: StepMetrics, result: HttpResult) -> tuple[str, str] | None:
    """Evaluate ``expect``; the first failure as (class, message), else ``None``."""
    failure: tuple[str, str] | None = None
    status = result.status
    if prep.statuses:
        passed = status in prep.statuses
        metrics.check(passed)
        if not passed:
            expected = ", ".join(map(str, sorted(prep.statuses)))
            failure = ("status", f"{prep.name}: status {status}, expected {expected}")
    elif status >= 400:
        failure = ("status", f"{prep.name}: status {status}")
    if failure is not None:
        metrics.scenario.http_failed += 1
    if prep.max_latency is not None:
        passed = result.latency_s <= prep.max_latency
        metrics.check(passed)
        if not passed and failure is None:
            failure = (
                "expectation",
                f"{prep.name}: took {result.latency_s * 1000:.0f}ms, "
                f"expected at most {prep.max_latency * 1000:.0f}ms",
            )
    return failure


def _extract(
    prep: _PreparedHttp, result: HttpResult
) -> tuple[dict[str, Any] | None, tuple[str, str] | None]:
    def scalar(kind: str) -> Any:
        return result.status if kind == "status" else result.body.decode("utf-8", "replace")

    return extract(prep.name, prep.extract, result.body, scalar, "the body")


def _json_fields(spec: HttpSpec) -> set[str]:
    """The fields the step's JSON or raw body templates read."""
    fields: set[str] = set()
    if spec.body is not None:
        fields.update(spec.body.fields)
    stack: list[Any] = [spec.json]
    while stack:
        value = stack.pop()
        if isinstance(value, str) and has_placeholders(value):
            fields.update(compile_template(value).fields)
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, dict):
            stack.extend(value.values())
    return fields


def _json_has_templates(value: Any) -> bool:
    if isinstance(value, str):
        return has_placeholders(value)
    if isinstance(value, list):
        return any(_json_has_templates(v) for v in value)
    if isinstance(value, dict):
        return any(_json_has_templates(v) for v in value.values())
    return False
