"""``charter roles``: grant, revoke and list the roles users hold per tenant.

Users are people, named in canonical form (``Alice``, ``ALICE`` and ``alice`` are one
person: granting to each is one grant, revoking any revokes it); the output shows that form.
Register the group with ``app.add_typer(roles.app, name="roles")``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from charter.cli.output import JsonOption, check_text, console, emit_json, fail
from charter.core.clock import SystemClock
from charter.core.errors import UserError
from charter.core.settings import Settings
from charter.identity.names import canonical_person
from charter.identity.roles import RoleGrants
from charter.storage import Database

__all__ = ["app"]

app = typer.Typer(
    help="Roles users hold per tenant, such as approver (CHARTER_DATABASE_URL; default a "
    "SQLite file in CHARTER_HOME).",
    no_args_is_help=True,
)

UserArgument = Annotated[
    str, typer.Argument(help="The user, e.g. lead@acme.", show_default=False, metavar="USER")
]
TenantOption = Annotated[
    str, typer.Option("--tenant", help="The tenant the role applies in.", show_default=False)
]
RoleOption = Annotated[
    str, typer.Option("--role", help="The role, e.g. approver.", show_default=False)
]
OperatorOption = Annotated[
    str | None,
    typer.Option(
        "--as",
        help="Who you are (the administrator). Required.",
        envvar="CHARTER_OPERATOR",
        show_default=False,
    ),
]


@contextmanager
def _opened(as_json: bool, *, read_only: bool = False) -> Iterator[RoleGrants]:
    """The grants on the configured database; errors exit 2 with the message.
    ``read_only`` for list: it works on a read-only copy too."""
    try:
        database = Database(Settings.from_env().database, read_only=read_only)
    except UserError as exc:
        fail(str(exc), as_json=as_json)
    try:
        yield RoleGrants(database, SystemClock())
    except UserError as exc:
        fail(str(exc), as_json=as_json)
    finally:
        database.dispose()


def _checked(as_json: bool, operator: str | None, **values: str) -> str:
    if not operator:
        fail("say who you are with --as USER (or set CHARTER_OPERATOR)", as_json=as_json)
    for label, value in {**values, "--as": operator}.items():
        check_text(value, label, as_json=as_json)
    return operator


@app.command()
def grant(
    user: UserArgument,
    tenant: TenantOption,
    role: RoleOption,
    operator: OperatorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Give USER the role in a tenant. Granting a role already held changes nothing.

    USER is matched ignoring case and Unicode compatibility forms: Alice and alice are one.

    Example: charter roles grant lead@acme --tenant acme --role approver --as admin

    Exit codes: 0 granted or already held; 2 bad input or database unreachable.
    """
    by = _checked(as_json, operator, user=user, tenant=tenant, role=role)
    with _opened(as_json) as grants:
        granted = grants.grant(tenant, user, role, by=by)
    # Valid now (the grant checked them): shown as stored.
    user, by = canonical_person(user), canonical_person(by)
    where = f"{user} holds {role!r} in tenant {tenant!r}"
    if as_json:
        emit_json(
            {
                "ok": True,
                "changed": granted,
                "tenant": tenant,
                "user": user,
                "role": role,
                "by": by,
            }
        )
    elif granted:
        console.print(f"[green]granted[/] {where}", soft_wrap=True)
    else:
        console.print(f"[yellow]unchanged[/] {where} already; nothing to do", soft_wrap=True)


@app.command()
def revoke(
    user: UserArgument,
    tenant: TenantOption,
    role: RoleOption,
    operator: OperatorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Take the role in a tenant away from USER.

    Example: charter roles revoke lead@acme --tenant acme --role approver --as admin

    Exit codes: 0 revoked; 2 USER does not hold the role, bad input, database unreachable.
    """
    by = _checked(as_json, operator, user=user, tenant=tenant, role=role)
    with _opened(as_json) as grants:
        revoked = grants.revoke(tenant, user, role, by=by)
    by = canonical_person(by)  # valid now: the revocation checked it
    if as_json:
        emit_json({"ok": True, "revoked": revoked.as_dict(), "by": by})
    else:
        console.print(
            f"[green]revoked[/] {revoked.user}'s role {role!r} in tenant {tenant!r} (granted by "
            f"{revoked.granted_by} at {revoked.granted_at.isoformat(timespec='seconds')})",
            soft_wrap=True,
        )


@app.command("list")
def list_grants(
    tenant: Annotated[
        str | None,
        typer.Option("--tenant", help="Only this tenant.", envvar="CHARTER_TENANT"),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Show every role grant (of one tenant with --tenant), by tenant, user and role.

    Exit codes: 0 listed (even when empty); 2 invalid tenant or database unreachable.
    """
    if tenant is not None:
        check_text(tenant, "--tenant", as_json=as_json)
    with _opened(as_json, read_only=True) as grants:
        found = grants.list(tenant)
    if as_json:
        emit_json({"ok": True, "grants": [grant.as_dict() for grant in found]})
    elif not found:
        console.print("no role grants" + (f" in tenant {tenant!r}" if tenant else ""))
    else:
        for item in found:
            console.print(
                f"{item.tenant} {item.user} {item.role} (granted by {item.granted_by} at "
                f"{item.granted_at.isoformat(timespec='seconds')})",
                markup=False,
                soft_wrap=True,
            )
