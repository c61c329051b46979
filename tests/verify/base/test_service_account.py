"""The deepseek service account exists, cannot log in, and has no sudo rights."""

from deepseek_node import paths


def test_account_is_system_and_nologin(host):
    user = host.user(paths.SERVICE_USER)
    assert user.exists, f"{host.backend.hostname}: user {paths.SERVICE_USER}: expected present, found absent"
    assert user.uid < 1000, f"{host.backend.hostname}: {user.name}: expected a system uid (<1000), found {user.uid}"
    assert user.shell == "/usr/sbin/nologin", f"{host.backend.hostname}: {user.name}: shell is {user.shell}"
    assert user.home == paths.DATA_DIR, f"{host.backend.hostname}: {user.name}: home is {user.home}"
    assert user.group == paths.SERVICE_USER


def test_account_password_is_locked(host):
    with host.sudo():
        shadow = host.check_output(f"getent shadow {paths.SERVICE_USER}")
    password_field = shadow.split(":")[1]
    assert password_field.startswith(("!", "*")), (
        f"{host.backend.hostname}: {paths.SERVICE_USER}: expected a locked password, found {password_field[:1]!r}..."
    )


def test_account_has_no_sudo(host):
    with host.sudo():
        result = host.run(f"sudo -l -U {paths.SERVICE_USER}")
    assert "may run" not in result.stdout or "not allowed" in result.stdout, (
        f"{host.backend.hostname}: {paths.SERVICE_USER}: expected no sudo rights, found {result.stdout.strip()!r}"
    )
