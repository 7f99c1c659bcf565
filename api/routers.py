"""The URLs of a resource endpoint (api.views.ResourceViewSet)."""

from django.urls import path

LIST = {"get": "list", "post": "create"}
DETAIL = {"get": "retrieve", "patch": "partial_update", "delete": "destroy"}


def resource(prefix: str, viewset, name: str, list_actions=LIST, detail_actions=DETAIL):
    """`prefix` and `prefix/<id>`, routed to the actions the viewset implements."""

    def implemented(actions):
        return {method: action for method, action in actions.items() if hasattr(viewset, action)}

    return [
        path(prefix, viewset.as_view(implemented(list_actions)), name=f"{name}-list"),
        path(
            f"{prefix}/<int:pk>",
            viewset.as_view(implemented(detail_actions)),
            name=f"{name}-detail",
        ),
    ]
