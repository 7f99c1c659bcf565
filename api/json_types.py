"""JSON types, strictly: DRF turns 0 into "0" for a text field and accepts 1 or "true" for a
boolean; the API refuses what its OpenAPI description does not allow (a 400 with the reason)."""

from collections.abc import Mapping

from rest_framework import fields, relations, serializers

STRING = (str,)
MESSAGES = {
    "string": "Must be a string.",
    "boolean": "Must be true or false.",
    "integer": "Must be a whole number.",
    "number": "Must be a number.",
    "array": "Must be a list.",
    "object": "Must be an object.",
}


def expected_type(field) -> str | None:
    """The JSON type a writable field accepts, or None when any is fine (JSONField, ...)."""
    if isinstance(field, serializers.BaseSerializer):
        return "array" if isinstance(field, serializers.ListSerializer) else "object"
    if isinstance(
        field, (fields.ListField, relations.ManyRelatedField, fields.MultipleChoiceField)
    ):
        return "array"
    if isinstance(field, (fields.DictField, fields.HStoreField)):
        return "object"
    if isinstance(field, fields.BooleanField):
        return "boolean"
    if isinstance(field, fields.IntegerField):
        return "integer"
    if isinstance(field, fields.FloatField):
        return "number"
    if isinstance(field, relations.PrimaryKeyRelatedField):
        return "integer"
    if isinstance(field, fields.ChoiceField):
        keys = list(field.choices)
        return "string" if keys and all(isinstance(key, str) for key in keys) else None
    if isinstance(
        field,
        (
            fields.CharField,
            fields.DateTimeField,
            fields.DateField,
            fields.TimeField,
            fields.DurationField,
            fields.UUIDField,
        ),
    ):
        return "string"
    return None


def is_of(value, json_type: str) -> bool:
    if json_type == "string":
        return isinstance(value, str)
    if json_type == "boolean":
        return isinstance(value, bool)
    if json_type == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if json_type == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if json_type == "array":
        return isinstance(value, list)
    if json_type == "object":
        return isinstance(value, Mapping)
    return True


def type_errors(field, value):
    """The messages for `value` given to `field` (and, for lists, to its items); [] if fine."""
    if value is None:
        return []  # allow_null decides
    json_type = expected_type(field)
    if json_type is not None and not is_of(value, json_type):
        return [MESSAGES[json_type]]
    child = getattr(field, "child", None) or getattr(field, "child_relation", None)
    if json_type == "array" and child is not None:
        for item in value:
            item_errors = type_errors(child, item)
            if item_errors:
                return [f"Each item: {item_errors[0]}"]
    return []


def wrong_types(serializer, data) -> dict[str, list[str]]:
    """{field: [message]} for every writable field of `serializer` given a value of another
    JSON type than its OpenAPI description says."""
    if not isinstance(data, Mapping):
        return {}
    errors = {}
    for name, field in serializer.fields.items():
        if field.read_only or name not in data:
            continue
        messages = type_errors(field, data[name])
        if messages:
            errors[name] = messages
    return errors
