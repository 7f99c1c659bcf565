"""The OpenAPI description at /v1/schema and Swagger UI at /v1/docs (issue 8)."""

import json
import re

import pytest
import yaml
from django.contrib.staticfiles import finders
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.validation import validate_schema

from api import errors
from api.permissions import required_for
from tokens.catalogue import ALL_PERMISSIONS

pytestmark = pytest.mark.django_db

CONTRACT_ERRORS = {
    errors.INVALID_TOKEN: 401,
    errors.ACCESS_DENIED: 403,
    errors.INVALID_LICENSE: 403,
    errors.LICENSE_LIMIT_REACHED: 429,
    errors.TOO_MANY_REQUESTS: 429,
    errors.INVALID_REQUEST: 400,
    errors.NOT_FOUND: 404,
    errors.REQUEST_TOO_LARGE: 413,
    errors.SERVICE_UNAVAILABLE: 503,
}
TOKEN_FREE = {
    ("post", "/v1/auth/token"),
    ("post", "/v1/auth/refresh"),
    ("post", "/v1/licenses/validate"),
    ("post", "/v1/licenses/activate"),
    ("post", "/v1/licenses/deactivate"),
    ("post", "/v1/licenses/heartbeat"),
    ("post", "/v1/licenses/checkout"),
    ("get", "/v1/licenses/revocations"),
    ("get", "/v1/signing-keys"),
}
NOT_OPERATIONS = {"/v1/", "/v1/schema", "/v1/docs"}


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def api_routes():
    """(path template, view callback) of every route under /v1/ in the tenant urlconf."""

    def walk(patterns, prefix):
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and route.startswith("v1/"):
                yield (
                    "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route).replace("{pk}", "{id}"),
                    pattern.callback,
                )

    return [
        (path, callback)
        for path, callback in walk(get_resolver("config.urls").url_patterns, "")
        if "(" not in path
    ]


def view_for(callback, method):
    view = (getattr(callback, "view_class", None) or callback.cls)()
    actions = getattr(callback, "actions", None)
    if actions is not None:
        view.action = actions.get(method)
    return view


def methods_of(callback):
    actions = getattr(callback, "actions", None)
    if actions is not None:
        return set(actions) - {"head", "options"}  # DRF adds `head` to a GET route when served
    view_class = callback.view_class
    return {m for m in ("get", "post", "patch", "put", "delete") if hasattr(view_class, m)}


def test_served_without_a_token_as_yaml_and_json(alpha_client, beta_client):
    response = alpha_client.get("/v1/schema", HTTP_AUTHORIZATION="Bearer not-a-token")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    description = yaml.safe_load(response.content)
    assert description["openapi"].startswith("3.")
    as_json = beta_client.get("/v1/schema?format=json")
    assert as_json.status_code == 200 and json.loads(as_json.content) == description


def test_the_api_root_is_a_token_free_index_linking_docs_and_schema(alpha_client):
    response = alpha_client.get("/v1/", HTTP_AUTHORIZATION="Bearer not-a-token")
    assert response.status_code == 200
    assert response.json() == {
        "name": "Licensing platform API",
        "version": "1",
        "links": {"docs": "/v1/docs", "schema": "/v1/schema"},
    }
    for link in response.json()["links"].values():
        assert alpha_client.get(link).status_code == 200


@pytest.mark.parametrize("host", ["nobody.localhost", "localhost"])
def test_the_index_is_only_a_tenants(db, host):
    from django.test import Client

    response = Client(HTTP_HOST=host).get("/v1/")
    assert response.status_code == 404
    assert response.json() == {"error": "Not found"}


@pytest.mark.parametrize("path", ["/v1", "/v1/nothing", "/v1/licenses/nothing/here"])
def test_other_unknown_api_routes_still_answer_json_404(alpha_client, path):
    response = alpha_client.get(path)
    assert response.status_code == 404
    assert response.json() == {"error": "Not found"}


def test_the_admins_view_site_link_goes_to_the_api_docs(admin_client):
    page = admin_client.get("/admin/")
    assert page.status_code == 200
    assert 'href="/v1/docs"' in page.content.decode()


def test_the_licence_list_describes_its_expired_filter(schema):
    parameters = schema["paths"]["/v1/licenses"]["get"]["parameters"]
    (expired,) = [p for p in parameters if p["name"] == "expired"]
    assert expired["in"] == "query" and expired["schema"]["type"] == "boolean"


@pytest.mark.parametrize(
    ("query", "accept", "content_type"),
    [
        ("?format=json", None, "application/json"),
        ("", "application/json", "application/json"),
        ("", "application/vnd.oai.openapi+json", "application/vnd.oai.openapi+json"),
        ("?format=yaml", None, "application/vnd.oai.openapi"),
        ("", "application/yaml", "application/yaml"),
        ("", "text/html,application/xhtml+xml,*/*;q=0.8", "text/plain"),
    ],
)
def test_json_or_yaml_by_accept_or_format(alpha_client, query, accept, content_type):
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    response = alpha_client.get(f"/v1/schema{query}", **headers)
    assert response.status_code == 200
    assert response["Content-Type"].split(";")[0] == content_type
    if "json" in content_type:
        description = json.loads(response.content)
    else:
        description = yaml.safe_load(response.content)
    assert description["info"]["title"] == "Licensing platform API"


@pytest.mark.parametrize(("query", "accept"), [("?format=xml", None), ("", "application/xml")])
def test_a_format_it_does_not_have_is_a_json_error(alpha_client, query, accept):
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    response = alpha_client.get(f"/v1/schema{query}", **headers)
    assert response.status_code in (404, 406)
    assert response["Content-Type"] == "application/json" and "error" in response.json()


def test_the_access_denied_answer_describes_the_required_permissions_header(schema):
    response = schema["components"]["responses"]["AccessDeniedOrInvalidLicense"]
    assert "X-Required-Permissions" in response["headers"]


def test_it_is_a_valid_openapi_3_document(schema):
    validate_schema(schema)


def test_every_api_route_and_method_is_described(schema):
    described = {(method, path) for method, path, _ in operations(schema)}
    expected = {
        (method, path)
        for path, callback in api_routes()
        if path not in NOT_OPERATIONS
        for method in methods_of(callback)
    }
    assert described == expected


def test_each_operation_names_the_permissions_its_view_requires(schema):
    routes = dict(api_routes())
    for method, path, operation in operations(schema):
        view = view_for(routes[path], method)
        named = set(re.findall(r"`(\w+)` \(", operation["description"]))
        if (method, path) in TOKEN_FREE:
            assert "**No token needed.**" in operation["description"], path
            assert "bearerAuth" not in json.dumps(operation.get("security", [])), path
            continue
        assert named == set(required_for(view, method.upper()) or ()), (method, path)
        assert named <= ALL_PERMISSIONS
        assert operation["security"] == [{"bearerAuth": []}], (method, path)


def test_bearer_security_scheme(schema):
    assert schema["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": schema["components"]["securitySchemes"]["bearerAuth"]["description"],
    }


def test_every_contract_error_body_is_a_component(schema):
    components = schema["components"]["schemas"]
    messages = {
        component["properties"]["error"]["enum"][0]: name
        for name, component in components.items()
        if name.endswith("Error") and "error" in component.get("properties", {})
    }
    assert set(CONTRACT_ERRORS) <= set(messages)
    invalid_request = components[messages[errors.INVALID_REQUEST]]
    assert invalid_request["required"] == ["error", "details"]


def resolve_response(schema, response):
    ref = response.get("$ref")
    return schema["components"]["responses"][ref.rsplit("/", 1)[1]] if ref else response


def error_messages(schema, response) -> set[str]:
    body = resolve_response(schema, response)["content"]["application/json"]["schema"]
    refs = body.get("oneOf", [body])
    return {
        schema["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]["properties"]["error"][
            "enum"
        ][0]
        for ref in refs
    }


def test_errors_are_attached_where_they_can_occur(schema):
    for method, path, operation in operations(schema):
        responses = operation["responses"]
        label = f"{method.upper()} {path}"
        # Every operation: the tenant's licence (expired, limit), the database.
        assert errors.INVALID_LICENSE in error_messages(schema, responses["403"]), label
        assert errors.LICENSE_LIMIT_REACHED in error_messages(schema, responses["429"]), label
        assert error_messages(schema, responses["503"]) == {errors.SERVICE_UNAVAILABLE}, label
        if (method, path) not in TOKEN_FREE:
            assert error_messages(schema, responses["401"]) == {errors.INVALID_TOKEN}, label
        if "Required permission:** `" in operation["description"]:
            assert errors.ACCESS_DENIED in error_messages(schema, responses["403"]), label
        if method in ("post", "patch"):
            assert error_messages(schema, responses["400"]) == {errors.INVALID_REQUEST}, label
            assert error_messages(schema, responses["413"]) == {errors.REQUEST_TOO_LARGE}, label
        if "{id}" in path:
            assert error_messages(schema, responses["404"]) == {errors.NOT_FOUND}, label
    for path in (
        "/v1/auth/token",
        "/v1/auth/refresh",
        "/v1/licenses/validate",
        "/v1/licenses/activate",
        "/v1/licenses/deactivate",
        "/v1/licenses/heartbeat",
        "/v1/licenses/checkout",
    ):
        guessing = schema["paths"][path]["post"]["responses"]["429"]
        assert errors.TOO_MANY_REQUESTS in error_messages(schema, guessing)
        assert "Retry-After" in resolve_response(schema, guessing)["headers"]
    assert error_messages(
        schema, schema["paths"]["/v1/auth/token"]["post"]["responses"]["401"]
    ) == {errors.INVALID_TOKEN}


def test_list_filters_are_documented(schema):
    licences = {p["name"]: p for p in schema["paths"]["/v1/licenses"]["get"]["parameters"]}
    assert {"status", "product", "customer", "user", "cursor", "limit"} <= set(licences)
    assert licences["status"]["schema"]["enum"] == ["active", "suspended", "revoked"]
    assert licences["limit"]["schema"] == {"type": "integer", "minimum": 1}


def test_swagger_ui_uses_only_local_assets(alpha_client):
    page = alpha_client.get("/v1/docs", HTTP_AUTHORIZATION="Bearer not-a-token")
    assert page.status_code == 200
    html = page.content.decode()
    assert "swagger-ui" in html.lower()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets
    # Swagger UI's start script is a file of its own (the Content-Security-Policy allows no
    # inline script); everything else comes from static/.
    start_script = "/v1/docs?script="
    assert start_script in assets
    for asset in set(assets) - {start_script}:
        assert asset.startswith("/static/"), asset  # no CDN
        assert finders.find(asset.removeprefix("/static/")), f"{asset} is not served"
    assert not re.search(r"https?://(?!alpha\.localhost)", html.replace("http://www.w3.org", ""))
    script = alpha_client.get(start_script).content.decode()
    assert "/v1/schema" in script
    assert not re.search(r"https?://(?!alpha\.localhost)", script)


def test_not_served_on_the_public_domain(db):
    from django.test import Client

    assert Client(HTTP_HOST="localhost").get("/v1/schema").status_code == 404


SIGNED = {
    ("post", "/v1/licenses/validate"),
    ("post", "/v1/licenses/activate"),
    ("post", "/v1/licenses/deactivate"),
    ("post", "/v1/licenses/heartbeat"),
    ("post", "/v1/licenses/checkout"),
    ("get", "/v1/licenses/revocations"),
    ("get", "/v1/signing-keys"),
}


def test_signed_operations_describe_their_signature_headers_on_every_answer(schema):
    for method, path, operation in operations(schema):
        for status, response in operation["responses"].items():
            headers = resolve_response(schema, response).get("headers", {})
            signed = {"Content-Digest", "Signature-Input", "Signature"} <= set(headers)
            assert signed == ((method, path) in SIGNED), (method, path, status)
