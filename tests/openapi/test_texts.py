"""What a new user reads in /v1/schema: every operation has a one-line summary, a description
written for users (not a view's docstring), and request and answer examples that fit its schema."""

import inspect

import pytest

from tests.openapi.test_schema import api_routes, methods_of, operations

pytestmark = pytest.mark.django_db

MIN_DESCRIPTION = 120  # characters before the permission note


def own_text(operation) -> str:
    """The description without the permission note the code adds as its last paragraph."""
    return operation["description"].rsplit("\n\n", 1)[0]


def docstrings() -> dict:
    """(method, path) -> the docstrings of the view class and of its handler for that method."""
    found = {}
    for path, callback in api_routes():
        view_class = getattr(callback, "view_class", None) or callback.cls
        actions = getattr(callback, "actions", None) or {}
        for method in methods_of(callback):
            handler = getattr(view_class, actions.get(method, method), None)
            found[(method, path)] = [
                doc for doc in (inspect.getdoc(view_class), inspect.getdoc(handler)) if doc
            ]
    return found


def resolve(schema, node):
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def assert_fits(schema, body_schema, value, where):
    """The example's fields are the schema's, with every required one (one level deep)."""
    body_schema = resolve(schema, body_schema)
    if "oneOf" in body_schema:
        variants = [resolve(schema, variant) for variant in body_schema["oneOf"]]
        assert any(set(value) <= set(v.get("properties", {})) for v in variants), where
        return
    properties = body_schema.get("properties", {})
    assert set(value) <= set(properties), (where, set(value) - set(properties))
    assert set(body_schema.get("required", [])) <= set(value), where


def test_every_operation_has_a_one_line_summary(schema):
    summaries = []
    for method, path, operation in operations(schema):
        summary = operation.get("summary", "")
        assert summary and "\n" not in summary and len(summary) <= 60, (method, path, summary)
        assert not summary.endswith("."), (method, path)
        summaries.append(summary)
    assert len(summaries) >= 40


def test_every_description_is_written_for_users_not_a_code_comment(schema):
    docs = docstrings()
    for method, path, operation in operations(schema):
        text = own_text(operation)
        assert len(text) >= MIN_DESCRIPTION, (method, path, text)
        for doc in docs.get((method, path), []):
            first_line = doc.splitlines()[0]
            assert first_line not in text, (method, path, first_line)
        assert "`filters` maps" not in text and "factory" not in text, (method, path)
        assert "Error" in text or "error" in text, (method, path)
        note = operation["description"].rsplit("\n\n", 1)[1]
        assert note.startswith(("**No token needed.**", "**Required permission:**")), note


def test_every_body_has_an_example_that_fits_its_schema(schema):
    for method, path, operation in operations(schema):
        where = (method, path)
        request = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if request is not None:
            examples = request.get("examples")
            assert examples, where
            for example in examples.values():
                assert_fits(schema, request["schema"], example["value"], where)
        answers = [
            response["content"]["application/json"]
            for status, response in operation["responses"].items()
            if status.startswith("2") and "content" in response
        ]
        if answers:
            assert answers[0].get("examples"), where
            for example in answers[0]["examples"].values():
                assert_fits(schema, answers[0]["schema"], example["value"], where)


def test_bodiless_operations_are_deletes_and_deactivations(schema):
    bodiless = {
        (method, path)
        for method, path, operation in operations(schema)
        if "requestBody" not in operation
        and not any(
            status.startswith("2") and "content" in response
            for status, response in operation["responses"].items()
        )
    }
    assert all(method == "delete" for method, _path in bodiless), bodiless


def test_license_keys_in_examples_have_the_service_format(schema):
    import re

    request = schema["paths"]["/v1/licenses/validate"]["post"]["requestBody"]["content"]
    key = request["application/json"]["examples"]["example"]["value"]["key"]
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{5}(-[0-9A-HJKMNP-TV-Z]{5}){4}", key)


def test_the_cursor_example_is_this_apis_url(schema):
    paginated = {
        name: component
        for name, component in schema["components"]["schemas"].items()
        if name.startswith("Paginated")
    }
    assert paginated
    for component in paginated.values():
        example = component["properties"]["next"]["example"]
        assert example.startswith("https://") and "/v1/licenses?cursor=" in example
        assert "api.example.org" not in example
    listed = schema["paths"]["/v1/licenses"]["get"]["responses"]["200"]["content"]
    page = listed["application/json"]["examples"]["example"]["value"]
    assert page["next"].split("?")[0].endswith("/v1/licenses")
    assert "cursor=" in page["next"]
