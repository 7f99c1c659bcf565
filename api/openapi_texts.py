"""What every operation's OpenAPI text is made of: the demo tenant's values, and the builders the
apps' `api/openapi.py` modules decorate their views with (summary, description and examples per
operation). Descriptions say what an operation does and its main errors; the permission it needs
is added from the code (api.openapi.ApiAutoSchema). Example values are the demo tenant's
(licensing/sample_data.py) and this service's key format.

No app is imported here: the apps import this module.
"""

from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view

TENANT_URL = "https://acme.licensing.example"
WHEN = "2026-12-02T09:30:00Z"
CURSOR = "cD0yMDI2LTEyLTAyKzA5JTNBMzAlM0EwMCUyQjAwJTNBMDA"

AUTH_ERRORS = "401 without a valid access token, 403 `Access denied` without the permission"

NOTHING = object()  # an operation without this example (None is an example value)


def page(path: str, item: dict) -> dict:
    return {"next": f"{TENANT_URL}{path}?cursor={CURSOR}", "previous": None, "results": [item]}


def documented(
    summary: str,
    description: str,
    request_example=NOTHING,
    response_example=NOTHING,
    status: int = 200,
    **schema,
):
    """extend_schema with an operation's texts and its examples (the response example goes to
    `status`); `schema` are further extend_schema arguments (request and response bodies)."""
    examples = []
    if request_example is not NOTHING:
        examples.append(OpenApiExample("example", value=request_example, request_only=True))
    if response_example is not NOTHING:
        examples.append(
            OpenApiExample(
                "example", value=response_example, response_only=True, status_codes=[status]
            )
        )
    return extend_schema(summary=summary, description=description, examples=examples, **schema)


def resource(
    path: str,
    noun: str,
    plural: str,
    about: str,
    item: dict,
    create: dict | None = None,
    change: dict | None = None,
    created: dict | None = None,
    **actions,
):
    """Class decorator of a list/detail resource viewset: the texts and examples of the actions it
    has (`about` says what the resource is, `item` is an example object, `create` and `change`
    example request bodies, `created` what a create answer adds to `item`); `actions` are its
    further actions' extend_schema."""

    def decorate(view):
        operations = resource_operations(path, noun, plural, about, item, create, change, created)
        return extend_schema_view(
            **{name: schema for name, schema in operations.items() if hasattr(view, name)},
            **actions,
        )(view)

    return decorate


def resource_operations(path, noun, plural, about, item, create, change, created) -> dict:
    """Each action's extend_schema of a resource (see `resource`)."""
    effect = (
        "Deactivates the machine (its slot is freed at once; not counted against the licence's "
        "churn budget) and answers 204."
        if noun == "machine"
        else f"Deletes the {noun} and answers 204 without a body."
    )
    return {
        "list": documented(
            f"List {plural}",
            f"One page of the tenant's {plural}, oldest first (by `id`), with the filters below. "
            f"{about} Follow the `next` URL, which carries a cursor, for the next page; `limit` "
            f"sets the page size (at most 500). Errors: 400 for a bad filter or `limit`, 404 for "
            f"an unknown or expired cursor, {AUTH_ERRORS}.",
            response_example=page(path, item),
        ),
        "retrieve": documented(
            f"Get a {noun}",
            f"One {noun} by its `id`. {about} Errors: 404 if no such {noun} exists in this "
            f"tenant, {AUTH_ERRORS}.",
            response_example=item,
        ),
        "create": documented(
            f"Create a {noun}",
            f"Creates a {noun} and answers 201 with it. {about} Errors: 400 with the failing "
            f"fields in `details`, also for a repeated unique value or an unknown related id; "
            f"{AUTH_ERRORS}.",
            request_example=create,
            response_example={**item, **(created or {})},
            status=201,
        ),
        "partial_update": documented(
            f"Change a {noun}",
            f"Changes only the fields sent and answers the whole {noun}. {about} Errors: 400 with "
            f"the failing fields in `details`, 404 if no such {noun}, {AUTH_ERRORS}.",
            request_example=change,
            response_example={**item, **(change or {})},
        ),
        "destroy": documented(
            f"{'Deactivate' if noun == 'machine' else 'Delete'} a {noun}",
            f"{effect} {about} Errors: 404 if no such {noun}, {AUTH_ERRORS}.",
        ),
    }
