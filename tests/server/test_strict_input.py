"""A request of a record's fields is checked by the store, as a Python call is: JSON values are taken as the types
JSON gives them (a string is no number, 1 is no flag), times are read from their ISO 8601 strings, and a refusal
is the store's own InvalidInputError, in its words, naming the field, with nothing written. Filters may travel
typed, as JSON (``filters=``), for the store to check the same way."""

from __future__ import annotations

import json

import pytest

from server.servers import error, ok, unique


@pytest.mark.parametrize(("fields", "said"), [
    ({"reward": "1.5"}, "invalid rollout: reward: Input should be a valid number, got str"),
    ({"success": 1}, "invalid rollout: success: Input should be a valid boolean, got int"),
    ({"step": 2.0}, "invalid rollout: step: Input should be a valid integer, got float"),
    ({"status": 1}, "status"),
    ({"metadata": "{}"}, "invalid rollout: metadata: Input should be a valid dictionary, got str"),
    ({"queued_at": 1767323045}, "queued_at: Input should be a valid datetime, got int"),
    ({"queued_at": "2026-01-02T03:04:05"}, "queued_at: Input should have timezone info"),
    ({"queued_at": "yesterday"}, "queued_at"),
    ({"colour": "red"}, "invalid rollout: colour: Extra inputs are not permitted"),
    ({"project_id": "other"}, "project_id is set by the store"),
])
def test_a_record_of_the_wrong_types_is_refused_in_the_stores_words(api, fields, said):
    before = ok(api.get("/rollouts", params={"limit": 0}))["total"]
    assert said in error(api.post("/rollouts", json=fields), 422, "InvalidInputError")
    assert ok(api.get("/rollouts", params={"limit": 0}))["total"] == before


def test_times_are_read_from_their_strings_and_kept(api):
    run = ok(api.post("/runs", json={"name": unique("timed"), "started_at": "2026-01-02T03:04:05+02:00"}), 201)
    assert ok(api.get(f"/runs/{run['id']}"))["started_at"] == "2026-01-02T01:04:05Z"
    found = ok(api.get("/runs", params={"filters": json.dumps({"id": run["id"],
                                                               "started_at__lte": "2026-01-02T01:04:05Z"})}))
    assert [item["id"] for item in found["items"]] == [run["id"]]


def test_a_body_that_is_not_an_object_of_fields_is_refused(api):
    assert "a JSON object of fields, got an array" in error(api.post("/runs", json=[{"name": "x"}]), 422,
                                                            "InvalidInputError")
    assert "spans are given as a list of mappings of fields, got int" in error(api.post("/spans", json=5), 422,
                                                                                "InvalidInputError")


def test_a_field_the_path_gives_cannot_be_given_again_in_the_body(api):
    run = ok(api.post("/runs", json={"name": unique("path")}), 201)
    other = ok(api.post("/runs", json={"name": unique("other")}), 201)
    said = error(api.patch(f"/runs/{run['id']}", json={"id": other["id"], "message": "changed"}), 422,
                 "InvalidInputError")
    assert "id: given by the path" in said
    assert ok(api.get(f"/runs/{run['id']}"))["message"] is None
    assert ok(api.get(f"/runs/{other['id']}"))["message"] is None


@pytest.mark.parametrize(("filters", "said"), [
    ({"step": "2"}, "filter 'step': value: Input should be a valid integer, got str"),
    ({"step__isnull": "yes"}, "filter 'step__isnull' takes True or False, got str"),
    ({"id__in": "x"}, "filter 'id__in' takes a list of values"),
    ({"colour": 1}, "cannot filter rollouts by 'colour'"),
    ({"id": "a\u0000b"}, "filter 'id': a string holds a NUL character"),
])
def test_typed_filters_are_checked_by_the_store(api, filters, said):
    assert said in error(api.get("/rollouts", params={"filters": json.dumps(filters)}), 422, "InvalidInputError")


# The deep list: deeper than orjson reads, in a URL within what uvicorn's h11 takes (16 KB; a longer one made the
# server close the connection with the request unread, and the client at times saw a reset instead of the answer).
@pytest.mark.parametrize("text", ["{", "[1]", '"step"', "NaN", "[" * 2_000 + "]" * 2_000])
def test_filters_that_are_no_json_object_are_refused(api, text):
    assert "query parameter 'filters'" in error(api.get("/runs", params={"filters": text}), 422,
                                                "InvalidInputError")


def test_a_route_keeps_its_own_defaults(api):
    """A claim without a limit takes one rollout, as the route says (the Python call has no default)."""
    tag = unique("claim")
    ok(api.post("/rollouts/enqueue", json=[{"input": tag}]), 201)
    claims = ok(api.post("/rollouts/dequeue", json={}))
    assert len(claims) == 1


def test_a_body_that_is_not_utf8_json_is_refused(api):
    name = unique("bytes")
    body = b'{"name": "' + name.encode() + b'\xff"}'
    error(api.post("/runs", content=body, headers={"content-type": "application/json"}), 400, "InvalidInputError")
    assert ok(api.get("/runs", params={"name__contains": name}))["total"] == 0


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/rollouts/dequeue", {"limit": "5"}, "body.limit: Input should be a valid integer"),
    ("/rollouts/dequeue", {"limit": 1.0}, "body.limit"),
    ("/rollouts/wait", {"rollout_ids": "abc", "timeout": 0}, "body.rollout_ids"),
    ("/purge", {"older_than": True}, "body.older_than"),
    ("/purge", {"keep_last": 0, "dry_run": 1}, "body.dry_run: Input should be a valid boolean"),
])
def test_other_bodies_take_json_values_as_json_types_them(api, path, body, field):
    """A body that is not a record's fields is read by its route's model, as strictly as the Python call takes
    its arguments: a string is no number, 1 is no flag, a float no count (durations, which JSON has no type for,
    are seconds or ISO 8601 text)."""
    waiting = ok(api.post("/rollouts/enqueue", json=[{"input": unique("strict")}]), 201)[0]
    assert field in error(api.post(path, json=body), 422, "InvalidInputError")
    assert ok(api.get(f"/rollouts/{waiting['id']}"))["status"] == "queuing"


def test_a_duration_is_seconds_or_iso_8601(api):
    for older_than in (3600, 0.5, "P7D", "PT1H"):
        assert set(ok(api.post("/purge", json={"older_than": older_than, "dry_run": True}))) >= {"rollouts", "spans"}


@pytest.mark.parametrize(("value", "said"), [
    ("1180591620717411303424", "attributes: Integer exceeds 64-bit range"),  # 2**70: a float to orjson
    ("NaN", "attributes.x: nan is not a JSON number"),  # not JSON to orjson, a float to the json module
])
def test_a_body_is_read_as_the_json_module_reads_it_where_orjson_would_differ(api, value, said):
    """The server reads bodies with orjson where it reads them the same (it is several times faster): a number or a
    constant orjson reads otherwise or not at all reaches the store as the json module reads it, and the store
    refuses it as it refuses it from a Python caller, with nothing written."""
    claim = ok(api.post("/rollouts/start", json={"input": unique("numbers")}), 201)
    span = json.dumps({"rollout_id": claim["rollout"]["id"], "attempt_id": claim["attempt"]["id"], "trace_id": "t",
                       "span_id": "s", "name": "n"})
    body = f'[{span[:-1]}, "attributes": {{"x": {value}}}}}]'
    assert said in error(api.post("/spans", content=body, headers={"Content-Type": "application/json"}), 422,
                         "InvalidInputError")
    assert ok(api.get("/spans", params={"rollout_id": claim["rollout"]["id"], "limit": 0}))["total"] == 0
