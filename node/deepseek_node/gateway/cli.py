"""``deepseek-gateway``: serve, and manage the access policy on the node.

    deepseek-gateway serve
    deepseek-gateway user add alice            deepseek-gateway user list
    deepseek-gateway key create alice          (prints the key once)
    deepseek-gateway key revoke <key_id>       deepseek-gateway key list [alice]
    deepseek-gateway grant alice <model> read|write|admin
    deepseek-gateway revoke alice <model>
    deepseek-gateway list                      (users, their grants and key ids)
    deepseek-gateway migrate | seed <file> | tls generate --hostname h ...
    deepseek-gateway drain [--wait SECONDS] | drain --resume
    deepseek-gateway input-hash body.json      (the input hash a request log line holds)

Run as root, the policy commands switch to the service user first, so the database and
its journal files stay owned by the account the service runs as.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Sequence

from .config import DEFAULT_CONFIG_PATH, ConfigError, GatewayConfig
from .db import PERMISSIONS, Database, PolicyError


def _drop_privileges(user: str) -> None:
    if os.geteuid() != 0:
        return
    import pwd

    try:
        account = pwd.getpwnam(user)
    except KeyError:
        return  # no service account (a workstation): stay as we are
    os.setgroups([])
    os.setgid(account.pw_gid)
    os.setuid(account.pw_uid)


def _database(config: GatewayConfig) -> Database:
    _drop_privileges(config.service_user)
    os.umask(0o027)
    database = Database(path=config.database_path, dsn=config.database_dsn)
    database.migrate()
    return database


def _serve(config: GatewayConfig, args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app

    os.umask(0o027)
    database = Database(path=config.database_path, dsn=config.database_dsn)
    app = create_app(config, database)
    uvicorn.run(
        app, host=config.host, port=config.port, ssl_certfile=config.tls_cert, ssl_keyfile=config.tls_key,
        timeout_graceful_shutdown=config.drain_timeout_s, access_log=False, server_header=False,
        proxy_headers=False, log_level="info",
    )
    return 0


def _drain(config: GatewayConfig, args: argparse.Namespace) -> int:
    import httpx

    host = "127.0.0.1" if config.host in ("0.0.0.0", "::", "127.0.0.1") else config.host
    scheme = "https" if config.tls_cert else "http"
    url = f"{scheme}://{host}:{config.port}/admin/drain"
    headers = {}
    if config.admin_token_file:
        from .app import read_admin_token

        try:
            headers["X-Admin-Token"] = read_admin_token(config.admin_token_file)
        except OSError as error:
            print(f"deepseek-gateway: cannot read the drain token {config.admin_token_file}: {error.strerror} "
                  "(run as root or the service user, with the gateway started)", file=sys.stderr)
            return 2
    with httpx.Client(verify=False, timeout=10, headers=headers) as client:  # loopback to our own listener
        reply = client.request("DELETE" if args.resume else "POST", url)
        state = reply.json()
        print(json.dumps(state))
        if reply.status_code != 200 or args.resume or not args.wait:
            return 0 if reply.status_code == 200 else 1
        deadline = time.monotonic() + args.wait
        while state.get("in_flight", 0) > 0:
            if time.monotonic() > deadline:
                print(f"still {state['in_flight']} request(s) in flight after {args.wait}s", file=sys.stderr)
                return 1
            time.sleep(0.5)
            state = client.get(url).json()
        print(json.dumps(state))
    return 0


def _policy(config: GatewayConfig, args: argparse.Namespace) -> int:
    database = _database(config)
    command = args.command
    if command == "migrate":
        print(f"schema version {database.schema_version()}")
    elif command == "user" and args.action == "add":
        created = database.add_user(args.user)
        print(f"user {args.user}: {'created' if created else 'exists'}")
    elif command == "user":
        print("\n".join(database.users()))
    elif command == "key" and args.action == "create":
        print(database.create_key(args.user))
        print("store this key now: it is not kept and cannot be shown again", file=sys.stderr)
    elif command == "key" and args.action == "revoke":
        if not database.revoke_key(args.target):
            print(f"key {args.target}: no active key with this id", file=sys.stderr)
            return 1
        print(f"key {args.target}: revoked")
    elif command == "key":
        for key in database.keys(args.target):
            print(f"{key['key_id']}\t{key['user']}\t{key['created_at']}\t"
                  f"{'revoked ' + key['revoked_at'] if key['revoked_at'] else 'active'}")
    elif command == "grant":
        database.grant(args.user, args.model, args.permission)
        print(f"{args.user}: {args.permission} on {args.model}")
    elif command == "revoke":
        if not database.revoke(args.user, args.model):
            print(f"{args.user}: had no grant on {args.model}", file=sys.stderr)
            return 1
        print(f"{args.user}: no access to {args.model}")
    elif command == "list":
        grants: dict[str, list[str]] = {}
        for row in database.access():
            grants.setdefault(row["user"], []).append(f"{row['model']}={row['permission']}")
        active: dict[str, list[str]] = {}
        for key in database.keys():
            if not key["revoked_at"]:
                active.setdefault(key["user"], []).append(key["key_id"])
        for user in database.users():
            print(f"{user}\tgrants: {', '.join(grants.get(user, [])) or '-'}\tkeys: {', '.join(active.get(user, [])) or '-'}")
    elif command == "seed":
        with open(args.file, "rb") as handle:
            raw = handle.read()
        counts = database.seed(json.loads(raw), hashlib.sha256(raw).hexdigest())
        print(json.dumps(counts, sort_keys=True))
    return 0


def _input_hash(config: GatewayConfig, args: argparse.Namespace) -> int:
    """Print what the request log holds for a request body: to find requests by their input."""
    from .requestlog import input_hmac, input_sha256, load_hash_key

    raw = sys.stdin.buffer.read() if args.file == "-" else open(args.file, "rb").read()
    body = json.loads(raw)
    if config.input_hash_key_file:
        try:
            key = load_hash_key(config.input_hash_key_file)
        except (OSError, ValueError) as error:
            print(f"deepseek-gateway: input hash key: {error}", file=sys.stderr)
            return 2
        print(json.dumps({"input_hmac": input_hmac(body, key)}))
    else:
        print(json.dumps({"input_sha256": input_sha256(body)}))
    return 0


def _tls(config: GatewayConfig, args: argparse.Namespace) -> int:
    from .tls import write_self_signed

    if not (config.tls_cert and config.tls_key):
        print("tls_cert and tls_key are not set in the configuration", file=sys.stderr)
        return 1
    written = write_self_signed(config.tls_cert, config.tls_key, args.hostname, group=config.service_user)
    print(f"{config.tls_cert}: {'generated' if written else 'exists, left alone'}")
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="deepseek-gateway", description=__doc__.split("\n")[0])
    root.add_argument("--config", default=os.environ.get("DEEPSEEK_GATEWAY_CONFIG", DEFAULT_CONFIG_PATH))
    commands = root.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the gateway")
    commands.add_parser("migrate", help="apply schema migrations")
    user = commands.add_parser("user", help="add or list users")
    user.add_argument("action", choices=("add", "list"))
    user.add_argument("user", nargs="?")
    key = commands.add_parser("key", help="create, revoke or list API keys")
    key.add_argument("action", choices=("create", "revoke", "list"))
    key.add_argument("target", nargs="?", help="user (create, list) or key id (revoke)")
    grant = commands.add_parser("grant", help="give a user access to a model")
    grant.add_argument("user")
    grant.add_argument("model")
    grant.add_argument("permission", choices=PERMISSIONS)
    revoke = commands.add_parser("revoke", help="take a user's access to a model away")
    revoke.add_argument("user")
    revoke.add_argument("model")
    commands.add_parser("list", help="users, grants and active key ids")
    seed = commands.add_parser("seed", help="apply an inventory seed file (roles/gateway writes it)")
    seed.add_argument("file")
    tls = commands.add_parser("tls", help="generate a self-signed certificate unless one exists")
    tls.add_argument("action", choices=("generate",))
    tls.add_argument("--hostname", action="append", required=True)
    digest = commands.add_parser("input-hash", help="print the logged input hash of a JSON request body")
    digest.add_argument("file", help="a JSON body with messages or prompt; - reads stdin")
    drain = commands.add_parser("drain", help="stop taking new requests (rolling upgrades)")
    drain.add_argument("--wait", type=float, default=0, help="wait up to this many seconds for in-flight requests")
    drain.add_argument("--resume", action="store_true", help="take requests again")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "key" and args.action in ("create", "revoke") and not args.target:
        parser().error(f"key {args.action}: which {'user' if args.action == 'create' else 'key id'}?")
    if args.command == "key" and args.action == "create":
        args.user = args.target
    if args.command == "user" and args.action == "add" and not args.user:
        parser().error("user add: which user?")
    try:
        config = GatewayConfig.load(args.config)
        if args.command == "serve":
            return _serve(config, args)
        if args.command == "drain":
            return _drain(config, args)
        if args.command == "tls":
            return _tls(config, args)
        if args.command == "input-hash":
            return _input_hash(config, args)
        return _policy(config, args)
    except (ConfigError, PolicyError) as error:
        print(f"deepseek-gateway: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
