"""Signing in and out of the inbox, and choosing a client.

The login form goes through django.contrib.auth's authenticate() with the request, so
django-axes counts failures and refuses a locked-out caller exactly as for the API's login
(tenants.login_throttle); the lockout is answered here, on the form, with status 429.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.contrib.auth.forms import AuthenticationForm
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from desk.access import SESSION_CLIENT_KEY, clients_of
from tenants import login_throttle


def _next_url(request) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return reverse("desk:home")


@sensitive_post_parameters("password")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def login_view(request):
    data = None
    if request.method == "POST":
        data = request.POST.copy()
        # Emails are our usernames; case does not matter (as in the API's login).
        data["username"] = data.get("username", "").strip().lower()
    form = AuthenticationForm(request, data=data)
    if request.method == "POST":
        if form.is_valid():
            # Rotates the session key; user_logged_in clears this account's failures from
            # this address (axes) and sets last_login.
            auth_login(request, form.get_user())
            return redirect(_next_url(request))
        if getattr(request, "axes_locked_out", False):
            response = render(
                request,
                "desk/login.html",
                {"form": form, "locked": True, "minutes": settings.LOGIN_LOCKOUT_MINUTES},
                status=429,
            )
            response["Retry-After"] = str(login_throttle.lockout_seconds())
            response.lockout_answered = True  # axes' middleware keeps this answer
            return response
        status = 400
    else:
        status = 200
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    return render(request, "desk/login.html", {"form": form, "next": next_url}, status=status)


@require_POST
def logout_view(request):
    auth_logout(request)  # flushes the session (and with it the client last opened)
    return redirect("desk:login")


@never_cache
def home_view(request):
    """The client last opened, the only one, or a list to choose from."""
    if not request.user.is_authenticated:
        return redirect("desk:login")
    clients = clients_of(request.user)
    slugs = {client.slug for client in clients}
    last = request.session.get(SESSION_CLIENT_KEY)
    if last in slugs:
        return redirect("desk:inbox", slug=last)
    if len(clients) == 1:
        return redirect("desk:inbox", slug=clients[0].slug)
    return render(request, "desk/chooser.html", {"clients": clients})
