"""Shell pages every deployment has: API tokens and the health check (the overview is dashboard's)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from core.forms import APITokenForm
from core.models import APIToken
from core.services import api_token_create


def token_list(request):
    """Your API tokens, and a form to create one (its secret is shown once)."""
    form = APITokenForm(request.POST or None)
    new_secret = None
    if request.method == "POST" and form.is_valid():
        token, new_secret = api_token_create(
            user=request.user,
            name=form.cleaned_data["name"],
            read_only=form.cleaned_data["read_only"],
            expires=form.expires(),
        )
        form = APITokenForm()
    tokens = APIToken.objects.filter(user=request.user)
    return render(request, "core/token_list.html", {"form": form, "tokens": tokens, "new_secret": new_secret})


@require_POST
def token_delete(request, pk: int):
    """Revoke one of your tokens."""
    token = get_object_or_404(APIToken, pk=pk, user=request.user)
    token.delete()
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("token-list")


@require_GET
@login_not_required
def healthz(request) -> HttpResponse:
    """Liveness and database readiness for load balancers and compose health checks (no auth, no data)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - any database failure means "not ready"
        return JsonResponse({"status": "error", "database": "unreachable"}, status=503)
    return JsonResponse({"status": "ok"})
