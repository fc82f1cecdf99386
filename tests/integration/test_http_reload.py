"""A reload that can bind neither the new [http] listen address nor the
old one again keeps trying, and says so, instead of running without
HTTP until a restart.

The daemon runs in a network namespace of its own (unshare: a user and a
network namespace, which an unprivileged user may make), so that the test
can remove its address from the loopback interface and add another, as
an operator's DHCP lease or a reconfigured interface does.  The broker
and the database are out of reach from there, which does not matter.
"""

import os
import shutil
import signal
import socket
import subprocess

import pytest

from conftest import VIALWATCHD
from test_daemon import NotifySocket, needs_systemd

OLD, NEW = "10.77.0.1", "10.77.0.2"


def can_unshare():
    if not (shutil.which("unshare") and shutil.which("nsenter")
            and shutil.which("ip")):
        return False
    r = subprocess.run(["unshare", "-rn", "ip", "link", "set", "lo", "up"],
                       capture_output=True)
    return r.returncode == 0


needs_netns = pytest.mark.skipif(not can_unshare(),
                                 reason="cannot make a network namespace")


@pytest.fixture
def notify():
    s = NotifySocket()
    yield s
    s.close()


@pytest.fixture
def in_netns(tmp_path):
    """A program that runs vialwatchd in a new network namespace whose
    loopback carries 127.0.0.1 and OLD."""
    wrapper = tmp_path / "vialwatchd-netns"
    wrapper.write_text(
        "#!/bin/sh\n"
        "exec unshare -rn sh -c 'ip link set lo up && "
        f"ip addr add {OLD}/32 dev lo && exec \"$0\" \"$@\"' "
        f"{VIALWATCHD} \"$@\"\n")
    wrapper.chmod(0o755)
    return wrapper


def netns(pid, *argv):
    """Runs argv in the network namespace of process pid."""
    return subprocess.run(["nsenter", "-t", str(pid), "-U", "-n",
                           "--preserve-credentials", *argv],
                          capture_output=True, text=True, timeout=30)


def healthz_in(pid, address):
    """The HTTP status of /healthz on address, seen from the namespace."""
    r = netns(pid, os.environ.get("PYTHON3", "/usr/bin/python3"), "-c",
              "import sys, urllib.request, urllib.error\n"
              "try:\n"
              f"    r = urllib.request.urlopen('http://{address}/healthz', "
              "timeout=5)\n"
              "    print(r.status)\n"
              "except urllib.error.HTTPError as e:\n"
              "    print(e.code)\n"
              "except OSError as e:\n"
              "    print('no answer', e)\n")
    return r.stdout.strip()


@needs_netns
@needs_systemd
def test_reload_binding_nothing_keeps_trying(daemon, notify, in_netns):
    d = daemon(binary=in_netns, env=notify.env(), wait=False,
               http={"listen": f"{OLD}:8470"})
    notify.wait("READY", "1")
    d.wait_log(rf"http: listening on {OLD}:8470")
    assert healthz_in(d.pid, f"{OLD}:8470") == "503"  # no broker here

    # The old address goes away, and the new one is not there yet.
    r = netns(d.pid, "ip", "addr", "del", f"{OLD}/32", "dev", "lo")
    assert r.returncode == 0, r.stderr
    config = dict(d.config)
    config["http"] = dict(config["http"], listen=f"{NEW}:8470")
    mark = d.log_size()
    d.reload(config)
    d.wait_log(rf"http: not listening: cannot listen on {NEW}:8470: "
               rf".*, nor on {OLD}:8470 again; retrying in \d+ ms",
               after=mark)
    status = notify.wait("STATUS", timeout=10)["STATUS"]
    while not status.startswith("http not listening"):
        status = notify.wait("STATUS", timeout=10)["STATUS"]
    assert f"{NEW}:8470" in status, status
    # Tried again, with a backoff: a second line, later.
    d.wait_log(r"http: not listening: .*\n(.*\n)*.*http: not listening",
               after=mark, timeout=15)
    assert d.running

    # The new address arrives: the next try binds it.
    r = netns(d.pid, "ip", "addr", "add", f"{NEW}/32", "dev", "lo")
    assert r.returncode == 0, r.stderr
    d.wait_log(rf"http: listening on {NEW}:8470", after=mark, timeout=40)
    assert healthz_in(d.pid, f"{NEW}:8470") == "503"
    status = notify.wait("STATUS", timeout=10)["STATUS"]
    while status.startswith("http not listening"):
        status = notify.wait("STATUS", timeout=10)["STATUS"]
    assert status.startswith("mqtt "), status
    tries = [line for line in d.log_text()[mark:].splitlines()
             if "http: not listening" in line]
    assert 2 <= len(tries) <= 5, tries

    d.signal(signal.SIGTERM)
    assert d.wait_exit(15) == 0


def test_reload_to_a_busy_port_keeps_the_old_one(daemon):
    """The new address is taken: the old one is bound again, /healthz
    answers there, and nothing retries."""
    d = daemon(daemon={"log_level": "info"})
    old = d.http_port
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = dict(d.config)
        config["http"] = dict(config["http"], listen=f"127.0.0.1:{port}")
        mark = d.log_size()
        d.reload(config)
        d.wait_log(rf"http: cannot listen on 127\.0\.0\.1:{port}: .*; still "
                   r"listening on the old address", after=mark)
        d.wait_log(r"configuration reloaded", after=mark)
        d.http_port = old
        assert d.healthz()[0] == 200
        assert f"listening on 127.0.0.1:{old}" in d.log_text()[mark:]
        assert "not listening" not in d.log_text()[mark:]
