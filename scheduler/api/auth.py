"""API authentication: HTTP basic (HARRIER_API_USERNAME/PASSWORD) and/or a
bearer token (HARRIER_API_TOKEN), compared in constant time. Required whenever
the API listens beyond loopback, unless HARRIER_API_AUTH=none says otherwise."""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging

from fastapi import Request

from harrier.common.settings import Settings, SettingsError
from harrier.scheduler.api.errors import ApiError

log = logging.getLogger("harrier.api")


def check_auth_settings(settings: Settings) -> None:
    """Refuse half a configuration rather than silently serving an open API."""
    if bool(settings.api_username) != bool(settings.api_password):
        raise SettingsError("HARRIER_API_USERNAME and HARRIER_API_PASSWORD must be set "
                            "together (or neither, for no basic auth)")
    if settings.api_auth == "none" and auth_required(settings):
        raise SettingsError("HARRIER_API_AUTH=none turns authentication off, but API "
                            "credentials are set too: unset one or the other")


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_exposure(settings: Settings, host: str, port: int) -> None:
    """Refuse to serve an open API beyond loopback. Called by the commands that
    bind a socket, once they know the address; warns when the operator opted out.

    We refuse rather than generate a password: scheduler replicas must agree on
    the credentials, and a password printed in one replica's log is easily lost."""
    check_auth_settings(settings)
    if auth_required(settings):
        return
    if settings.api_auth == "none":
        log.warning("HARRIER_API_AUTH=none: the API on %s:%d accepts requests without "
                    "credentials; anyone who can reach it can run commands on the workers",
                    host, port)
        return
    if is_loopback(host):
        return
    raise SettingsError(
        f"the API would listen on {host}:{port} without authentication, so anyone who can "
        "reach that port could run commands on the workers. Set HARRIER_API_USERNAME and "
        "HARRIER_API_PASSWORD (or HARRIER_API_TOKEN), or listen on loopback only "
        "(HARRIER_API_HOST=127.0.0.1), or accept the risk with HARRIER_API_AUTH=none")


def auth_required(settings: Settings) -> bool:
    return bool(settings.api_username and settings.api_password) or bool(settings.api_token)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def credentials_valid(settings: Settings, authorization: str) -> bool:
    scheme, _, value = authorization.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "basic" and settings.api_username and settings.api_password:
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        # Both comparisons always run, so timing does not say which one failed.
        user_ok = _same(user, settings.api_username)
        password_ok = _same(password, settings.api_password)
        return bool(sep) and user_ok and password_ok
    if scheme == "bearer" and settings.api_token:
        return _same(value.strip(), settings.api_token)
    return False


def require_auth(request: Request) -> None:
    """Route dependency: pass when auth is off or the credentials match."""
    settings: Settings = request.app.state.harrier.settings
    if not auth_required(settings):
        return
    if credentials_valid(settings, request.headers.get("authorization", "")):
        return
    challenges = []
    if settings.api_username:
        challenges.append('Basic realm="harrier"')
    if settings.api_token:
        challenges.append('Bearer realm="harrier"')
    raise ApiError(401, "authentication required: send HTTP basic credentials or a bearer "
                   "token", headers={"WWW-Authenticate": ", ".join(challenges)})
