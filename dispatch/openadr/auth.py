"""OAuth 2.0 client credentials for the VTN: the token endpoint, bearer authentication, scopes.

`POST /auth/token` takes `grant_type=client_credentials` with the client's id and secret
(HTTP Basic, or `client_id` / `client_secret` in the form, as RFC 6749 allows) and an
optional `scope`; it answers a bearer token that expires after OPENADR_TOKEN_SECONDS and
dies at once when its client is revoked. A business-logic client may hold read_all,
write_programs, write_events, write_subscriptions and write_vens; a VEN client read_all,
write_reports, write_subscriptions and write_vens (the specification's scopes).

Scopes follow the client's role, not the request: a token carries every scope of its
client's role, whatever `scope` asked for, and the answer's `scope` says which (RFC 6749
3.3 lets the server grant other scopes than requested, provided it says so). VEN libraries
ask for `read_all` alone and then register their VEN, which needs write_vens; the role, set
when the operator issued the credentials, is what decides what a client may do. A request
naming a scope outside the role is still refused (invalid_scope): it is a misconfigured client.
"""

import base64
import binascii
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from urllib.parse import unquote

from django.conf import settings
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission

from aggregator.core.access import tokens
from aggregator.core.errors import DomainError, Problem
from dispatch.openadr.models import V301, AccessToken, Client, Ven


@dataclass(frozen=True)
class Principal:
    """Who is calling: the client, the scopes its token carries, and for a VEN client its VEN (if registered)."""

    client: Client
    scopes: frozenset[str]

    @property
    def is_ven(self) -> bool:
        return self.client.role == Client.Role.VEN

    @property
    def is_authenticated(self) -> bool:  # DRF and Django treat the principal as the request's user
        return True

    @cached_property
    def ven(self):
        """The VEN this client acts as (looked up once per request)."""

        return Ven.objects.filter(client=self.client).first()


def _auth_error(error: str, description: str, status: int = 400) -> JsonResponse:
    response = JsonResponse({"error": error, "error_description": description}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Basic realm="openadr"'
    response["Cache-Control"] = "no-store"
    return response


def _credentials(request) -> tuple[str | None, str | None]:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        client_id, _, secret = decoded.partition(":")
        return unquote(client_id), unquote(secret)  # RFC 6749 2.3.1: form-encoded before Basic
    return request.POST.get("client_id"), request.POST.get("client_secret")


@csrf_exempt
@never_cache
@require_POST
def token(request, version: str = V301):
    if request.POST.get("grant_type") != "client_credentials":
        if not request.POST.get("grant_type"):
            return _auth_error("invalid_request", "grant_type is required.")
        return _auth_error("unsupported_grant_type", "Only client_credentials is supported.")
    client_id, secret = _credentials(request)
    if not client_id or not secret:
        return _auth_error("invalid_request", "client_id and client_secret are required (HTTP Basic or form).")
    client = Client.objects.filter(client_id=client_id).first()
    if client is None or not client.matches(secret) or not client.is_usable():
        return _auth_error("invalid_client", "Unknown client, wrong secret, or revoked.", status=401)
    requested = set((request.POST.get("scope") or "").split())
    if requested - client.may_ask_for():
        return _auth_error("invalid_scope", f"This client may ask for: {' '.join(client.scopes(version))}.")
    scopes = sorted(client.scopes(version))
    issued = tokens.issue("oat")
    lifetime = settings.OPENADR_TOKEN_SECONDS
    AccessToken.objects.create(
        key_id=issued.key_id,
        digest=issued.digest,
        client=client,
        scopes=scopes,
        label=client.client_id,
        expires_at=timezone.now() + timedelta(seconds=lifetime),
    )
    client.touch()
    response = JsonResponse(
        {"access_token": issued.plaintext, "token_type": "Bearer", "expires_in": lifetime, "scope": " ".join(scopes)}
    )
    response["Cache-Control"] = "no-store"
    return response


class BearerAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != b"bearer":
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization: Bearer <access token>.")
        plaintext = header[1].decode(errors="replace")
        parsed = tokens.parse(plaintext)
        if parsed is None or parsed[0] != "oat":
            raise exceptions.AuthenticationFailed("Not an access token of this VTN; get one from auth/token.")
        row = AccessToken.objects.select_related("client").filter(key_id=parsed[1]).first()
        if row is None or not row.matches(plaintext) or not row.is_usable() or not row.client.is_usable():
            raise exceptions.AuthenticationFailed("The access token is unknown, expired or revoked.")
        return Principal(client=row.client, scopes=frozenset(row.scopes)), row

    def authenticate_header(self, request):
        return self.keyword


# 3.1's narrower read scopes, which read_all (3.0.1's one read scope, and business logic's in 3.1) covers.
READ_ALL_COVERS = {"read_targets", "read_ven_objects"}


class HasScope(BasePermission):
    """The view's `scopes` maps each method to the scope it needs; a read needs the view's `read_scope`
    (read_all in 3.0.1; read_targets or read_ven_objects in 3.1, which read_all covers). A token from either
    version's token endpoint works on both base paths."""

    def has_permission(self, request, view):
        principal = request.user
        if not isinstance(principal, Principal):
            return False
        needed = view.scopes.get(request.method) or (view.read_scope if view.version != V301 else "read_all")
        if needed is None:
            return True
        held = set(principal.scopes)
        if "read_all" in held:
            held |= READ_ALL_COVERS
        elif held >= READ_ALL_COVERS:  # a 3.1 VEN's token reads through 3.0.1 what it reads through 3.1
            held.add("read_all")
        if needed not in held:
            self.message = f"This operation needs the {needed} scope, which this token does not carry."
            return False
        return True


def discovery(request, version: str = V301):
    """OpenADR 3.1's discovery: where to get a token."""
    return JsonResponse({"tokenURL": request.build_absolute_uri("token")})


def issue_client(*, client_id: str, role: str, site=None, by=None, label: str = "") -> tuple[Client, str]:
    """A new client and its secret (shown once; only its hash is kept)."""
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_slug
    from django.db import IntegrityError, transaction

    problems = []
    try:
        validate_slug(client_id)
    except ValidationError:
        problems.append(Problem("invalid", "Letters, digits, - and _ only.", "client_id"))
    if role not in Client.Role.values:
        problems.append(Problem("invalid_choice", f"One of {', '.join(Client.Role.values)}.", "role"))
    elif (role == Client.Role.VEN) != (site is not None):
        problems.append(Problem("site", "A VEN client belongs to a site; a business-logic client to none.", "site"))
    if problems:
        raise DomainError(problems, status=400)
    issued = tokens.issue("oac")
    try:
        with transaction.atomic():
            client = Client.objects.create(
                client_id=client_id,
                role=role,
                site=site,
                key_id=issued.key_id,
                digest=issued.digest,
                label=label,
                issued_by=by,
            )
    except IntegrityError:
        raise DomainError(Problem("exists", f"A client {client_id} exists.", "client_id")) from None
    return client, issued.plaintext


def revoke_client(client: Client) -> None:
    """The client can get no new token, and the ones it holds stop working now."""
    now = timezone.now()
    Client.objects.filter(pk=client.pk, revoked_at__isnull=True).update(revoked_at=now)
    client.tokens.filter(revoked_at__isnull=True).update(revoked_at=now)
