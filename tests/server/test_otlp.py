"""OpenTelemetry in: ``POST /v1/traces`` on a real `rolloutdb serve`, fed by the real OpenTelemetry SDK and its OTLP
HTTP exporter (protobuf, plain and gzip), and by OTLP JSON sent with httpx; on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import os
import gzip
import threading
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

import rolloutdb
from rolloutdb.records import Claim
from server.servers import TEST_MAX_BODY_BYTES, error, running_server, unique

PROTOBUF = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}
GEN_AI = {"gen_ai.system": "openai", "gen_ai.request.model": "policy-7b", "gen_ai.usage.input_tokens": 512,
          "gen_ai.usage.output_tokens": 64, "gen_ai.request.temperature": 0.7, "gen_ai.response.finish_reasons":
          ("stop",), "gen_ai.prompt.0.content": "What is 2 + 2?", "llm.streaming": False}


@pytest.fixture
def store(server) -> Iterator[rolloutdb.Store]:
    """The server's project, through the remote client: how a trainer would set up rollouts and read spans."""
    with rolloutdb.connect(server.base, project=server.project) as remote:
        yield remote


def recorded(resource: dict, spans: list[tuple[str, dict]]) -> list[ReadableSpan]:
    """Spans made by the OpenTelemetry SDK: ``(name, attributes)`` each, the first the parent of the others; the
    last one fails, with an event."""
    provider = TracerProvider(resource=Resource.create(resource))
    captured = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(captured))
    tracer = provider.get_tracer("rolloutdb-tests", "1.0")
    (parent_name, parent_attributes), *children = spans
    with tracer.start_as_current_span(parent_name, attributes=parent_attributes):
        for index, (name, attributes) in enumerate(children):
            with tracer.start_as_current_span(name, attributes=attributes) as span:
                if index == len(children) - 1:
                    span.add_event("retry", {"attempt": 2})
                    span.set_status(Status(StatusCode.ERROR, "rate limited"))
    provider.shutdown()
    return list(captured.get_finished_spans())


def exported(server, spans: list[ReadableSpan], **options) -> SpanExportResult:
    return OTLPSpanExporter(endpoint=f"{server.base}/v1/traces", **options).export(spans)


def otlp_json(spans: list[ReadableSpan]) -> dict:
    """The SDK's spans in OTLP's JSON encoding: protobuf's JSON mapping, with ids in hex rather than base64."""
    message = json_format.MessageToDict(encode_spans(spans))
    for resource_spans in message["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return message


def response_of(answer: httpx.Response) -> ExportTraceServiceResponse:
    assert answer.status_code == 200, answer.text
    if answer.headers["content-type"] == "application/x-protobuf":
        return ExportTraceServiceResponse.FromString(answer.content)
    return json_format.Parse(answer.text, ExportTraceServiceResponse())


def started(store: rolloutdb.Store) -> Claim:
    return store.rollouts.start({"task": "otlp"})


def test_the_sdk_exporter_stores_spans_on_the_rollout_and_attempt_the_resource_names(server, store):
    claim = started(store)
    spans = recorded({"rolloutdb.rollout_id": claim.rollout.id, "rolloutdb.attempt_id": claim.attempt.id,
                      "service.name": "agent"},
                     [("agent.turn", {"agent.turn": 3}), ("chat policy-7b", GEN_AI), ("tool.call", {"tool": "calc"})])
    assert exported(server, spans) == SpanExportResult.SUCCESS
    stored = store.spans.query(claim.rollout.id, claim.attempt.id)
    assert [span.sequence_id for span in stored] == [1, 2, 3]  # the store numbers them, in the order sent
    by_name = {span.name: span for span in stored}
    assert set(by_name) == {"agent.turn", "chat policy-7b", "tool.call"}
    chat, parent, failed = by_name["chat policy-7b"], by_name["agent.turn"], by_name["tool.call"]
    assert chat.attributes == {**GEN_AI, "gen_ai.response.finish_reasons": ["stop"]}  # as set; a tuple is a list
    sdk_chat = next(span for span in spans if span.name == "chat policy-7b")
    assert chat.trace_id == format(sdk_chat.context.trace_id, "032x")
    assert chat.span_id == format(sdk_chat.context.span_id, "016x")
    assert chat.parent_id == parent.span_id and parent.parent_id is None
    assert chat.context == {"trace_id": chat.trace_id, "span_id": chat.span_id, "is_remote": False, "trace_state": {}}
    assert chat.parent["span_id"] == parent.span_id
    assert chat.status == {"status_code": "UNSET", "description": None}
    assert failed.status == {"status_code": "ERROR", "description": "rate limited"}
    assert [(event["name"], event["attributes"]) for event in failed.events] == [("retry", {"attempt": 2})]
    assert chat.resource["attributes"]["service.name"] == "agent"
    assert chat.start_time <= chat.end_time
    assert abs(chat.start_time.timestamp() - sdk_chat.start_time / 1e9) < 1e-5


def test_span_attributes_name_the_rollout_and_agent_lightning_names_work_too(server, store):
    """Span attributes win over the resource's; without an attempt a span goes to the rollout's latest one."""
    first, other = started(store), started(store)
    retried = store.attempts.start(first.rollout.id)  # the latest attempt of the first rollout now
    spans = recorded({"rolloutdb.rollout_id": other.rollout.id},
                     [("to-latest", {"agentlightning.rollout_id": first.rollout.id}),
                      ("to-first-attempt", {"rolloutdb.rollout_id": first.rollout.id,
                                            "agentlightning.attempt_id": first.attempt.id}),
                      ("to-resource", {})])
    assert exported(server, spans, compression=Compression.Gzip) == SpanExportResult.SUCCESS
    assert [span.name for span in store.spans.query(first.rollout.id, retried.attempt.id)] == ["to-latest"]
    assert [span.name for span in store.spans.query(first.rollout.id, first.attempt.id)] == ["to-first-attempt"]
    assert [span.name for span in store.spans.query(other.rollout.id, other.attempt.id)] == ["to-resource"]
    assert store.spans.query(first.rollout.id, retried.attempt.id)[0].attributes == {
        "agentlightning.rollout_id": first.rollout.id}  # kept as sent


def test_a_provider_exporting_in_batches_as_applications_do(server, store):
    claim = started(store)
    provider = TracerProvider(resource=Resource.create({"rolloutdb.rollout_id": claim.rollout.id}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{server.base}/v1/traces")))
    tracer = provider.get_tracer("app")
    for n in range(25):
        with tracer.start_as_current_span(f"llm.call.{n}", attributes={"gen_ai.usage.input_tokens": n}):
            pass
    assert provider.force_flush(30_000)
    provider.shutdown()
    stored = store.spans.query(claim.rollout.id)
    assert sorted(span.attributes["gen_ai.usage.input_tokens"] for span in stored) == list(range(25))
    assert sorted(span.sequence_id for span in stored) == list(range(1, 26))


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_otlp_json_stores_what_protobuf_stores(server, store, gzipped):
    claim_a, claim_b = started(store), started(store)
    spans = recorded({"rolloutdb.rollout_id": claim_a.rollout.id}, [("parent", {}), ("chat", GEN_AI)])
    assert exported(server, spans) == SpanExportResult.SUCCESS
    body = orjson.dumps(otlp_json(recorded({"rolloutdb.rollout_id": claim_b.rollout.id},
                                           [("parent", {}), ("chat", GEN_AI)])))
    headers = {**JSON, **({"content-encoding": "gzip"} if gzipped else {})}
    answer = response_of(httpx.post(f"{server.base}/v1/traces", content=gzip.compress(body) if gzipped else body,
                                    headers=headers))
    assert not answer.HasField("partial_success")

    def comparable(claim: Claim) -> list[dict]:
        ignored = {"id", "rollout_id", "attempt_id", "trace_id", "span_id", "parent_id", "context", "parent",
                   "resource", "start_time", "end_time", "created_at", "project_id", "events"}
        return [{**span.model_dump(exclude=ignored), "events": [(event["name"], event["attributes"])
                                                               for event in span.events]}
                for span in store.spans.query(claim.rollout.id)]

    assert comparable(claim_b) == comparable(claim_a) and len(comparable(claim_a)) == 2


def test_otlp_json_as_the_specification_writes_it(server, store):
    """Ids in hex, enums as numbers, 64-bit integers as strings, every AnyValue kind: the OTLP JSON example."""
    claim = started(store)
    body = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "agent"}}]},
        "schemaUrl": "https://opentelemetry.io/schemas/1.26.0",
        "scopeSpans": [{"scope": {"name": "my.library", "version": "1.0.0"}, "spans": [{
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
            "parentSpanId": "eee19b7ec3c1b173", "name": "chat", "kind": 3, "traceState": "vendor=a,other=b",
            "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": "1544712661000000123",
            "attributes": [
                {"key": "rolloutdb.rollout_id", "value": {"stringValue": claim.rollout.id}},
                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "9007199254740993"}},
                {"key": "gen_ai.request.temperature", "value": {"doubleValue": 0.5}},
                {"key": "ratio", "value": {"doubleValue": "NaN"}},
                {"key": "gen_ai.response.finish_reasons", "value": {"arrayValue": {"values": [
                    {"stringValue": "stop"}, {"boolValue": True}]}}},
                {"key": "tool", "value": {"kvlistValue": {"values": [{"key": "name", "value": {"stringValue": "calc"}}]}}},
                {"key": "blob", "value": {"bytesValue": base64.b64encode(b"\x00\x01").decode()}},
                {"key": "empty", "value": {}}],
            "events": [{"timeUnixNano": "1544712660500000000", "name": "ev",
                        "attributes": [{"key": "n", "value": {"intValue": 1}}]}],
            "links": [{"traceId": "00000000000000000000000000000001", "spanId": "0000000000000002",
                       "attributes": [{"key": "why", "value": {"stringValue": "follows"}}]}],
            "status": {"code": 2, "message": "boom"},
            "someFieldFromTheFuture": {"ignored": True}}]}]}]}
    assert not response_of(httpx.post(f"{server.base}/v1/traces", json=body)).HasField("partial_success")
    [span] = store.spans.query(claim.rollout.id)
    assert (span.trace_id, span.span_id, span.parent_id) == ("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174",
                                                             "eee19b7ec3c1b173")
    assert span.attributes == {"rolloutdb.rollout_id": claim.rollout.id, "gen_ai.usage.input_tokens": 9007199254740993,
                               "gen_ai.request.temperature": 0.5, "ratio": "NaN",
                               "gen_ai.response.finish_reasons": ["stop", True], "tool": {"name": "calc"},
                               "blob": "AAE=", "empty": None}
    assert span.status == {"status_code": "ERROR", "description": "boom"}
    assert span.events == [{"name": "ev", "attributes": {"n": 1}, "timestamp": 1544712660.5}]
    assert span.links == [{"context": {"trace_id": "0" * 31 + "1", "span_id": "0" * 15 + "2", "is_remote": False,
                                       "trace_state": {}}, "attributes": {"why": "follows"}}]
    assert span.context["trace_state"] == {"vendor": "a", "other": "b"}
    assert span.resource == {"attributes": {"service.name": "agent"},
                             "schema_url": "https://opentelemetry.io/schemas/1.26.0"}
    assert span.start_time.timestamp() == 1544712660 and span.end_time.microsecond == 0


def test_spans_naming_no_known_rollout_are_rejected_and_reported(server, store):
    claim = started(store)
    queued = store.rollouts.enqueue({"task": "not started"})  # no attempt yet
    spans = recorded({"service.name": "agent"}, [
        ("kept", {"rolloutdb.rollout_id": claim.rollout.id}),
        ("no rollout", {}),
        ("unknown rollout", {"rolloutdb.rollout_id": "ro-nope"}),
        ("unknown attempt", {"rolloutdb.rollout_id": claim.rollout.id, "rolloutdb.attempt_id": "at-nope"}),
        ("attempt of another rollout", {"rolloutdb.rollout_id": queued.id, "rolloutdb.attempt_id": claim.attempt.id}),
        ("no attempt yet", {"rolloutdb.rollout_id": queued.id}),
        ("unstorable", {"rolloutdb.rollout_id": claim.rollout.id, "text": "a\x00b"}),
    ])
    for headers, body in ((PROTOBUF, encode_spans(spans).SerializeToString()), (JSON, orjson.dumps(otlp_json(spans)))):
        answer = response_of(httpx.post(f"{server.base}/v1/traces", content=body, headers=headers))
        assert answer.partial_success.rejected_spans == 6
        message = answer.partial_success.error_message
        assert message.startswith("6 of 7 spans not stored: ")
        for reason in ("1 name no rollout (set the span or resource attribute rolloutdb.rollout_id): 'no rollout'",
                       "1 name a rollout this project does not have: 'ro-nope'",
                       "2 name an attempt their rollout does not have: 'at-nope', " + repr(claim.attempt.id),
                       f"1 name a rollout with no attempt yet (and no attempt): {queued.id!r}",
                       "1 hold what the database cannot store (", "NUL"):
            assert reason in message
    # The span that named its rollout is stored once: the second export sent it again.
    assert [span.name for span in store.spans.query(claim.rollout.id)] == ["kept"]
    assert store.spans.count(queued.id, attempt_id=None) == 0


def test_the_sdk_exporter_is_told_nothing_was_refused_when_spans_are_rejected(server):
    """Rejected spans are a partial success (200), so the exporter neither fails nor sends them again."""
    spans = recorded({}, [("orphan", {})])
    assert exported(server, spans) == SpanExportResult.SUCCESS


def test_an_export_sent_again_is_stored_once(server, store):
    claim = started(store)
    spans = recorded({"rolloutdb.rollout_id": claim.rollout.id}, [("a", {}), ("b", {})])
    assert exported(server, spans) == SpanExportResult.SUCCESS
    assert exported(server, spans) == SpanExportResult.SUCCESS
    assert [span.name for span in store.spans.query(claim.rollout.id)] == ["b", "a"]


def malformed(rollout_id: str) -> list[tuple[dict, bytes, int, str]]:
    """Bodies that cannot be read, each with a readable span naming ``rollout_id`` where one fits: (headers, body,
    status, part of the message)."""
    good = recorded({"rolloutdb.rollout_id": rollout_id}, [("good", {}), ("good too", {})])
    protobuf = encode_spans(good).SerializeToString()
    as_json = otlp_json(good)
    bad_id = orjson.loads(orjson.dumps(as_json))
    bad_id["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["spanId"] = "not hex!"
    bad_kind = orjson.loads(orjson.dumps(as_json))
    bad_kind["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["startTimeUnixNano"] = "soon"
    return [
        (PROTOBUF, protobuf[:-3], 400, "not an OTLP ExportTraceServiceRequest in protobuf"),
        (PROTOBUF, b"\xff\xff\xff\xff", 400, "not an OTLP ExportTraceServiceRequest in protobuf"),
        (JSON, orjson.dumps(as_json)[:-5], 400, "not JSON"),
        (JSON, b"[]", 400, "must be a JSON object"),
        (JSON, orjson.dumps(bad_id), 400, "spanId 'not hex!' is not hex"),
        (JSON, orjson.dumps(bad_kind), 400, "not an OTLP ExportTraceServiceRequest in JSON"),
        (JSON, orjson.dumps({"resourceSpans": {"scopeSpans": []}}), 400, "resourceSpans must be a list"),
        ({**PROTOBUF, "content-encoding": "gzip"}, protobuf, 400, "not valid gzip"),
        ({**PROTOBUF, "content-encoding": "gzip"}, gzip.compress(protobuf)[:-10], 400, "cut short"),
        ({**PROTOBUF, "content-encoding": "br"}, protobuf, 415, "unsupported Content-Encoding 'br'"),
        ({"content-type": "text/plain"}, protobuf, 415, "unsupported Content-Type 'text/plain'"),
        ({}, protobuf, 415, "unsupported Content-Type 'none'"),
    ]


def test_malformed_bodies_are_refused_and_nothing_is_stored(server, store):
    claim = started(store)
    for headers, body, status, message in malformed(claim.rollout.id):
        answer = httpx.post(f"{server.base}/v1/traces", content=body, headers=headers)
        assert message in error(answer, status, "InvalidInputError"), (headers, body[:80])
    assert store.spans.count(claim.rollout.id, attempt_id=None) == 0


def test_the_body_limit_holds_for_the_body_and_for_what_it_unpacks_to(server, store):
    claim = started(store)
    bomb = gzip.compress(b"\x00" * (TEST_MAX_BODY_BYTES + 1))  # a thousand times smaller than it unpacks to
    answer = httpx.post(f"{server.base}/v1/traces", content=bomb, headers={**PROTOBUF, "content-encoding": "gzip"})
    assert "unpacks to over the server's limit" in error(answer, 413, "InvalidInputError")
    large = httpx.post(f"{server.base}/v1/traces", content=b"\x00" * (TEST_MAX_BODY_BYTES + 1), headers=PROTOBUF)
    assert "over the server's limit" in error(large, 413, "InvalidInputError")
    assert store.spans.count(claim.rollout.id, attempt_id=None) == 0


def test_an_export_beyond_the_writes_in_flight_is_503(tmp_path):
    """/v1/traces is a write like the others: with the only write slot held by a wait, it is answered 503 with
    Retry-After (which the SDK exporter honours by trying again) and stores nothing."""
    url = f"sqlite:///{tmp_path / 'busy.db'}"
    with running_server(url, tmp_path, "busy", "--max-writes-in-flight", "1") as server, server.client() as api, \
            rolloutdb.connect(url, project="busy") as store:
        claim = store.rollouts.start({"task": "busy"})
        body = encode_spans(recorded({"rolloutdb.rollout_id": claim.rollout.id}, [("a", {})])).SerializeToString()

        def wait() -> None:  # until the server takes it: a probe below may hold the slot when it arrives
            while api.post("/rollouts/wait", json={"rollout_ids": [claim.rollout.id], "timeout": 20}).status_code == 503:
                time.sleep(0.01)

        waiting = threading.Thread(target=wait)
        waiting.start()
        try:
            deadline = time.monotonic() + 30
            while api.post("/runs", json={"name": unique("probe")}).status_code != 503:  # the wait holds the slot
                assert time.monotonic() < deadline, "no write was refused while the wait held the only slot"
                time.sleep(0.02)
            busy = httpx.post(f"{server.base}/v1/traces", content=body, headers=PROTOBUF)
            assert "the server is busy" in error(busy, 503, "StoreUnavailableError")
            assert busy.headers["retry-after"] == "1"
        finally:
            store.rollouts.cancel(claim.rollout.id)  # ends the wait
            waiting.join()
        assert store.spans.count(claim.rollout.id, attempt_id=None) == 0


def test_agent_lightning_s_own_exporter_sends_to_the_server_and_its_adapter_reads_the_spans(server, store):
    """Agent Lightning's LightningStoreOTLPExporter names the rollout and attempt in the resource under its own
    keys; the spans it sends are stored, and the adapter turns them into Agent Lightning spans as they were."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # agentlightning imports litellm: stay offline
    agentlightning_otlp = pytest.importorskip("agentlightning.utils.otlp")
    from rolloutdb.integrations.agentlightning import to_agl_span

    claim = started(store)
    # Made with the endpoint: with this OpenTelemetry SDK the one enable_store_otlp sets is not the one it sends to.
    exporter = agentlightning_otlp.LightningStoreOTLPExporter(endpoint=f"{server.base}/v1/traces")
    exporter.enable_store_otlp(f"{server.base}/v1/traces", claim.rollout.id, claim.attempt.id)
    spans = recorded({"service.name": "agent"}, [("agent.run", {}), ("chat", GEN_AI)])
    assert exporter.export(spans) == SpanExportResult.SUCCESS
    stored = store.spans.query(claim.rollout.id, claim.attempt.id)
    assert sorted(span.name for span in stored) == ["agent.run", "chat"]
    chat = to_agl_span(next(span for span in stored if span.name == "chat"))
    sdk_chat = next(span for span in spans if span.name == "chat")
    assert chat.attributes == {**GEN_AI, "gen_ai.response.finish_reasons": ["stop"]}
    assert chat.status.status_code == "ERROR" and chat.status.description == "rate limited"
    assert [event.name for event in chat.events] == ["retry"]
    assert chat.context.span_id == format(sdk_chat.context.span_id, "016x")
    assert chat.resource.attributes["agentlightning.rollout_id"] == claim.rollout.id
    assert chat.start_time == pytest.approx(sdk_chat.start_time / 1e9, abs=1e-5)


def test_with_auth_a_writer_s_token_chooses_the_project_and_others_are_refused(tmp_path):
    """With --auth, /v1/traces is a write of the token's project: no token 401, a reader's 403 (nothing stored);
    a span naming another project's rollout is rejected as unknown there (never stored in it)."""
    url = f"sqlite:///{tmp_path / 'auth.db'}"
    projects = {}
    for name in ("a", "b"):
        with rolloutdb.connect(url, project=name) as store:
            projects[name] = (store.rollouts.start({"task": name}), store.tokens.create("writer").secret,
                              store.tokens.create("reader").secret)
    (claim_a, writer_a, reader_a), (_, writer_b, _) = projects["a"], projects["b"]
    spans = recorded({"rolloutdb.rollout_id": claim_a.rollout.id}, [("chat", GEN_AI)])
    body = encode_spans(spans).SerializeToString()
    with running_server(url, tmp_path, None, "--auth") as server:
        traces = f"{server.base}/v1/traces"
        error(httpx.post(traces, content=body, headers=PROTOBUF), 401, "AuthenticationError")
        error(httpx.post(traces, content=body, headers={**PROTOBUF, "Authorization": f"Bearer {reader_a}"}),
              403, "PermissionDeniedError")
        answer = response_of(httpx.post(traces, content=body,
                                        headers={**PROTOBUF, "Authorization": f"Bearer {writer_b}"}))
        assert answer.partial_success.rejected_spans == 1
        assert "1 name a rollout this project does not have" in answer.partial_success.error_message
        with rolloutdb.connect(url, project="a") as store:
            assert store.spans.count(claim_a.rollout.id, attempt_id=None) == 0
            assert exported(server, spans, headers={"Authorization": f"Bearer {writer_a}"}) == SpanExportResult.SUCCESS
            assert [span.name for span in store.spans.query(claim_a.rollout.id)] == ["chat"]
