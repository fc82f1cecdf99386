"""vialwatchd -t: the config check an operator runs before a restart.

Each broken file must be refused with exit status 1 and exactly one line
"FILE:LINE: message" on stderr that points at the offending line, with FILE
spelled as it was given on the command line.
"""

import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import SRCDIR, VIALWATCHD
from servers import free_port

TEMPLATES = Path(SRCDIR) / "conf" / "templates"


def check(path, cwd=None):
    """Runs vialwatchd -t -c path; returns the CompletedProcess."""
    return subprocess.run(
        [VIALWATCHD, "-t", "-c", str(path)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=30,
    )


def minimal_config(tmp_path):
    """A complete, valid config as a list of lines (servers need not run)."""
    http = free_port()
    return [
        "# a minimal vialwatch config",
        "[daemon]",
        f"state_dir = {tmp_path}",
        "log_level = debug",
        "",
        "[mqtt]",
        "host = 127.0.0.1",
        f"port = {free_port()}",
        "client_id = test-config",
        "qos = 1",
        "",
        "[database]",
        f"conninfo = host=127.0.0.1 port={free_port()} dbname=vialwatch user=postgres",
        "",
        "[source z2m]",
        "topic = zigbee2mqtt/#",
        "format = zigbee2mqtt",
        "",
        "[http]",
        f"listen = 127.0.0.1:{http}",
        f"public_url = http://127.0.0.1:{http}",
        "",
        "[smtp]",
        f"url = smtp://127.0.0.1:{free_port()}",
        "tls = none",
        "",
        "[reminders]",
        f"template_dir = {TEMPLATES}",
    ]


def write(tmp_path, lines, name="vialwatch.conf"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def insert_after(lines, header, *new):
    """Inserts new lines right after the line header; returns their line number."""
    i = lines.index(header) + 1
    lines[i:i] = new
    return i + 1


def single_error(r):
    """The one stderr line of a refused config."""
    assert r.returncode == 1, f"exit {r.returncode}, stderr: {r.stderr!r}"
    lines = r.stderr.splitlines()
    assert len(lines) == 1, f"expected exactly one line on stderr, got {lines!r}"
    return lines[0]


def test_minimal_config_is_accepted(tmp_path):
    # -t only reads the file: the broker and database ports here are closed.
    r = check(write(tmp_path, minimal_config(tmp_path)))
    assert r.returncode == 0, r.stderr
    assert not re.search(r"\.conf:\d+:", r.stderr), r.stderr


def test_relative_path_is_reported_as_given(tmp_path):
    lines = minimal_config(tmp_path)
    n = insert_after(lines, "[mqtt]", "colour = blue")
    write(tmp_path, lines, "relative.conf")
    line = single_error(check("relative.conf", cwd=tmp_path))
    assert line == f'relative.conf:{n}: unknown key "colour" in [mqtt]'


@pytest.mark.parametrize("body", [["kitchen = 4"], []], ids=["with-key", "empty"])
def test_unknown_section(tmp_path, body):
    lines = minimal_config(tmp_path)
    lines += ["", "[fridges]", *body]
    n = lines.index("[fridges]") + 1
    path = write(tmp_path, lines)
    assert single_error(check(path)) == f"{path}:{n}: unknown section [fridges]"


def test_unknown_key(tmp_path):
    lines = minimal_config(tmp_path)
    n = insert_after(lines, "[database]", "batch_size = 10")
    path = write(tmp_path, lines)
    assert single_error(check(path)) == \
        f'{path}:{n}: unknown key "batch_size" in [database]'


def test_unknown_key_in_named_section(tmp_path):
    lines = minimal_config(tmp_path)
    n = insert_after(lines, "[source z2m]", "qos = 2")
    path = write(tmp_path, lines)
    line = single_error(check(path))
    assert line.startswith(f'{path}:{n}: unknown key "qos" in [source')
    assert "z2m" in line


@pytest.mark.parametrize(
    "section,key,value",
    [
        ("[mqtt]", "keepalive", "30 parsecs"),
        ("[database]", "batch_max_delay", "soon"),
        ("[mqtt]", "session_expiry", "-5m"),
    ],
)
def test_bad_duration(tmp_path, section, key, value):
    lines = minimal_config(tmp_path)
    n = insert_after(lines, section, f"{key} = {value}")
    path = write(tmp_path, lines)
    line = single_error(check(path))
    assert line.startswith(f'{path}:{n}: {key}: bad duration "{value}"'), line


@pytest.mark.parametrize(
    "section,key,value",
    [
        ("[mqtt]", "port", "eighteen"),
        ("[mqtt]", "port", "70000"),
        ("[mqtt]", "qos", "3"),
        ("[database]", "batch_max_rows", "0"),
        ("[daemon]", "log_level", "loud"),
        ("[smtp]", "tls", "sometimes"),
        ("[source z2m]", "unit", "K"),
        ("[source z2m]", "format", "zigbee3000"),
        ("[reminders]", "send_window", "9am-6pm"),
    ],
)
def test_bad_value(tmp_path, section, key, value):
    lines = minimal_config(tmp_path)
    if section not in lines:
        lines += ["", section]
    else:
        # The key may be set already: replace it rather than repeat it.
        start = lines.index(section)
        for i in range(start + 1, len(lines)):
            if lines[i].startswith("["):
                break
            if lines[i].split("=")[0].strip() == key:
                del lines[i]
                break
    n = insert_after(lines, section, f"{key} = {value}")
    path = write(tmp_path, lines)
    line = single_error(check(path))
    assert line.startswith(f"{path}:{n}: {key}: "), line
    assert len(line) > len(f"{path}:{n}: {key}: "), "no reason given"


@pytest.mark.parametrize(
    "section,key",
    [("[mqtt]", "password_file"), ("[smtp]", "password_file"),
     ("[http]", "secret_file")],
)
def test_unreadable_secret_file(tmp_path, section, key):
    missing = tmp_path / "no-such-dir" / "secret"
    lines = minimal_config(tmp_path)
    extra = [f"{key} = {missing}"]
    if key == "password_file":
        extra.insert(0, "username = vialwatch")
    n = insert_after(lines, section, *extra) + len(extra) - 1
    path = write(tmp_path, lines)
    assert single_error(check(path)) == (
        f"{path}:{n}: {key}: cannot read {missing}: No such file or directory"
    )


def test_readable_secret_file_is_accepted(tmp_path):
    key = tmp_path / "link.key"
    key.write_text("9f2c" * 16 + "\n")
    os.chmod(key, 0o600)
    lines = minimal_config(tmp_path)
    insert_after(lines, "[http]", f"secret_file = {key}")
    r = check(write(tmp_path, lines))
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("missing", ["topic", "format"])
def test_source_without_required_key(tmp_path, missing):
    lines = minimal_config(tmp_path)
    lines += ["", "[source shelly]", "# the kitchen fridge",
              "topic = shellies/+/sensor/temperature", "format = shelly"]
    header = len(lines) - 3
    lines = [ln for ln in lines if not ln.startswith(f"{missing} = shell")]
    path = write(tmp_path, lines)
    assert single_error(check(path)) == \
        f'{path}:{header}: [source shelly] has no "{missing}"'


def test_missing_config_file(tmp_path):
    path = tmp_path / "absent.conf"
    r = check(path)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [f"{path}: cannot open: No such file or directory"]


def test_shipped_example_config_is_valid(tmp_path):
    example = Path(SRCDIR) / "conf" / "vialwatch.conf"
    assert example.exists(), f"{example} is missing"
    # Its template_dir is commented out (the installed templates); here the
    # shipped ones in the source tree stand in for them.
    text = example.read_text()
    commented = re.search(r"(?m)^;template_dir = .*$", text)
    assert commented, "no ;template_dir line in the example"
    copy = tmp_path / "vialwatch.conf"
    copy.write_text(text.replace(commented.group(0),
                                 f"template_dir = {TEMPLATES}"))
    r = check(copy)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "" or not re.search(r":\d+: ", r.stderr), r.stderr


def templates_copy(tmp_path):
    """A copy of the shipped templates that a test may break."""
    d = tmp_path / "templates"
    d.mkdir()
    for f in TEMPLATES.iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    return d


def with_template_dir(lines, d):
    return [f"template_dir = {d}" if ln.startswith("template_dir =") else ln
            for ln in lines]


def test_template_with_unknown_variable(tmp_path):
    d = templates_copy(tmp_path)
    txt = (d / "reminder.txt").read_text().splitlines()
    n = next(i for i, ln in enumerate(txt, 1) if "{{treatment.date}}" in ln)
    txt[n - 1] = txt[n - 1].replace("{{treatment.date}}", "{{treatment.dat}}")
    (d / "reminder.txt").write_text("\n".join(txt) + "\n")
    path = write(tmp_path, with_template_dir(minimal_config(tmp_path), d))
    assert single_error(check(path)) == \
        f"{d}/reminder.txt:{n}: unknown variable {{{{treatment.dat}}}}"


def test_template_html_section_never_closed(tmp_path):
    d = templates_copy(tmp_path)
    html = (d / "reminder.html").read_text().splitlines()
    n = html.index("{{#clinic.phone}}") + 1
    html.remove("{{/clinic.phone}}")
    (d / "reminder.html").write_text("\n".join(html) + "\n")
    path = write(tmp_path, with_template_dir(minimal_config(tmp_path), d))
    assert single_error(check(path)) == \
        f"{d}/reminder.html:{n}: {{{{#clinic.phone}}}} is never closed"


def test_template_without_unsubscribe_link(tmp_path):
    d = templates_copy(tmp_path)
    txt = (d / "reminder.txt").read_text()
    assert "{{unsubscribe_url}}" in txt
    # Only inside a section: some patients would get no link.
    (d / "reminder.txt").write_text(txt.replace(
        "{{unsubscribe_url}}",
        "{{#clinic.phone}}{{unsubscribe_url}}{{/clinic.phone}}"))
    path = write(tmp_path, with_template_dir(minimal_config(tmp_path), d))
    assert single_error(check(path)) == (
        f"{d}/reminder.txt: the text body must show {{{{unsubscribe_url}}}}, "
        "outside any section")


def test_template_dir_without_reminder_txt(tmp_path):
    d = templates_copy(tmp_path)
    (d / "reminder.txt").unlink()
    path = write(tmp_path, with_template_dir(minimal_config(tmp_path), d))
    assert single_error(check(path)) == \
        f"{d}/reminder.txt: cannot open: No such file or directory"


def test_missing_template_dir(tmp_path):
    missing = tmp_path / "no-such-dir"
    lines = with_template_dir(minimal_config(tmp_path), missing)
    n = lines.index(f"template_dir = {missing}") + 1
    path = write(tmp_path, lines)
    assert single_error(check(path)) == (
        f"{path}:{n}: template_dir: cannot read {missing}: "
        "No such file or directory")


def test_reload_with_broken_template_keeps_running(daemon, tmp_path):
    d = templates_copy(tmp_path)
    vw = daemon(reminders={"template_dir": d})
    good = (d / "reminder.txt").read_text()
    (d / "reminder.txt").write_text(good.replace("{{clinic.name}}",
                                                 "{{clinic.nam}}", 1))
    mark = vw.log_size()
    vw.reload()
    vw.wait_log(re.escape(f"{d}/reminder.txt:1: unknown variable "
                          "{{clinic.nam}}"), after=mark)
    vw.wait_log("reload refused", after=mark)
    assert vw.running
    status, health = vw.healthz()
    assert status == 200, health

    # Fixed, the next reload is taken.
    (d / "reminder.txt").write_text(good)
    mark = vw.log_size()
    vw.reload()
    vw.wait_log("configuration reloaded", after=mark)


def test_version():
    r = subprocess.run([VIALWATCHD, "-V"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 0, r.stderr
    out = r.stdout + r.stderr
    m = re.search(r"AC_INIT\(\[vialwatch\],\s*\[([^\]]+)\]",
                  (Path(SRCDIR) / "configure.ac").read_text())
    assert m, "no version in configure.ac"
    assert m.group(1) in out, out
