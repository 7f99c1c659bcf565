"""The API layer every app's `api/` package builds on (NetBox's netbox/api/ is the model).

- errors: the error bodies of CONTRACT section 6, the exception -> answer table, the exception
  handler, the 404 view and ApiErrorMiddleware;
- pagination, parsers, json_types: the cursor pagination, the JSON parser, strict JSON types;
- client_address: the client's address, and the address as throttles count it (`address_key`);
- views, serializers, routers: `ResourceViewSet`, `StrictSerializer` and `resource()`, the base
  of every resource endpoint; db_routing: the replica reads and read-your-writes the viewset
  relies on (also the DATABASE_ROUTERS entry);
- permissions: the declarative scope-map check (`required_for`, `ScopeMapPermission`);
- validation: `refuse_fields`, for services refusing input by name.

Dependency direction: apps import api; api imports neither the apps nor config (config wires
api in, through settings, urls and middleware). What is specific to User Tokens stays in the
tokens app: `tokens.api.permissions.HasTokenPermissions` (the API's default permission class)
subclasses `ScopeMapPermission`, giving it the permission catalogue, the answer to a request
without credentials (recorded and counted by tokens.api.authentication) and the signals sent on a
refusal or a use. tests/test_layout.py checks the direction.
"""
