"""/v1/schema opens in a browser tab, as JSON or YAML, and machine clients keep their types."""

import json

import pytest
import yaml

pytestmark = pytest.mark.django_db

# What Firefox and Chromium send when the address is typed into the bar.
FIREFOX = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
CHROMIUM = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
)
# Types a browser shows in the tab; anything else (application/yaml, vnd.oai...) it downloads.
DISPLAYED = {"text/plain", "application/json"}


def parse(response):
    if response["Content-Type"].split(";")[0] == "application/json":
        return json.loads(response.content)
    return yaml.safe_load(response.content)


@pytest.mark.parametrize("accept", [FIREFOX, CHROMIUM])
@pytest.mark.parametrize(
    ("query", "content_type"),
    [("", "text/plain"), ("?format=yaml", "text/plain"), ("?format=json", "application/json")],
)
def test_a_browser_is_given_a_type_it_displays(alpha_client, accept, query, content_type):
    response = alpha_client.get(f"/v1/schema{query}", HTTP_ACCEPT=accept)
    assert response.status_code == 200
    assert response["Content-Type"].split(";")[0] == content_type
    assert response["Content-Type"].split(";")[0] in DISPLAYED
    assert response["Content-Disposition"].startswith("inline")
    assert parse(response)["openapi"].startswith("3.")


def test_yaml_as_text_says_its_charset(alpha_client):
    response = alpha_client.get("/v1/schema", HTTP_ACCEPT=FIREFOX)
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert yaml.safe_load(response.content.decode("utf-8"))["info"]["title"]


def test_the_browser_and_the_machine_get_the_same_description(alpha_client):
    as_text = parse(alpha_client.get("/v1/schema", HTTP_ACCEPT=FIREFOX))
    as_json = parse(alpha_client.get("/v1/schema?format=json", HTTP_ACCEPT=FIREFOX))
    as_oai = yaml.safe_load(alpha_client.get("/v1/schema").content)
    assert as_text == as_json == as_oai


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("application/vnd.oai.openapi", "application/vnd.oai.openapi"),
        ("application/vnd.oai.openapi+json", "application/vnd.oai.openapi+json"),
        ("application/json", "application/json"),
        ("application/yaml", "application/yaml"),
        ("*/*", "application/vnd.oai.openapi"),
    ],
)
def test_machine_clients_keep_their_types(alpha_client, accept, content_type):
    response = alpha_client.get("/v1/schema", HTTP_ACCEPT=accept)
    assert response.status_code == 200
    assert response["Content-Type"].split(";")[0] == content_type
    assert parse(response)["paths"]
