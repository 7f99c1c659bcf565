from django.urls import path

from tokens.api import views

user_tokens = views.UserTokenViewSet

urlpatterns = [
    path("auth/token", views.TokenExchangeView.as_view(), name="auth-token"),
    path("auth/refresh", views.TokenRefreshView.as_view(), name="auth-refresh"),
    path("auth/me", views.MeView.as_view(), name="auth-me"),
    path("user-tokens", user_tokens.as_view({"get": "list"}), name="user-token-list"),
    path(
        "user-tokens/<int:pk>",
        user_tokens.as_view({"get": "retrieve"}),
        name="user-token-detail",
    ),
    path(
        "user-tokens/<int:pk>/refresh",
        user_tokens.as_view({"post": "refresh"}),
        name="user-token-refresh",
    ),
]
