"""Command-line manners of both programs: --help, --version, long options,
exit status 2 on a usage error, --json on every listing, bash completion."""

import datetime
import json
import os
import re
import subprocess

import pytest

from servers import run_ctl
from test_excursions import ctl_conf, insert, setup_fridge  # noqa: F401

SRCDIR = os.environ.get("VIALWATCH_SRCDIR") or \
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VIALWATCHD = os.environ.get("VIALWATCHD", "vialwatchd")
VIALWATCHCTL = os.environ.get("VIALWATCHCTL", "vialwatchctl")


def run(*argv):
    return subprocess.run([str(a) for a in argv], capture_output=True,
                          text=True, timeout=30)


def ctl_listing_commands():
    """Every command whose usage offers --json and needs no argument, from
    vialwatchctl --help: its name, with its subcommand if it has one."""
    out = run(VIALWATCHCTL, "--help").stdout
    names = set()
    for name, args in re.findall(r"^  ([a-z][\w-]*) (.*--json.*)$", out,
                                 re.M):
        words = re.sub(r"\[[^]]*\]", "", args).split()
        if all(re.fullmatch(r"[a-z][\w-]*", w) for w in words):
            names.add(" ".join([name] + words))
    assert {"status", "sensors", "fridges", "lots", "excursions",
            "partitions", "audit", "calibration list", "offset list",
            "maintenance list"} <= names
    return sorted(names)


def test_daemon_help_version_and_usage_errors():
    r = run(VIALWATCHD, "--help")
    assert r.returncode == 0
    for opt in ("--config", "--debug", "--test", "--version", "--help"):
        assert opt in r.stdout
    r = run(VIALWATCHD, "--version")
    assert r.returncode == 0 and re.match(r"vialwatchd \d+\.\d+", r.stdout)
    for bad in (["--no-such-option"], ["-x"], ["extra-argument"],
                ["--config"]):
        r = run(VIALWATCHD, *bad)
        assert r.returncode == 2, bad
        assert "usage: vialwatchd" in r.stderr


def test_daemon_long_options(tmp_path):
    conf = tmp_path / "vialwatch.conf"
    templates = f"[reminders]\ntemplate_dir = {SRCDIR}/conf/templates\n"
    conf.write_text(templates + "[daemon]\nlog_level = debug\n")
    conf.chmod(0o600)
    r = run(VIALWATCHD, "--test", "--config", conf)
    assert r.returncode == 0 and "configuration ok" in r.stderr
    r = run(VIALWATCHD, f"--config={conf}", "--test")
    assert r.returncode == 0
    conf.write_text(templates + "[daemon]\nlog_level = loud\n")
    r = run(VIALWATCHD, "--test", "--config", conf)
    assert r.returncode == 1 and f"{conf}:4:" in r.stderr


def test_ctl_help_and_version():
    r = run(VIALWATCHCTL, "--help")
    assert r.returncode == 0 and "commands:" in r.stdout
    for opt in ("--config", "--sql-dir", "--help", "--version"):
        assert opt in r.stdout
    r = run(VIALWATCHCTL, "--version")
    assert r.returncode == 0 and r.stdout.startswith("vialwatchctl ")
    # Each command's own help, from the table, without a config file.
    names = set(re.findall(r"^  ([a-z][\w-]*) ", r.stdout, re.M)) or set(
        re.findall(r"^  ([a-z][\w-]*) ", run(VIALWATCHCTL, "-h").stdout,
                   re.M))
    assert "migrate" in names and "lots" in names
    for name in names:
        r = run(VIALWATCHCTL, "-c", "/nonexistent.conf", name, "--help")
        assert r.returncode == 0, name
        assert r.stdout.startswith(f"usage: vialwatchctl {name}"), name
    r = run(VIALWATCHCTL, "lots", "-h")
    assert "release|discard" in r.stdout and "--fridge" in r.stdout


@pytest.mark.parametrize("argv", [
    [], ["no-such-command"], ["--no-such-option", "status"],
    ["migrate", "extra"], ["status", "--yaml"], ["migrate", "--json"],
    ["excursions", "--days"], ["lots", "release", "1"],
    ["assign", "only-one"],
])
def test_ctl_usage_errors_exit_2(ctl_conf, argv):  # noqa: F811
    r = run_ctl(argv, ctl_conf)
    assert r.returncode == 2, (argv, r.stderr)
    assert "usage: vialwatchctl" in r.stderr


def test_ctl_long_options(pg, ctl_conf):  # noqa: F811
    r = run(VIALWATCHCTL, "--config", ctl_conf, "--sql-dir",
            os.environ["VIALWATCH_SQLDIR"], "migrate")
    assert r.returncode == 0, r.stderr
    r = run(VIALWATCHCTL, f"--config={ctl_conf}", "excursions", "--days=3")
    assert r.returncode == 0 and "last 3 days" in r.stdout


def test_ctl_json_on_every_listing(db, clean_db, ctl_conf):  # noqa: F811
    f = setup_fridge(db)
    insert(db, "sensor", key="zigbee2mqtt/stray")
    now = datetime.datetime.now(datetime.timezone.utc)
    insert(db, "excursion", fridge_id=f["fridge"], sensor_id=f["sensor"],
           kind="high", started_at=now - datetime.timedelta(hours=1),
           alarmed_at=now, peak_c=11.5)
    seen = {}
    for name in ctl_listing_commands():
        r = run_ctl(name.split() + ["--json"], ctl_conf)
        assert r.returncode == 0, (name, r.stderr)
        seen[name] = json.loads(r.stdout)
    sensors = {s["key"]: s for s in seen["sensors"]}
    assert sensors["json/lakeview/botox"]["id"] == f["sensor"]
    assert sensors["zigbee2mqtt/stray"]["fridge"] == "(unassigned)"
    assert [x["id"] for x in seen["fridges"]] == [f["fridge"]]
    assert seen["fridges"][0]["clinic"] == "Lakeview Aesthetics"
    assert sorted(x["id"] for x in seen["lots"]) == sorted(f["lots"])
    assert seen["excursions"][0]["kind"] == "high"
    assert float(seen["excursions"][0]["peak_c"]) == 11.5
    assert all("partition" in p for p in seen["partitions"])
    assert seen["status"]["fridges"]
    # Options of the command still apply, and an empty list is [].
    r = run_ctl(["lots", "--fridge", str(f["fridge"]), "--json"], ctl_conf)
    assert len(json.loads(r.stdout)) == 2
    db.execute("delete from vialwatch.excursion")
    r = run_ctl(["excursions", "--json"], ctl_conf)
    assert r.returncode == 0 and json.loads(r.stdout) == []


def complete(words, cword):
    """COMPREPLY of the bash completion for words, the cursor on cword."""
    script = (f"source {SRCDIR}/contrib/completion/vialwatchctl\n"
              f"COMP_WORDS=({' '.join(repr(w) for w in words)})\n"
              f"COMP_CWORD={cword}\n_vialwatchctl\n"
              'printf "%s\\n" "${COMPREPLY[@]}"\n')
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(os.path.abspath(VIALWATCHCTL)) + \
        os.pathsep + env["PATH"]
    r = subprocess.run(["bash", "-c", script], capture_output=True,
                       text=True, env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    return set(r.stdout.split())


def test_bash_completion():
    assert complete(["vialwatchctl", "exc"], 1) == {"excursion", "excursions"}
    assert complete(["vialwatchctl", "-c", "x.conf", "fr"], 3) == {"fridge",
                                                                 "fridges"}
    assert {"--config", "--sql-dir"} <= complete(["vialwatchctl", "--"], 1)
    assert complete(["vialwatchctl", "lots", "re"], 2) == {"release"}
    assert {"--fridge", "--json", "--help"} <= complete(
        ["vialwatchctl", "lots", "--"], 2)
    assert {"patients", "treatments", "appointments", "lots"} <= complete(
        ["vialwatchctl", "import", ""], 2)
