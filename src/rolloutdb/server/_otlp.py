"""OpenTelemetry in: ``POST /v1/traces``, an OTLP/HTTP trace receiver (protobuf or JSON, plain or gzip).

Each span goes to the rollout and attempt its span attributes name, else its resource's: ``rolloutdb.rollout_id``
and ``rolloutdb.attempt_id``, or Agent Lightning's ``agentlightning.rollout_id`` / ``agentlightning.attempt_id``;
no attempt named means the rollout's latest. A span's attributes are kept as OTLP flattens them (AnyValue -> JSON
values), so GenAI semantic attributes (``gen_ai.*``) read as they were set; the record's other fields take the shapes
Agent Lightning gives them (``status``, ``events``, ``links``, ``context``, ``resource``), so the Agent Lightning
adapter reads OTLP spans like its own. A request is one ``spans.add_many`` batch; sequence ids are the store's.

Spans that name no rollout, an unknown one, or one the database cannot hold are not stored: they are counted and
explained in the answer's ``partial_success`` (OTLP's way), never dropped silently. A span an exporter sends again
(same attempt, same span id) is stored once. The conversion lives here, beside the route, rather than in the
store: OTLP is a wire format, and what the store takes is spans (``spans.add_many``)."""

from __future__ import annotations

import base64
import functools
import logging
import math
import zlib
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio.to_thread
import orjson
from fastapi import Request, Response
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                     ExportTraceServiceResponse)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan
from opentelemetry.proto.trace.v1.trace_pb2 import SpanFlags, Status

from ..errors import InvalidInputError
from ..schema import spans as spans_table
from ..states import TokenRole
from ..storable import Unstorable, json_text
from ..store import Store
from ..store.attempts import LATEST
from ..store.base import check_key
from ._errors import error_response
from ._projects import ProjectStores

TRACES_PATH = "/v1/traces"  # where OTLP/HTTP puts it: not under /api/v1
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
ROLLOUT_KEYS = ("rolloutdb.rollout_id", "agentlightning.rollout_id")  # the first one set wins
ATTEMPT_KEYS = ("rolloutdb.attempt_id", "agentlightning.attempt_id")
STATUS_CODES = {Status.STATUS_CODE_UNSET: "UNSET", Status.STATUS_CODE_OK: "OK", Status.STATUS_CODE_ERROR: "ERROR"}
NAME_LENGTH = spans_table.c.name.type.length
IDS_PER_LOOKUP = 500  # rollouts or attempts looked up in one query
EXAMPLES = 3  # ids named in a rejection's message, per reason
# For /docs: the body is read as bytes (FastAPI cannot describe it from a signature).
OPENAPI = {"requestBody": {"required": True, "description": "An OTLP ExportTraceServiceRequest; Content-Encoding: "
                                                            "gzip or none", "content": {
    PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
    JSON: {"schema": {"type": "object", "description": "OTLP's JSON encoding (ids in hex)"}}}}}
log = logging.getLogger("rolloutdb.server")


class BadExport(Exception):
    """A request body that is not an OTLP export this server takes: answered ``status`` (400, 413 or 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def receive_traces(stores: ProjectStores, max_body_bytes: int, request: Request) -> Response:
    """``POST /v1/traces``: the body is read here (the server's body limit applies as it arrives), then decoded
    and stored in a worker thread, as every store call is made, so the event loop never waits for it."""
    body = await request.body()
    return await anyio.to_thread.run_sync(functools.partial(export, stores, request, body, max_body_bytes))


def export(stores: ProjectStores, request: Request, body: bytes, max_body_bytes: int) -> Response:
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    # The store of the request's project; with --auth, once its token is found to be a writer's, before decoding.
    with stores.store(request, TokenRole.WRITER) as store:
        try:
            export_request = decode(inflate(body, encoding, max_body_bytes), media_type)
        except BadExport as exc:
            return error_response(exc.status, InvalidInputError.__name__, str(exc))
        rejected, message = store_spans(store, export_request)
    answer = ExportTraceServiceResponse()
    if rejected:
        log.warning("OTLP export: %s", message)
        answer.partial_success.rejected_spans = rejected
        answer.partial_success.error_message = message
    if media_type == PROTOBUF:
        return Response(answer.SerializeToString(), media_type=PROTOBUF)
    return Response(json_format.MessageToJson(answer, indent=None), media_type=JSON)


# -- the body ---------------------------------------------------------------------------------------

def inflate(body: bytes, encoding: str, max_bytes: int) -> bytes:
    """The body without its Content-Encoding; unpacked, it must keep within the body limit too."""
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise BadExport(415, f"unsupported Content-Encoding {encoding!r}: send gzip or none")
    unpacked = bytearray()
    rest = body
    try:
        while rest:  # a gzip body may be several members one after the other
            member = zlib.decompressobj(16 + zlib.MAX_WBITS)
            unpacked += member.decompress(rest, max_bytes + 1 - len(unpacked))
            if len(unpacked) > max_bytes:
                raise BadExport(413, f"the body unpacks to over the server's limit of {max_bytes:,} bytes "
                                     "(max_body_bytes); send smaller batches")
            if not member.eof:
                raise BadExport(400, "the gzip body is cut short")
            rest = member.unused_data
    except zlib.error as exc:
        raise BadExport(400, f"the body is not valid gzip: {exc}") from None
    return bytes(unpacked)


def decode(body: bytes, media_type: str) -> ExportTraceServiceRequest:
    """An ExportTraceServiceRequest from its protobuf encoding, or from OTLP's JSON one."""
    if media_type == PROTOBUF:
        try:
            return ExportTraceServiceRequest.FromString(body)
        except DecodeError as exc:
            raise BadExport(400, f"the body is not an OTLP ExportTraceServiceRequest in protobuf: {exc}") from None
    if media_type != JSON:
        raise BadExport(415, f"unsupported Content-Type {media_type or 'none'!r}: send {PROTOBUF} or {JSON}")
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadExport(400, f"the body is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise BadExport(400, f"the body must be a JSON object (an ExportTraceServiceRequest), "
                             f"not {type(message).__name__}")
    try:
        for span in _json_spans(message):
            _hex_ids_to_base64(span, ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id"))
            for link in _items(span, "links"):
                _hex_ids_to_base64(link, ("traceId", "trace_id", "spanId", "span_id"))
        # OTLP: a receiver ignores fields it does not know (the sender's protocol may be newer).
        return json_format.ParseDict(message, ExportTraceServiceRequest(), ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, AttributeError) as exc:
        raise BadExport(400, f"the body is not an OTLP ExportTraceServiceRequest in JSON: {exc}") from None


def _items(message: Any, *names: str) -> list[Any]:
    """The list under the first of ``names`` (proto field or lowerCamelCase, as OTLP JSON allows) in ``message``."""
    if not isinstance(message, dict):
        raise ValueError(f"expected an object, got {type(message).__name__}")
    value = next((message[name] for name in names if name in message), None)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{names[0]} must be a list, got {type(value).__name__}")
    return value


def _json_spans(message: dict[str, Any]) -> Iterator[Any]:
    for resource_spans in _items(message, "resourceSpans", "resource_spans"):
        for scope_spans in _items(resource_spans, "scopeSpans", "scope_spans"):
            yield from _items(scope_spans, "spans")


def _hex_ids_to_base64(message: Any, names: tuple[str, ...]) -> None:
    """OTLP JSON writes trace and span ids in hex, where protobuf's JSON has base64: turn them into the latter."""
    if not isinstance(message, dict):
        raise ValueError(f"expected an object, got {type(message).__name__}")
    for name in names:
        value = message.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a hex string, got {type(value).__name__}")
        try:
            message[name] = base64.b64encode(bytes.fromhex(value)).decode()
        except ValueError:
            raise ValueError(f"{name} {value[:40]!r} is not hex") from None


# -- spans ------------------------------------------------------------------------------------------

def store_spans(store: Store, export_request: ExportTraceServiceRequest) -> tuple[int, str]:
    """Store the spans of a request that name a known rollout (and attempt) in one ``spans.add_many``; returns
    how many were rejected and why."""
    located = []  # (rollout id, attempt id or None, the span's fields)
    rejections: dict[str, list[str]] = {}  # reason -> an example of each span given it

    def reject(reason: str, example: str) -> None:
        rejections.setdefault(reason, []).append(example)

    for resource_spans in export_request.resource_spans:
        resource_attributes = attributes_of(resource_spans.resource.attributes)
        resource = {"attributes": resource_attributes, "schema_url": resource_spans.schema_url}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                attributes = attributes_of(span.attributes)
                rollout_id, attempt_id = (named(keys, attributes, resource_attributes)
                                          for keys in (ROLLOUT_KEYS, ATTEMPT_KEYS))
                attempt_id = None if attempt_id == LATEST else attempt_id
                if rollout_id is None:
                    reject(f"name no rollout (set the span or resource attribute {ROLLOUT_KEYS[0]})", repr(span.name))
                    continue
                try:
                    fields = span_fields(span, attributes, resource)
                except Unstorable as exc:
                    reject(f"hold what the database cannot store ({exc})", repr(span.name))
                    continue
                located.append((rollout_id, attempt_id, fields))
    new_spans = []
    rollouts, attempts = known(store, located)
    for rollout_id, attempt_id, fields in located:
        rollout = rollouts.get(rollout_id)
        if rollout is None:
            reject("name a rollout this project does not have", repr(rollout_id))
        elif attempt_id is not None and attempts.get(attempt_id) != rollout_id:
            reject("name an attempt their rollout does not have", repr(attempt_id))
        elif attempt_id is None and rollout.attempt_count == 0:
            reject("name a rollout with no attempt yet (and no attempt)", repr(rollout_id))
        else:
            new_spans.append({**fields, "rollout_id": rollout_id, "attempt_id": attempt_id or LATEST})
    # Exporters send a batch again when an answer is lost: a span id the attempt has is not stored twice.
    store.spans.add_many(new_spans, unique_span_ids=True)
    rejected = sum(map(len, rejections.values()))
    if not rejected:
        return 0, ""
    reasons = "; ".join(f"{len(examples)} {reason}: {_some(examples)}" for reason, examples in rejections.items())
    return rejected, f"{rejected} of {rejected + len(new_spans)} spans not stored: {reasons}"


def _some(examples: list[str]) -> str:
    distinct = list(dict.fromkeys(examples))
    return ", ".join(distinct[:EXAMPLES]) + (", ..." if len(distinct) > EXAMPLES else "")


def named(keys: tuple[str, ...], attributes: dict[str, Any], resource_attributes: dict[str, Any]) -> str | None:
    """The id the span's attributes name under ``keys``, else its resource's; None when neither does, or when
    the value cannot be an id (then no row has it)."""
    for found in (attributes, resource_attributes):
        for key in keys:
            value = found.get(key)
            if value is not None and value != "":
                return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    return None


def known(store: Store, located: list[tuple[str, str | None, dict[str, Any]]]) -> tuple[dict, dict]:
    """The rollouts the spans name that the project has (by id), and the rollout of each attempt they name."""
    rollout_ids = [key for key in dict.fromkeys(rollout_id for rollout_id, _, _ in located) if _is_key(key)]
    attempt_ids = [key for key in dict.fromkeys(attempt_id for _, attempt_id, _ in located if attempt_id)
                   if _is_key(key)]
    rollouts = {rollout.id: rollout for chunk in _chunks(rollout_ids)
                for rollout in store.rollouts.query(id__in=chunk, limit=None)}
    attempts = {attempt.id: attempt.rollout_id for chunk in _chunks(attempt_ids)
                for attempt in store.attempts.query(id__in=chunk, limit=None)}
    return rollouts, attempts


def _is_key(value: str) -> bool:
    try:
        check_key("rollout", value)
    except InvalidInputError:
        return False
    return True


def _chunks(keys: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(keys), IDS_PER_LOOKUP):
        yield keys[start:start + IDS_PER_LOOKUP]


def span_fields(span: OtlpSpan, attributes: dict[str, Any], resource: dict[str, Any]) -> dict[str, Any]:
    """A span's fields as the store takes them (without its rollout and attempt), in Agent Lightning's shapes;
    Unstorable when an id is malformed or a value is one the database cannot hold."""
    if len(span.trace_id) != 16 or len(span.span_id) != 8:
        raise Unstorable("", f"a trace id is 16 bytes and a span id 8, got {len(span.trace_id)} and "
                             f"{len(span.span_id)}")
    if len(span.name) > NAME_LENGTH:
        raise Unstorable("name", f"{len(span.name):,} characters, over the {NAME_LENGTH}")
    trace_id, span_id = span.trace_id.hex(), span.span_id.hex()
    parent_id = span.parent_span_id.hex() or None
    trace_state = _trace_state(span.trace_state)
    fields = {
        "trace_id": trace_id, "span_id": span_id, "parent_id": parent_id, "name": span.name,
        "status": {"status_code": STATUS_CODES.get(span.status.code, "UNSET"),
                   "description": span.status.message or None},
        "attributes": attributes,
        "events": [{"name": event.name, "attributes": attributes_of(event.attributes),
                    "timestamp": _seconds(event.time_unix_nano)} for event in span.events],
        "links": [{"context": _context(link.trace_id.hex(), link.span_id.hex(), _is_remote(link.flags),
                                       _trace_state(link.trace_state)),
                   "attributes": attributes_of(link.attributes) or None} for link in span.links],
        "context": _context(trace_id, span_id, False, trace_state),
        "parent": None if parent_id is None else _context(trace_id, parent_id, _is_remote(span.flags), {}),
        "resource": resource,
        "start_time": _time(span.start_time_unix_nano), "end_time": _time(span.end_time_unix_nano),
    }
    json_text(fields)  # what the store would refuse for the whole batch, found for this span alone
    return fields


def attributes_of(key_values: Any) -> dict[str, Any]:
    return {key_value.key: any_value(key_value.value) for key_value in key_values}


def any_value(value: AnyValue) -> Any:
    """An OTLP AnyValue as a JSON value: arrays as lists, key-value lists as objects, bytes in base64 (as OTLP's
    JSON encoding has them), and the doubles JSON has no number for as the strings proto3's JSON uses."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        number = value.double_value
        return number if math.isfinite(number) else "NaN" if math.isnan(number) else \
            "Infinity" if number > 0 else "-Infinity"
    if kind == "bool_value":
        return value.bool_value
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None


def _context(trace_id: str, span_id: str, is_remote: bool, trace_state: dict[str, str]) -> dict[str, Any]:
    return {"trace_id": trace_id, "span_id": span_id, "is_remote": is_remote, "trace_state": trace_state}


def _is_remote(flags: int) -> bool:
    return bool(flags & SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
                and flags & SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK)


def _trace_state(header: str) -> dict[str, str]:
    """W3C tracestate (``k1=v1,k2=v2``) as a mapping, as Agent Lightning keeps it."""
    pairs = (member.strip().partition("=") for member in header.split(","))
    return {key: value for key, _, value in pairs if key}


def _seconds(unix_nano: int) -> float | None:
    return unix_nano / 1e9 if unix_nano else None


def _time(unix_nano: int) -> datetime | None:
    """Nanoseconds since 1970 as a time, to the microsecond (a float would round off the last ones)."""
    if not unix_nano:
        return None
    seconds, nanoseconds = divmod(unix_nano, 1_000_000_000)
    return datetime.fromtimestamp(seconds, timezone.utc) + timedelta(microseconds=nanoseconds // 1000)


__all__ = ["ATTEMPT_KEYS", "OPENAPI", "ROLLOUT_KEYS", "TRACES_PATH", "receive_traces"]
