"""The base of the API's model serializers: input is refused, never silently ignored."""

from collections.abc import Mapping

from rest_framework import serializers

from api.json_types import wrong_types


class StrictSerializer(serializers.ModelSerializer):
    """Refuses any input field it does not accept, instead of silently ignoring it, and values
    of another JSON type than the field's (no 0 for "0"): what the OpenAPI description says."""

    refused_fields: frozenset[str] = frozenset()
    refused_message = "This field cannot be set through the API."
    unknown_fields_refused = True  # api.openapi: `additionalProperties: false`

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            errors = wrong_types(self, data)
            for name in data:
                if name in self.refused_fields:
                    errors[name] = [self.refused_message]
                elif name not in writable:
                    known = name in self.fields
                    errors[name] = ["This field is read-only." if known else "Unknown field."]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)
