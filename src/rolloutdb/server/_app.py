"""The FastAPI application: one Store, opened when the app is made, and the routes of ``_routes`` mounted on it.

Store calls are synchronous: every route is a plain function, which FastAPI runs in its thread pool, so the
event loop never waits for the database. The pool is bounded (``threads``), and so is every request body."""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import operator
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import anyio.to_thread
import orjson
from fastapi import Body, Depends, FastAPI, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPBearer
from pydantic import BaseModel, SkipValidation, TypeAdapter, ValidationError

from .. import __version__
from ..config import (DEFAULT_PROJECT, MAX_ARTIFACT_BYTES, SERVER_MAX_BODY_BYTES, SERVER_THREADS,
                      SERVER_TOKEN_RECHECK_SECONDS, SERVER_WRITES_IN_FLIGHT)
from ..dashboard import mount_dashboard
from ..errors import InvalidInputError, StoreUnavailableError
from ..records import Artifact, Record
from ..store import AGENT_LIGHTNING_OPTIONS, Store
from ..store.base import OPERATORS
from ..store.together import Batch, shared_by, split
from ._artifacts import CONTENT_PATH, UPLOAD_PATH, download, upload
from ._events import EventStreams
from ._json import JSONRoute
from ._errors import RETRY_AFTER_SECONDS, InternalErrors, error_response, install_error_handlers
from ._limits import BodyLimit, WriteLimit
from ._otlp import OPENAPI as OTLP_OPENAPI
from ._otlp import TRACES_PATH, receive_traces
from ._operations import (PAGE_WINDOW, PREFER_MINIMAL, TYPED_FILTERS, Operation, Page, field_type, read_batch_times,
                          read_times)
from ._projects import PROJECT_HEADER, Authentication, ProjectStores
from ._routes import ROUTES

API_PREFIX = "/api/v1"


def create_app(url: str | None = None, *, project: str = DEFAULT_PROJECT, max_body_bytes: int = SERVER_MAX_BODY_BYTES,
               threads: int = SERVER_THREADS, max_writes_in_flight: int = SERVER_WRITES_IN_FLIGHT,
               all_projects: bool = False, auth: bool = False, agent_lightning: bool = False,
               token_recheck_seconds: float = SERVER_TOKEN_RECHECK_SECONDS,
               max_artifact_bytes: int = MAX_ARTIFACT_BYTES) -> FastAPI:
    """The REST server of the database at ``url`` (found as ``rolloutdb.connect`` finds it), serving ``project``.

    The store is opened (and the database created and migrated, if need be) here, once; the app closes it when
    it shuts down. Request bodies over ``max_body_bytes`` are refused (413); at most ``threads`` requests use
    the store at once, the others wait their turn; a write beyond ``max_writes_in_flight`` is answered 503 with
    Retry-After. A request works on ``project``; with ``all_projects``, on the project its ``RolloutDB-Project``
    header names; with ``auth``, on its API token's project, if the token's role allows the route (see
    ``_projects``); an open event stream checks its token again every ``token_recheck_seconds``.
    ``agent_lightning``: the stores make ids in Agent Lightning's shapes and let rollouts name resources not
    stored (``AGENT_LIGHTNING_OPTIONS``). ``max_artifact_bytes``: the largest artifact a request may store."""
    stores = ProjectStores(url, project, all_projects=all_projects, auth=auth,
                           store_options={**(AGENT_LIGHTNING_OPTIONS if agent_lightning else {}),
                                          "max_artifact_bytes": max_artifact_bytes})
    streams = EventStreams(stores, recheck_seconds=token_recheck_seconds)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        try:
            yield
        finally:
            streams.close()
            stores.close()

    app = FastAPI(title="RolloutDB", version=__version__, lifespan=lifespan, redirect_slashes=False,
                  description="The experience store for agent RL: "
                              + ("each request works on its API token's project" if auth else f"project {project!r}")
                              + '. Errors answer `{"error": {"type": "<exception class name>", "message": "..."}}`.')
    app.state.store = stores.default
    install_error_handlers(app)
    # An artifact's content streams to the store, which holds it to its own limit (max_artifact_bytes).
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes, unlimited=("POST", API_PREFIX + UPLOAD_PATH))
    app.add_middleware(WriteLimit, max_in_flight=max_writes_in_flight)
    app.add_middleware(Authentication, stores=stores, prefix=API_PREFIX)  # before the limits: strangers wait for none
    app.add_middleware(InternalErrors)  # the outermost of ours: it sees what the others raise
    app.add_api_route("/healthz", healthz, methods=["GET"], summary="The server process is up")
    app.add_api_route("/readyz", functools.partial(readyz, stores.default), methods=["GET"],
                      summary="The database answers (200), or not (503)")
    # With --auth, /docs offers to send a token (the check itself is ``Authentication``'s, before any route).
    documented_auth = [Depends(HTTPBearer(auto_error=False, description="An API token: `rolloutdb tokens create`"))]
    app.add_api_route(TRACES_PATH, functools.partial(receive_traces, stores, max_body_bytes), methods=["POST"],
                      summary="OTLP/HTTP trace export (protobuf or JSON, gzip): spans stored on the rollout and "
                              "attempt their rolloutdb.rollout_id / rolloutdb.attempt_id attributes name",
                      tags=["opentelemetry"], dependencies=documented_auth if auth else [],
                      openapi_extra=OTLP_OPENAPI, operation_id="otlp_traces",
                      description="Spans that name no known rollout are not stored: the answer's partial_success "
                                  "counts them and says why (OTLP's ExportTraceServiceResponse).")
    # The API's routes go straight on the app's router, their prefix written out: an included router (FastAPI
    # 0.165) is matched by scanning its routes twice per request (a rollout's three requests: 0.75 ms of routing
    # CPU, against 0.39 ms straight on the app).
    def api_route(path: str, endpoint: Callable[..., Any], **options: Any) -> None:
        app.router.add_api_route(API_PREFIX + path, endpoint, route_class_override=JSONRoute,
                                 dependencies=documented_auth if auth else [], **options)

    api_route("/project", functools.partial(project_of, stores), methods=["GET"],
              summary=f"The project a request works on (its id and name; id_prefixes: the shapes of the "
                      f"ids its store makes; role: its API token's role, null without --auth): its API "
                      f"token's, or see the {PROJECT_HEADER} header")
    api_route("/events", streams.stream, methods=["GET"], response_class=StreamingResponse,
              summary="Live events (Server-Sent Events): job progress and logs, status changes, queue "
                      "counts; resumable with Last-Event-ID", tags=["events"], operation_id="events.stream",
              responses={200: {"content": {"text/event-stream": {}}}})
    api_route(UPLOAD_PATH, upload(stores), methods=["POST"], response_model=Artifact, status_code=201,
              summary="Store an artifact: the body is its content, streamed to the store (its limit: "
                      "max_artifact_bytes); linked from turn_id, step_id or rollout_id with role, if given",
              tags=["artifacts"], operation_id="artifacts.put",
              openapi_extra={"requestBody": {"content": {"application/octet-stream": {}}}})
    api_route(CONTENT_PATH, download(stores), methods=["GET"], response_class=StreamingResponse,
              summary="An artifact's content, streamed, with its media type (as an attachment unless an "
                      "image; nosniff)", tags=["artifacts"], operation_id="artifacts.open",
              responses={200: {"content": {"application/octet-stream": {}}}})
    for operation in ROUTES:
        api_route(operation.path, endpoint(operation, stores), methods=[operation.method],
                  response_model=operation.response, status_code=operation.status_code,
                  summary=operation.summary, operation_id=operation.call,
                  tags=[operation.call.partition(".")[0] if "." in operation.call else "store"])
    mount_dashboard(app)  # last: its files answer every path no route above takes
    return app


async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def readyz(store: Store) -> Response:
    try:
        store.ping()
    except StoreUnavailableError as exc:
        return error_response(503, type(exc).__name__, str(exc), {"Retry-After": str(RETRY_AFTER_SECONDS)})
    return Response('{"status":"ok"}', media_type="application/json")


def project_of(stores: ProjectStores, request: Request) -> dict[str, Any]:
    with stores.store(request, "reader") as store:
        # id_prefixes: the shapes of the ids the store makes, for the ids a remote client makes (see the client)
        # max_artifact_bytes: what the store takes, for a remote client to refuse more before sending it
        # role: what the dashboard offers (a reader sees no control buttons; the routes refuse them anyway)
        return {"id": store.project_id, "name": store.project, "id_prefixes": store.id_prefixes,
                "max_artifact_bytes": store.artifacts.max_bytes, "role": stores.role(request)}


def endpoint(operation: Operation, stores: ProjectStores) -> Callable[..., Any]:
    """A function FastAPI can mount for ``operation``: its signature declares the path parameters, the query
    model and the body, so FastAPI checks them and documents them; its body makes the Store call on the store
    of the request's project."""
    parameters = [inspect.Parameter("request", inspect.Parameter.KEYWORD_ONLY, annotation=Request)]
    parameters += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[str, Path()])
                   for name in operation.path_parameters]
    if operation.query is not None:
        parameters.append(inspect.Parameter("query_parameters", inspect.Parameter.KEYWORD_ONLY,
                                            annotation=Annotated[operation.query, Query()]))
    if operation.body is not None:  # a record's fields: documented, and left to the store to check
        body = SkipValidation[operation.body] if operation.fields is not None else operation.body
        parameters.append(inspect.Parameter("body", inspect.Parameter.KEYWORD_ONLY,
                                            annotation=Annotated[body, Body()]))

    def run(*, request: Request, query_parameters: BaseModel | None = None, body: Any = None, **path: str) -> Any:
        with stores.store(request, operation.required_role) as store:
            call = functools.reduce(getattr, operation.call.split("."), store)
            grouped = GROUPED.get(operation.call) if store.backend in GROUPED_BACKENDS else None
            places = None
            # Ids made here tell the rows of the answer apart: by place (return=minimal), or by caller (merged).
            if operation.made and isinstance(body, list) and (grouped is not None or prefers_minimal(request)):
                body, places = with_ids(store, call.__self__.noun, body)
            if grouped is None:
                result = make_call(call, request, query_parameters, body, path)
            else:
                arguments = arguments_of(query_parameters, body, path)
                result = stores.writes(store).run(functools.partial(call, **arguments),
                                                  grouped(store, arguments, places))
            if places is not None and prefers_minimal(request):
                return answer_made(operation, result, places)
            return answer(operation, result)

    def arguments_of(query_parameters: BaseModel | None, body: Any, path: dict[str, str]) -> dict[str, Any]:
        arguments = {**path, **given(query_parameters)}
        body = record_fields(operation, body) if operation.fields is not None else given(body)
        if operation.body_argument is not None:
            arguments[operation.body_argument] = body
        else:
            arguments.update(body)
        return arguments

    def make_call(call: Callable[..., Any], request: Request, query_parameters: BaseModel | None, body: Any,
                  path: dict[str, str]) -> Any:
        arguments = arguments_of(query_parameters, body, path)
        typed = arguments.pop(TYPED_FILTERS, None)
        if operation.listing is None:
            return call(**arguments)
        owner = call.__self__
        filters = filters_from(request, operation.listing, declared=set(type(query_parameters).model_fields),
                               filterable=getattr(owner, "filterable", frozenset(operation.listing.model_fields)))
        filters.update(typed_filters(operation.listing, typed))
        counted = {name: value for name, value in arguments.items() if name not in PAGE_WINDOW}
        return Page(items=call(**arguments, **filters), total=owner.count(**counted, **filters),
                    limit=query_parameters.limit, offset=query_parameters.offset)

    run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    run.__name__ = operation.call.replace(".", "_")
    return run


def span_batch(store: Store, arguments: dict[str, Any], places: dict[str, int] | None) -> Batch | None:
    """``spans.add_many``'s spans, to merge with other requests' of the same ``unique_span_ids``; each request gets
    back its own by id (None, not merged: ids given that do not tell its spans apart)."""
    if places is None:
        return None
    unique_span_ids = arguments.get("unique_span_ids", False)
    return Batch(("spans", unique_span_ids), arguments["new_spans"],
                 functools.partial(store.spans.add_many, unique_span_ids=unique_span_ids), SPANS_BY_ID)


def attempt_update_batch(store: Store, arguments: dict[str, Any], places: None) -> Batch:
    """``attempts.update``'s change, to merge into one ``attempts.update_many`` with others of the same reason."""
    reason = arguments.get("reason")
    update = {name: value for name, value in arguments.items() if name != "reason"}
    return Batch(("attempt updates", reason), [update], functools.partial(store.attempts.update_many, reason=reason),
                 one_each)


def one_each(result: list[Any], parts: list[list[Any]]) -> list[Any]:
    """A ``Batch.share`` for writes of one item each: each gets its item's result, as its call alone returns it."""
    return [share for [share] in split(result, parts)]


# SQLite's writes queue on its one writing connection and commit cheaply: grouped, the server's rollout cycle
# measured 10% slower there; on PostgreSQL, faster (its commits and round trips shared).
GROUPED_BACKENDS = frozenset({"postgresql"})
SPANS_BY_ID = shared_by(operator.attrgetter("id"), operator.itemgetter("id"))
# The writes that run together with the other requests' writes of their project (``ProjectStores.writes``): the
# Batch that merges them into one store call with others, or None (grouped, in one transaction, but not merged).
GROUPED: dict[str, Callable[[Store, dict[str, Any], dict[str, int] | None], Batch | None]] = {
    "rollouts.dequeue_many": lambda store, arguments, places: None,
    "spans.add_many": span_batch,
    "attempts.update": attempt_update_batch,
}


def prefers_minimal(request: Request) -> bool:
    return any(preference.strip() == PREFER_MINIMAL
               for preference in ",".join(request.headers.getlist("prefer")).split(","))


def with_ids(store: Store, noun: str, items: list[Any]) -> tuple[list[Any], dict[str, int] | None]:
    """A batch of rows (of ``noun``) to write, each with an id (made as the store would make it, where an item has
    none), and the place of each id in the batch: None (and the batch as it was) when the ids given do not tell
    every item apart."""
    given = [item["id"] for item in items if isinstance(item, dict) and "id" in item]
    if not all(isinstance(item, dict) for item in items) or not all(type(id) is str for id in given) \
            or len(set(given)) < len(given):
        return items, None
    made = iter(store.new_ids(noun, len(items) - len(given)))
    items = [item if "id" in item else {"id": next(made), **item} for item in items]
    places = {item["id"]: place for place, item in enumerate(items)}
    return items, places


def answer_made(operation: Operation, records: list[Record], places: dict[str, int]) -> Response:
    """The answer to a request that prefers ``return=minimal`` (see ``PREFER_MINIMAL``): each record's place in the
    request and the values the store made of it (``Operation.made``)."""
    values = operator.attrgetter(*operation.made, "id")  # a tuple however few fields are made; the id last, unused
    made = {"made": operation.made, "rows": [[places[record.id], *values(record)[:-1]] for record in records]}
    return Response(orjson.dumps(made, option=orjson.OPT_UTC_Z),  # times as the full answer writes them
                    status_code=operation.status_code, media_type="application/json",
                    headers={"Preference-Applied": PREFER_MINIMAL})


def answer(operation: Operation, result: Any) -> Response:
    """The route's answer to what its call returned: checked and written as JSON here, in the thread that made the
    call, as FastAPI would check and write it after another hop to a thread (the route's response model)."""
    if operation.response is None:
        return Response(status_code=204)
    adapter = _adapter(operation.response)
    return Response(adapter.dump_json(adapter.validate_python(result, from_attributes=True)),
                    status_code=operation.status_code, media_type="application/json")


def given(value: Any) -> Any:
    """What the request gave, as the Store call takes it: models as dicts of their fields, those left out at the
    route's defaults (the call's own, but where the call has none, as a claim's limit, or the route bounds it, as
    a wait's timeout), lists item by item."""
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, list):
        if value and all(type(item) is type(value[0]) for item in value) and isinstance(value[0], BaseModel):
            # A batch (of spans, say) in one call rather than a call per item: the same dicts, faster.
            return _adapter(list[type(value[0])]).dump_python(value)
        return [given(item) for item in value]
    return {} if value is None else value


def record_fields(operation: Operation, body: Any) -> Any:
    """A body of a record's fields (or a list of them) as JSON gave it, for the store to check, with its times read
    as times. Only what would not reach the store as a field is refused here: a body that is no JSON object
    (a Python call takes fields by name), and a field that the path gives already."""
    if operation.body_argument is not None:
        return read_batch_times(operation.fields, body) if isinstance(body, list) else body
    if not isinstance(body, dict):
        raise InvalidInputError(f"the body of {operation.method} {API_PREFIX}{operation.path} is a JSON object of "
                                f"fields, got {json_type(body)}")
    given_twice = sorted(set(operation.path_parameters) & set(body))
    if given_twice:
        raise InvalidInputError(f"{', '.join(given_twice)}: given by the path, and cannot be given in the body too")
    return read_times(operation.fields, body)


def json_type(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def typed_filters(record: type[Record], text: str | None) -> dict[str, Any]:
    """The filters of the ``filters`` query parameter: a JSON object, each value as JSON types it (times read as
    times), for the store to check as it checks a Python caller's filters."""
    if text is None:
        return {}
    try:
        filters = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise InvalidInputError(f"query parameter {TYPED_FILTERS!r} is not JSON: {exc}") from None
    if not isinstance(filters, dict):
        raise InvalidInputError(f"query parameter {TYPED_FILTERS!r} is a JSON object of filters, got "
                                f"{json_type(filters)}")
    return read_times(record, filters)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def filters_from(request: Request, record: type[Record], declared: set[str],
                 filterable: frozenset[str]) -> dict[str, Any]:
    """The listing's filters from the query string: ``field=value``, ``field__op=value``, a field given more than
    once for any of its values; each value read as the record's field holds it. What the store refuses itself —
    a field it does not filter by, an unknown operator, an unknown status — is left to it as given, so that it
    names the allowed ones, in its own words, on every backend."""
    filters: dict[str, Any] = {}
    for key in dict.fromkeys(request.query_params.keys()):
        if key in declared:
            continue
        values = request.query_params.getlist(key)
        field, _, operator = key.partition("__")
        info = record.model_fields.get(field)
        typed = info is not None and field in filterable and field != "status" and operator in ("", *OPERATORS)
        kind: Any = {"isnull": bool, "contains": str}.get(operator, field_type(info) if typed else str)
        many = operator == "in" or len(values) > 1
        try:
            filters[key] = _adapter(list[kind] if many else kind).validate_python(values if many else values[0])
        except ValidationError as exc:
            problems = "; ".join(error["msg"] for error in exc.errors(include_url=False))
            raise InvalidInputError(f"query parameter {key!r}: {problems}") from None
    return filters


@functools.lru_cache(maxsize=None)
def _adapter(kind: Any) -> TypeAdapter[Any]:
    return TypeAdapter(kind)
