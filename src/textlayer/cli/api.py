"""The HTTP API commands of the ``textlayer`` CLI: ``api`` (serve it) and ``tokens`` (tenants and their tokens)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from textlayer.cli.settings import settings_for
from textlayer.errors import TextlayerError

if TYPE_CHECKING:
    from textlayer.api.tenants import TenantStore


def add_api_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``api`` and ``tokens`` on the CLI's subparsers."""
    api = commands.add_parser(
        "api",
        help="serve the HTTP API for upload clients (needs a running stack: textlayer up, or REDIS_URL)",
        description="Serve the HTTP API (OpenAPI at /openapi.json, docs at /docs) over the data directory's job store, "
        "blobs and index, publishing jobs to the stack's broker. Tokens come from `textlayer tokens create`.",
    )
    api.add_argument("--listen", metavar="HOST:PORT", help="where to listen (default: $TEXTLAYER_API_LISTEN)")
    api.add_argument("--tls-cert", type=Path, help="server certificate (PEM); turns TLS on")
    api.add_argument("--tls-key", type=Path, help="private key of --tls-cert")
    api.add_argument(
        "--allow-plaintext",
        action="store_true",
        help="serve without TLS on an address other machines can reach (only on a network you trust)",
    )
    api.set_defaults(handler=_cmd_api)

    tokens = commands.add_parser(
        "tokens",
        help="create, list and revoke API tokens (a tenant is created with its first token)",
        description="Manage the HTTP API's tenants and tokens in DATA_DIR/tenants.db. Only a hash of each token is "
        "stored: a token is shown once, when it is created.",
    )
    actions = tokens.add_subparsers(dest="tokens_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="a new token for a tenant; prints it (once)")
    create.add_argument("--tenant", required=True, help="whose documents the token reaches")
    create.add_argument("--scope", choices=("read", "write"), default="write", help="write (default) or read only")
    create.set_defaults(handler=_cmd_tokens_create)
    listing = actions.add_parser("list", help="every token: id, tenant, scope, created, revoked")
    listing.set_defaults(handler=_cmd_tokens_list)
    revoke = actions.add_parser("revoke", help="revoke a token by its id (the part after tl_)")
    revoke.add_argument("token_id")
    revoke.set_defaults(handler=_cmd_tokens_revoke)
    secret = actions.add_parser("secret", help="print a tenant's webhook signing secret")
    secret.add_argument("--tenant", required=True)
    secret.set_defaults(handler=_cmd_tokens_secret)
    limits = actions.add_parser("limits", help="give a tenant its own limits (omitted ones: the defaults)")
    limits.add_argument("--tenant", required=True)
    limits.add_argument("--uploads-per-minute", type=int)
    limits.add_argument("--stored-mib", type=int)
    limits.add_argument("--pages-per-day", type=int)
    limits.set_defaults(handler=_cmd_tokens_limits)


def _cmd_api(args: argparse.Namespace) -> int:
    from textlayer.api.app import serve

    logging.getLogger().setLevel(logging.INFO)
    settings = settings_for(args)
    serve(
        settings,
        args.listen or settings.api_listen,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        allow_plaintext=args.allow_plaintext,
    )
    return 0


def _store(args: argparse.Namespace) -> TenantStore:
    from textlayer.api.context import api_paths
    from textlayer.api.tenants import TenantStore

    settings = settings_for(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return TenantStore(api_paths(settings.data_dir)["tenants"])


def _cmd_tokens_create(args: argparse.Namespace) -> int:
    with _store(args) as store:
        try:
            token = store.create_token(args.tenant, args.scope)
        except ValueError as exc:
            raise TextlayerError(str(exc)) from exc
        secret = store.webhook_secret(args.tenant)
    print(token)
    print(
        f"tenant {args.tenant}, scope {args.scope}; shown once, keep it secret. Webhook secret: {secret}",
        file=sys.stderr,
    )
    return 0


def _when(at: float | None) -> str:
    return "-" if at is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def _cmd_tokens_list(args: argparse.Namespace) -> int:
    with _store(args) as store:
        tokens = store.tokens()
    print(f"{'id':12}  {'tenant':20}  {'scope':5}  {'created':19}  revoked")
    for token in tokens:
        print(
            f"{token.id:12}  {token.tenant:20}  {token.scope.value:5}  {_when(token.created_at)}"
            f"  {_when(token.revoked_at)}"
        )
    return 0


def _cmd_tokens_revoke(args: argparse.Namespace) -> int:
    token_id = args.token_id.removeprefix("tl_").partition("_")[0]
    with _store(args) as store:
        if not store.revoke(token_id):
            raise TextlayerError(f"there is no live token {token_id!r}")
    print(f"revoked {token_id}")
    return 0


def _cmd_tokens_secret(args: argparse.Namespace) -> int:
    with _store(args) as store:
        secret = store.webhook_secret(args.tenant)
    if secret is None:
        raise TextlayerError(f"there is no tenant {args.tenant!r} (create a token for it first)")
    print(secret)
    return 0


def _cmd_tokens_limits(args: argparse.Namespace) -> int:
    from textlayer.api.tenants import LimitOverrides

    for name in ("uploads_per_minute", "stored_mib", "pages_per_day"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise TextlayerError(f"--{name.replace('_', '-')} must be at least 1")
    limits = LimitOverrides(args.uploads_per_minute, args.stored_mib, args.pages_per_day)
    with _store(args) as store:
        if not store.set_limits(args.tenant, limits):
            raise TextlayerError(f"there is no tenant {args.tenant!r} (create a token for it first)")
    print(f"limits of {args.tenant}: {limits}")
    return 0
