"""``rcmhub users ...`` and ``rcmhub tokens ...``: bootstrap and manage staff logins and system tokens (api).

Every change is written to the audit log with the OS user as the actor. A token's secret is printed once.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from api.bootstrap import Hub, build
from api.dlq import _actor
from api.security import ROLES, STAFF_ROLES, Security
from api.settings import Settings
from router.adapters.audit import AuditRecord
from router.domain.errors import HubError

users_app = typer.Typer(help="Staff logins: add, list, passwd, roles, disable, enable, unlock", no_args_is_help=True)
tokens_app = typer.Typer(help="API bearer tokens for systems: create, list, revoke", no_args_is_help=True)
out = Console()
err = Console(stderr=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout")]
StdinFlag = Annotated[bool, typer.Option("--password-stdin", help="read the password from stdin (no prompt)")]


def _roles_option(allowed: tuple[str, ...]) -> object:
    return typer.Option("--role", "-r", help=f"repeatable; one of {', '.join(allowed)}")


StaffRoles = Annotated[list[str], _roles_option(STAFF_ROLES)]
TokenRoles = Annotated[list[str], _roles_option(ROLES)]


@contextmanager
def _security() -> Iterator[Security]:
    settings = Settings()
    logging.basicConfig(level=settings.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        hub = build(settings, in_process=True)
    except HubError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    try:
        yield Security(hub)
    except HubError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    finally:
        hub.close()


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    value: str = typer.prompt("Password (12+ characters)", hide_input=True, confirmation_prompt=True)
    return value


def _audit(security: Security, action: str, object_type: str, object_id: str, detail: str = "") -> None:
    security.record(AuditRecord(_actor(None), action, object_id, "", detail, object_type=object_type, source="cli"))


def _missing(what: str) -> typer.Exit:
    err.print(f"[red]error:[/] no {what}")
    return typer.Exit(1)


@users_app.command("add")
def users_add(username: str, role: StaffRoles, password_stdin: StdinFlag = False) -> None:
    """Create a staff user with one or more roles (billing, billing-supervisor, it-ops, auditor)."""
    with _security() as security:
        security.create_user(username, _password(password_stdin), set(role))
        _audit(security, "user.add", "user", username, f"roles={','.join(sorted(role))}")
    err.print(f"user {username} added with role(s) {', '.join(sorted(role))}; sign in at /login")


@users_app.command("list")
def users_list(as_json: JsonFlag = False) -> None:
    """Users, their roles and state (never a hash)."""
    with _security() as security:
        users = security.store.users()
    rows = [{"username": u.username, "roles": sorted(u.roles), "active": u.active,
             "locked_until": u.locked_until.isoformat() if u.locked_until else None} for u in users]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("user", "roles", "active", "locked until")
    for r in rows:
        table.add_row(str(r["username"]), ", ".join(r["roles"]), str(r["active"]),  # type: ignore[arg-type]
                      str(r["locked_until"] or ""))
    out.print(table)


@users_app.command("passwd")
def users_passwd(username: str, password_stdin: StdinFlag = False) -> None:
    """Set a new password (unlocks the account and ends its sessions)."""
    with _security() as security:
        if not security.set_password(username, _password(password_stdin)):
            raise _missing(f"user {username!r}")
        _audit(security, "user.passwd", "user", username)
    err.print(f"password of {username} changed; its sessions were ended")


@users_app.command("roles")
def users_roles(username: str, role: StaffRoles) -> None:
    """Replace a user's roles."""
    from api.security import check_roles

    with _security() as security:
        chosen = check_roles(role)
        if not security.store.update_user(username, roles=chosen):
            raise _missing(f"user {username!r}")
        security.store.end_sessions_of(username, datetime.now(UTC))
        _audit(security, "user.roles", "user", username, f"roles={','.join(sorted(chosen))}")
    err.print(f"{username} now has role(s) {', '.join(sorted(chosen))}")


def _set_active(username: str, active: bool) -> None:
    with _security() as security:
        if not security.store.update_user(username, active=active):
            raise _missing(f"user {username!r}")
        if not active:
            security.store.end_sessions_of(username, datetime.now(UTC))
        _audit(security, "user.enable" if active else "user.disable", "user", username)


@users_app.command("disable")
def users_disable(username: str) -> None:
    """Stop a user signing in (ends their sessions); the audit trail keeps their name."""
    _set_active(username, False)
    err.print(f"{username} disabled")


@users_app.command("enable")
def users_enable(username: str) -> None:
    _set_active(username, True)
    err.print(f"{username} enabled")


@users_app.command("unlock")
def users_unlock(username: str) -> None:
    """Lift a lockout after repeated failed sign-ins."""
    with _security() as security:
        if not security.store.update_user(username, locked_until=None):
            raise _missing(f"user {username!r}")
        _audit(security, "user.unlock", "user", username)
    err.print(f"{username} unlocked")


@tokens_app.command("create")
def tokens_create(name: str, role: TokenRoles,
                  days: Annotated[int | None, typer.Option(min=1, help="expires after N days (default: never)")]
                  = None, as_json: JsonFlag = False) -> None:
    """Create a bearer token scoped to the roles; the secret is shown once and stored only as a digest."""
    with _security() as security:
        token_id, secret = security.create_token(name, set(role), timedelta(days=days) if days else None)
        _audit(security, "token.create", "token", str(token_id), f"name={name} roles={','.join(sorted(role))}")
    if as_json:
        typer.echo(json.dumps({"id": token_id, "name": name, "roles": sorted(role), "token": secret}))
        return
    typer.echo(secret)
    err.print(f"token {token_id} ({name}) for {', '.join(sorted(role))}: send it as 'Authorization: Bearer <token>';"
              " it is not shown again")


@tokens_app.command("list")
def tokens_list(as_json: JsonFlag = False) -> None:
    """Tokens (id, name, roles, dates) — never the secret."""
    with _security() as security:
        tokens = security.store.tokens()
    rows = [{"id": t.id, "name": t.name, "roles": sorted(t.roles), "created_at": t.created_at.isoformat(),
             "expires_at": t.expires_at.isoformat() if t.expires_at else None,
             "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None} for t in tokens]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "name", "roles", "created", "expires", "revoked")
    for r in rows:
        table.add_row(*(", ".join(v) if isinstance(v, list) else str(v or "") for v in r.values()))
    out.print(table)


@tokens_app.command("revoke")
def tokens_revoke(token_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Revoke a token at once."""
    with _security() as security:
        if not security.store.revoke_token(token_id, datetime.now(UTC)):
            raise _missing(f"active token {token_id}")
        _audit(security, "token.revoke", "token", str(token_id))
    err.print(f"token {token_id} revoked")


def first_user_hint(hub: Hub) -> str | None:
    """What ``serve`` prints while no staff user exists, so a new operator knows how to get in."""
    if Security(hub).store.users():
        return None
    return ("no staff users yet — create one:  rcmhub users add NAME --role billing (or billing-supervisor, it-ops, "
            "auditor); EMR systems need a token:  rcmhub tokens create NAME --role emr-system")
