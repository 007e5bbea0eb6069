"""URLs of the shell: login (password and single sign-on), logout and API tokens."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

from core import oidc_views, views

urlpatterns = [
    path("login/", oidc_views.LoginView.as_view(), name="login"),
    # /oidc/authenticate/ and /oidc/callback/ (the redirect URI to register at the provider); the views are
    # core.oidc_views' (settings OIDC_AUTHENTICATE_CLASS, OIDC_CALLBACK_CLASS).
    path("oidc/", include("mozilla_django_oidc.urls")),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("tokens/", views.token_list, name="token-list"),
    path("tokens/<int:pk>/delete/", views.token_delete, name="token-delete"),
]
