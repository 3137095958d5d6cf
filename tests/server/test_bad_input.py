"""Bad input over the whole OpenAPI schema, generated: for every route of the server's own ``/openapi.json``,
Hypothesis makes requests from the route's schema and spoils them — malformed JSON, wrong types, unknown and
missing fields, absurd pagination, injection strings in filter names, values and sort fields, unicode, NUL bytes,
overlong strings, deep nesting (as deep as 100,000 levels) — and sends them to a real server on SQLite and on
PostgreSQL. Whatever comes, the answer is never a 5xx; a refusal is a 4xx with ``{"error": {"type", "message"}}``
naming one of RolloutDB's exceptions, and leaves the database as it was (every row of every table, compared before
and after).

``ROLLOUTDB_BAD_INPUT_EXAMPLES`` sets how many requests each backend gets (300 by default; CI may raise it)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, select

import rolloutdb
from rolloutdb import errors
from rolloutdb.schema import metadata
from rolloutdb.store.base import OPERATORS
from server.servers import TEST_MAX_BODY_BYTES, Server

URL_TEXT = 1_500  # characters of one value in a URL (httpx sends at most 64 KiB of query, %-encoded)
EXAMPLES = int(os.environ.get("ROLLOUTDB_BAD_INPUT_EXAMPLES", "300"))
# Not shrunk: each step of shrinking is a request and two reads of the database, and the failing request is
# printed whole anyway.
BAD_INPUT = settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                            HealthCheck.data_too_large])
ERROR_TYPES = {name for name, kind in vars(errors).items()
               if isinstance(kind, type) and issubclass(kind, errors.RolloutDBError)}

NASTY_TEXT = st.sampled_from([
    "", " ", "\x00", "a\x00b", "'; DROP TABLE runs; --", "\" OR 1=1 --", "name; DROP TABLE runs", "1) OR (1=1",
    "../../etc/passwd", "%00", "%s%n", "${jndi:ldap://x}", "<script>alert(1)</script>", "🚀 ünïcødé ✓", "\u202e",
    "\uffff", "x" * 100_000, "NaN", "Infinity", "null", "true", "latest", "all", "-1", "1e309", "9" * 40,
    "2026-01-02T03:04:05Z", "2026-01-02T03:04:05", "P7D", "asc", "desc", "queuing", "running", "succeeded",
]) | st.text(max_size=40)
NUMBERS = st.sampled_from([0, 1, -1, 10 ** 12, -(10 ** 12), 2 ** 31, 2 ** 63, 2 ** 64, 10 ** 30, 0.5, -0.0, 1e308]) \
    | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
SCALARS = st.none() | st.booleans() | NUMBERS | NASTY_TEXT
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(NASTY_TEXT, inner, max_size=4), max_leaves=10)
DEEP = st.builds(lambda depth, kind: nested(depth, kind), st.sampled_from([50, 250, 500]),
                 st.sampled_from(["list", "dict"]))
ANYTHING = JSON_VALUES | DEEP
MALFORMED = st.sampled_from([
    b"", b"{", b'{"name": ', b"nul", b"[1, 2", b"{'name': 'x'}", b'{"a": NaN}', b'{"a": Infinity}', b"\xff\xfe\x00",
    b"\x00", b'{"name": "\\ud800"}', b'{"name": "a\\u0000b"}', b"[" * 100_000 + b"]" * 100_000, b"{" * 50_000,
    b'{"a": 1, "a": 2}', b"1e999999", b'{"name": "x", "config": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'[{"input": ' + b'{"a": ' * 20_000 + b"1" + b"}" * 20_000 + b"}]", b'"' + b"x" * (TEST_MAX_BODY_BYTES + 10) + b'"',
])


def nested(depth: int, kind: str) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


class Routes:
    """The server's OpenAPI document, read for what each route takes."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.components = document["components"]["schemas"]
        self.operations = [(method.upper(), path, operation) for path, methods in document["paths"].items()
                           for method, operation in methods.items()]

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.components[schema["$ref"].rsplit("/", 1)[1]]
        return schema

    def fields_of_listing(self, operation: dict[str, Any]) -> list[str]:
        """The record fields of a listing (the items of its Page answer): what filters and sorts name."""
        answer = self.resolve(operation["responses"].get("200", {}).get("content", {}).get(
            "application/json", {}).get("schema", {}))
        items = self.resolve(answer.get("properties", {}).get("items", {}).get("items", {}))
        return list(items.get("properties", {}))

    def values(self, schema: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
        """Values the schema describes, now and then something else."""
        schema = self.resolve(schema)
        valid = self.valid(schema, depth)
        return st.one_of(valid, valid, valid, ANYTHING) if depth else valid  # mostly valid: reach the store

    def valid(self, schema: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
        schema = self.resolve(schema)
        if "anyOf" in schema or "oneOf" in schema:
            return st.one_of([self.values(member, depth) for member in schema.get("anyOf", schema.get("oneOf"))])
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            properties = schema.get("properties", {})
            extra = schema.get("additionalProperties")
            known = st.fixed_dictionaries({}, optional={name: self.values(item, depth + 1)  # required ones too
                                                        for name, item in properties.items()})
            unknown = st.dictionaries(NASTY_TEXT, ANYTHING, max_size=2)
            return st.builds(lambda fields, more: {**more, **fields}, known, st.just({}) | unknown) | (
                st.dictionaries(NASTY_TEXT, self.values(extra, depth + 1) if isinstance(extra, dict) else ANYTHING,
                                max_size=3) if extra or not properties else st.nothing())
        if kind == "array":
            items = schema.get("items", {})
            return st.lists(self.values(items, depth + 1) if isinstance(items, dict) else ANYTHING, max_size=3)
        if kind == "integer":
            return st.integers(min_value=-2, max_value=50) | NUMBERS
        if kind == "number":
            return st.floats(min_value=0, max_value=100) | NUMBERS
        if kind == "boolean":
            return st.booleans()
        if kind == "string":
            if schema.get("format") == "date-time":
                return st.sampled_from(["2026-01-02T03:04:05Z", "2026-01-02T03:04:05+02:00", "2026-01-02",
                                        "yesterday", "1767323045"])
            if "enum" in schema:
                return st.sampled_from(schema["enum"]) | NASTY_TEXT
            return NASTY_TEXT
        return ANYTHING


class Seeded:
    """Rows of every kind, so that generated ids and names sometimes find one."""

    def __init__(self, server: Server) -> None:
        with rolloutdb.connect(server.url, project=server.project) as store:
            run = store.runs.create(name="seeded-run")
            step = store.steps.create(run_id=run.id, number=0)
            group = store.groups.create(run_id=run.id, step=0)
            validator = store.validators.create(name="seeded-validator", kind="exact")
            task = store.tasks.create(external_id="seeded-task", validator_id=validator.id)
            queued = store.rollouts.enqueue({"q": 1})
            claim = store.rollouts.start({"q": 2}, worker_id="seeded-worker")
            store.spans.add(rollout_id=claim.rollout.id, attempt_id=claim.attempt.id, trace_id="t", span_id="s",
                            name="llm")
            turn = store.turns.create(rollout_id=claim.rollout.id, attempt_id=claim.attempt.id, turn_index=0)
            resources = store.resources.add({"model": "m"})
            self.ids = [run.id, run.name, step.id, group.id, validator.id, task.id, queued.id, claim.rollout.id,
                        claim.attempt.id, turn.id, resources.id, "seeded-worker", run.id[:6]]


class Database:
    """The server's database, read directly: every row of every table, as one digest."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)
        self.last: str | None = None  # the digest after the last request, when it is known

    def snapshot(self) -> str:
        if self.last is None:
            digest = hashlib.sha256()
            with self.engine.connect() as connection:
                for table in metadata.sorted_tables:
                    digest.update(table.name.encode())
                    digest.update(repr(sorted(map(repr, connection.execute(select(table)).all()))).encode())
            self.last = digest.hexdigest()
        return self.last


@pytest.fixture(scope="module")
def routes(server: Server) -> Routes:
    return Routes(httpx.get(server.base + "/openapi.json", timeout=30).json())


@pytest.fixture(scope="module")
def seeded(server: Server) -> Seeded:
    return Seeded(server)


@pytest.fixture(scope="module")
def database(server: Server, seeded: Seeded) -> Iterator[Database]:
    database = Database(server.url)
    yield database
    database.engine.dispose()


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base, timeout=120) as client:
        yield client


def request_for(data: st.DataObject, routes: Routes, seeded: Seeded) -> dict[str, Any]:
    """One generated request: a route of the schema, its path, query and body, each perhaps spoiled."""
    method, template, operation = data.draw(st.sampled_from(routes.operations), label="route")
    ids = st.sampled_from(seeded.ids) | NASTY_TEXT.filter(bool)
    path = re.sub(r"{([^}:]+)(:path)?}", lambda match: quote(
        data.draw(ids | st.just("latest"), label=match[1])[:URL_TEXT], safe="/" if match[2] else ""), template)
    params: list[tuple[str, str]] = []
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "query" and data.draw(st.booleans(), label=f"give {parameter['name']}"):
            value = data.draw(routes.values(parameter.get("schema", {})) | SCALARS, label=parameter["name"])
            params += [(parameter["name"], text(item)) for item in (value if isinstance(value, list) else [value])]
    if template.count("{") == 0 and method == "GET" and any(p["name"] == "limit" for p in
                                                            operation.get("parameters", [])):
        fields = routes.fields_of_listing(operation) or ["id"]
        names = st.sampled_from(fields) | NASTY_TEXT
        keys = st.builds(lambda field, op: f"{field}__{op}" if op else field, names,
                         st.sampled_from(["", *OPERATORS]) | NASTY_TEXT)
        params += data.draw(st.lists(st.tuples(keys.map(text), SCALARS.map(text)), max_size=3), label="filters")
        params += data.draw(st.lists(st.tuples(st.sampled_from(["sort", "order", "limit", "offset", "match"]),
                                               (names | NUMBERS).map(text)), max_size=2), label="window")
        if data.draw(st.booleans(), label="typed filters"):
            typed = data.draw(st.dictionaries(keys, ANYTHING, max_size=3) | ANYTHING, label="filters json")
            params.append(("filters", text(typed) if data.draw(st.booleans()) else text(typed)[:-1]))
    if template == "/api/v1/events":  # a valid stream stays open until its timeout: 0, unless the value is bad
        bad = [value for name, value in params if name == "timeout" and not is_number(value)]
        params = [(name, value) for name, value in params if name != "timeout"] + [("timeout", (bad or ["0"])[-1])]
    request: dict[str, Any] = {"method": method, "url": path, "params": params}
    body = operation.get("requestBody")
    if body is not None or data.draw(st.integers(0, 9), label="stray body") == 0:
        schema = (body or {}).get("content", {}).get("application/json", {}).get("schema", {})
        how = data.draw(st.sampled_from(["schema", "schema", "schema", "anything", "malformed", "form"]),
                        label="body")
        if how == "malformed":
            request["content"] = data.draw(MALFORMED, label="bytes")
            request["headers"] = {"content-type": "application/json"}
        elif how == "form":
            request["content"] = b"name=x&limit=1"
            request["headers"] = {"content-type": "application/x-www-form-urlencoded"}
        else:
            value = data.draw(routes.values(schema) if how == "schema" else ANYTHING, label="json")
            if template == "/api/v1/rollouts/wait" and isinstance(value, dict):
                value["timeout"] = 0  # a valid wait would hold the test for its whole timeout
            request["content"] = json.dumps(value).encode()
            request["headers"] = {"content-type": "application/json"}
    return request


def is_number(value: str) -> bool:
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def text(value: Any) -> str:
    """A value for a URL: as it is, or as JSON, cut to fit in one (httpx sends at most 64 KiB of query)."""
    return (value if isinstance(value, str) else json.dumps(value))[:URL_TEXT]


def check_answer(response: httpx.Response, request: dict[str, Any]) -> bool:
    """Whether the request was refused; fails the test on a 5xx or an error answer of another shape."""
    shown = f"{request['method']} {response.request.url} {request.get('content', b'')[:300]!r}"
    assert response.status_code < 500, f"{shown}\n-> {response.status_code} {response.text[:2000]}"
    if response.status_code < 400:
        return False
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"type", "message"}, f"{shown}\n-> {body}"
    assert body["error"]["type"] in ERROR_TYPES, f"{shown}\n-> {body}"
    assert isinstance(body["error"]["message"], str) and "Traceback" not in response.text
    return True


@BAD_INPUT
@given(data=st.data())
def test_generated_bad_requests_are_4xx_and_change_nothing(server, routes, database, seeded, http, data):
    request = request_for(data, routes, seeded)
    before = database.snapshot()
    response = http.request(**request)
    event(f"answered {response.status_code}")
    database.last = None  # unknown until read again
    if check_answer(response, request):
        assert database.snapshot() == before, f"refused but changed: {request['method']} {response.request.url}"


def test_the_generated_requests_cover_every_route(routes):
    """The routes the test draws from are the whole table: every path of the schema, with every method."""
    served = {(method, path) for method, path, _ in routes.operations}
    assert {(operation.method, "/api/v1" + re.sub(r"{([^}:]+):path}", r"{\1}", operation.path))
            for operation in rolloutdb.server.ROUTES} <= served
