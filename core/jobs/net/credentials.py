"""Credentials of the network kinds: kept in the OS keyring (service "taskdeck", user name =
the entry's name) or read from the standard environment variables, never in a payload, the
database or a log line.

A payload's `credentials` field names what to use:
- a keyring entry name: the secret stored by `store(name, ...)` (the window's dialog calls
  it; `taskdeck` has no command for it, so a secret never passes through a shell history);
- "env": the environment of the process that runs the task — for S3 the standard
  AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN); for HTTP
  TASKDECK_HTTP_TOKEN (a bearer token) or TASKDECK_HTTP_USERNAME / TASKDECK_HTTP_PASSWORD;
- nothing: HTTP goes without authentication; S3 uses boto3's default chain (the same
  environment variables first, then ~/.aws/credentials and the other standard places).

Every call may block (a keyring talks D-Bus or reads a file): call it from a thread.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core import TaskdeckError

SERVICE = "taskdeck"
ENV = "env"
MAX_NAME = 256


class CredentialsError(TaskdeckError):
    """Credentials could not be read or stored (the message says which and why)."""


class NoKeyring(CredentialsError, RuntimeError):
    """No usable keyring backend exists on this machine."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(
            "no keyring is available to keep credentials"
            + (f" ({detail})" if detail else "")
            + ": install and unlock one (GNOME Keyring, KWallet, the macOS Keychain or the Windows "
            "Credential Locker), or use credentials='env' with the standard environment variables"
        )


class CredentialNotFound(CredentialsError, LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"credentials: no keyring entry named {name!r} (service {SERVICE!r})")
        self.name = name


@dataclass(frozen=True, slots=True, kw_only=True)
class S3Credentials:
    """An access key pair for S3 and S3-compatible endpoints."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None

    def __repr__(self) -> str:  # never print the secret
        return f"S3Credentials(access_key_id={self.access_key_id!r}, secret_access_key=***)"


@dataclass(frozen=True, slots=True, kw_only=True)
class BasicAuth:
    """A user name and password for HTTP Basic authentication (WebDAV servers, mostly)."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"BasicAuth(username={self.username!r}, password=***)"


@dataclass(frozen=True, slots=True, kw_only=True)
class BearerToken:
    """A token sent as `Authorization: Bearer <token>`."""

    token: str

    def __repr__(self) -> str:
        return "BearerToken(token=***)"


Credential = S3Credentials | BasicAuth | BearerToken


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise CredentialsError(f"credentials: a name must be a non-empty string, got {name!r}")
    if name == ENV:
        raise CredentialsError(f"credentials: {ENV!r} means the environment; choose another entry name")
    return name


def _backend() -> Any:
    """The keyring backend to use; raises NoKeyring when there is none that works."""
    try:
        import keyring
        from keyring.backends import chainer, fail
    except ImportError as e:  # pragma: no cover - keyring is a dependency
        raise NoKeyring("the keyring package is not installed") from e
    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        raise NoKeyring("no backend found")
    if isinstance(backend, chainer.ChainerBackend) and not backend.backends:
        raise NoKeyring("no backend found")
    if type(backend).__module__.startswith("keyring.backends.null"):
        raise NoKeyring("the null backend is selected")
    return backend


def available() -> bool:
    """Whether a keyring backend is there to store credentials in."""
    try:
        _backend()
    except NoKeyring:
        return False
    return True


def backend_name() -> str | None:
    """The keyring backend in use, as people read it (None when there is none)."""
    try:
        backend = _backend()
    except NoKeyring:
        return None
    return str(getattr(backend, "name", type(backend).__name__))


def _encode(secret: Credential) -> str:
    if isinstance(secret, S3Credentials):
        data: dict[str, Any] = {
            "type": "s3",
            "access_key_id": secret.access_key_id,
            "secret_access_key": secret.secret_access_key,
        }
        if secret.session_token:
            data["session_token"] = secret.session_token
    elif isinstance(secret, BasicAuth):
        data = {"type": "basic", "username": secret.username, "password": secret.password}
    elif isinstance(secret, BearerToken):
        data = {"type": "bearer", "token": secret.token}
    else:
        raise CredentialsError(
            f"credentials: must be S3Credentials, BasicAuth or BearerToken, got {type(secret).__name__}"
        )
    return json.dumps(data, separators=(",", ":"))


def _decode(name: str, text: str) -> Credential:
    try:
        data = json.loads(text)
        kind = data["type"]
        if kind == "s3":
            return S3Credentials(
                access_key_id=str(data["access_key_id"]),
                secret_access_key=str(data["secret_access_key"]),
                session_token=data.get("session_token") or None,
            )
        if kind == "basic":
            return BasicAuth(username=str(data["username"]), password=str(data["password"]))
        if kind == "bearer":
            return BearerToken(token=str(data["token"]))
    except (ValueError, KeyError, TypeError):
        pass
    # never quote the stored text: it is the secret
    raise CredentialsError(f"credentials: the keyring entry {name!r} is not one Taskdeck stored")


def _keyring_errors() -> tuple[type[BaseException], ...]:
    from keyring.errors import KeyringError

    return (KeyringError,)


def store(name: str, secret: Credential) -> None:
    """Keep `secret` in the OS keyring under `name`, replacing what was there.

    Raises NoKeyring when the machine has no keyring, CredentialsError when it refuses."""
    name = _check_name(name)
    text = _encode(secret)
    backend = _backend()
    try:
        backend.set_password(SERVICE, name, text)
    except _keyring_errors() as e:
        raise CredentialsError(
            f"credentials: the keyring refused to store {name!r}: {type(e).__name__}"
        ) from e


def load(name: str) -> Credential:
    """The secret stored under `name`. Raises NoKeyring, CredentialNotFound or CredentialsError."""
    name = _check_name(name)
    backend = _backend()
    try:
        text = backend.get_password(SERVICE, name)
    except _keyring_errors() as e:
        raise CredentialsError(f"credentials: the keyring could not read {name!r}: {type(e).__name__}") from e
    if text is None:
        raise CredentialNotFound(name)
    return _decode(name, text)


def delete(name: str) -> bool:
    """Remove the entry `name`; False when there was none."""
    name = _check_name(name)
    backend = _backend()
    from keyring.errors import PasswordDeleteError

    try:
        backend.delete_password(SERVICE, name)
    except PasswordDeleteError:
        return False
    except _keyring_errors() as e:
        raise CredentialsError(
            f"credentials: the keyring could not delete {name!r}: {type(e).__name__}"
        ) from e
    return True


def exists(name: str) -> bool:
    """Whether the keyring has an entry `name` (for the dialog's check mark)."""
    try:
        load(name)
    except CredentialNotFound:
        return False
    return True


# -- what a task uses ---------------------------------------------------------------------


def s3_from_env(environ: Mapping[str, str] | None = None) -> S3Credentials:
    env = os.environ if environ is None else environ
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        raise CredentialsError(
            "credentials: 'env' needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment "
            "of the process that runs the task"
        )
    return S3Credentials(
        access_key_id=key, secret_access_key=secret, session_token=env.get("AWS_SESSION_TOKEN") or None
    )


def http_from_env(environ: Mapping[str, str] | None = None) -> BasicAuth | BearerToken:
    env = os.environ if environ is None else environ
    token = env.get("TASKDECK_HTTP_TOKEN")
    if token:
        return BearerToken(token=token)
    user, password = env.get("TASKDECK_HTTP_USERNAME"), env.get("TASKDECK_HTTP_PASSWORD")
    if user and password is not None:
        return BasicAuth(username=user, password=password)
    raise CredentialsError(
        "credentials: 'env' needs TASKDECK_HTTP_TOKEN, or TASKDECK_HTTP_USERNAME and "
        "TASKDECK_HTTP_PASSWORD, in the environment of the process that runs the task"
    )


def for_s3(name: str | None) -> S3Credentials | None:
    """What an S3 task signs with: None lets boto3 look in its standard places."""
    if name is None:
        return None
    if name == ENV:
        return s3_from_env()
    secret = load(name)
    if not isinstance(secret, S3Credentials):
        raise CredentialsError(f"credentials: the keyring entry {name!r} holds no S3 access key")
    return secret


def for_http(name: str | None) -> BasicAuth | BearerToken | None:
    """What an HTTP task authenticates with (None: nothing)."""
    if name is None:
        return None
    if name == ENV:
        return http_from_env()
    secret = load(name)
    if isinstance(secret, S3Credentials):
        raise CredentialsError(f"credentials: the keyring entry {name!r} holds an S3 key, not an HTTP login")
    return secret


__all__ = [
    "ENV",
    "SERVICE",
    "BasicAuth",
    "BearerToken",
    "Credential",
    "CredentialNotFound",
    "CredentialsError",
    "NoKeyring",
    "S3Credentials",
    "available",
    "backend_name",
    "delete",
    "exists",
    "for_http",
    "for_s3",
    "load",
    "store",
]
