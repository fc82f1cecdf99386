"""The manual pages document everything the code offers.

The lists are read from the source, never written here: the sections and
keys of the table in daemon/conf.c, the commands and options of vialwatchctl
(daemon/ctl.c and daemon/ctl-*.c), the metrics the daemon prints
(daemon/*.c), the flags of vialwatchd (daemon/main.c) and the HTTP paths it
serves (daemon/http.c, daemon/pages.c).  Each item is a test of its own, so
that a failure names what is missing, and where it should be documented:

  vialwatch.conf(5)  every section and key, under its section; the formats
                     of [source] and the events of [hook]
  vialwatchctl(8)    every command, and every option under its command
  vialwatchd(8)      every flag, metric (with its labels), HTTP path, hook
                     event, payload format and reason of rejection

The example configuration, conf/vialwatch.conf, may only use keys that the
parser knows, and the pages may only document keys and metrics that exist.
No server or built program is needed.
"""

import os
import re
from pathlib import Path

import pytest

SRCDIR = Path(os.environ.get("VIALWATCH_SRCDIR")
              or Path(__file__).resolve().parents[2])
DAEMON = SRCDIR / "daemon"
MAN = SRCDIR / "man"
CONF_PAGE = MAN / "vialwatch.conf.5"
CTL_PAGE = MAN / "vialwatchctl.8"
DAEMON_PAGE = MAN / "vialwatchd.8"
EXAMPLE_CONF = SRCDIR / "conf" / "vialwatch.conf"


# --- C source -----------------------------------------------------------

def read(path):
    return path.read_text(encoding="utf-8")


def strip_comments(text):
    """C text without its /* */ and // comments, string literals kept."""
    return re.sub(
        r'("(?:[^"\\\n]|\\.)*")|/\*.*?\*/|//[^\n]*',
        lambda m: m.group(1) or " ",
        text, flags=re.S)


def table(text, name, required=True):
    """The initializer of the array name[] = { ... }; ("" if none)."""
    m = re.search(r"\b" + re.escape(name) + r"\s*\[[^\]]*\]\s*=\s*\{(.*?)\n\s*\};",
                  text, re.S)
    assert m or not required, f"no table {name}[] found"
    return m.group(1) if m else ""


def literals(text):
    """The string literals of C text, adjacent ones joined, escapes kept."""
    out, prev_end = [], None
    for m in re.finditer(r'"((?:[^"\\\n]|\\.)*)"', text):
        if prev_end is not None and text[prev_end:m.start()].strip() == "":
            out[-1] += m.group(1)
        else:
            out.append(m.group(1))
        prev_end = m.end()
    return out


def entries(body):
    """The top-level entries of a table's initializer, split at the commas
    outside parentheses, braces and strings."""
    out, depth, cur = [], 0, ""
    for m in re.finditer(r'"(?:[^"\\\n]|\\.)*"|[^"]', body):
        tok = m.group(0)
        if tok in "([{":
            depth += 1
        elif tok in ")]}":
            depth -= 1
        if tok == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += tok
    if cur.strip():
        out.append(cur.strip())
    return out


def functions(text):
    """{name: body} of the functions defined in C text (KNF style: the
    name at the start of a line, the braces of the body in column 0)."""
    return {m.group(1): m.group(2) for m in re.finditer(
        r"^(\w+)\([^;{]*\)\s*\n\{\n(.*?)^\}", text, re.S | re.M)}


# --- mdoc ---------------------------------------------------------------

MACRO = re.compile(r"^(?:[A-Z][a-z][a-z]?|%[A-Z])$")


def words(line):
    """The words of a macro line, without the leading dot."""
    return line[1:].replace("\\&", "").split()


def flags(line):
    """The flags a macro line shows with Fl: '.Fl f , m' -> -f, -m."""
    out, w = set(), words(line)
    for i, word in enumerate(w):
        if word != "Fl":
            continue
        for arg in w[i + 1:]:
            if MACRO.match(arg):
                break
            if arg not in {",", ".", ";", ":", "(", ")", "[", "]", "|"}:
                out.add("-" + arg.rstrip(",;"))
    return out


def after(line, macro):
    """The words after each macro of a line, up to the next macro, commas
    dropped: '.It Cm lots Cm release Ar id' -> [lots, release]."""
    out, taking = [], False
    for arg in words(line):
        if MACRO.match(arg):
            taking = arg == macro
        elif taking and arg != ",":
            out.append(arg.rstrip(","))
    return out


def chunks(page, macro):
    """{heading: [lines]} of a page cut at every .Sh or .Ss, the heading
    being the words of the .Sh or .Ss line (macros kept)."""
    out, name = {}, None
    for line in read(page).splitlines():
        if line.startswith((".Sh ", ".Ss ")):
            name = " ".join(words(line)[1:]) if line.startswith("." + macro) \
                else None
            if name is not None:
                out.setdefault(name, [])
            continue
        if name is not None:
            out[name].append(line)
    return out


def items(lines, macro):
    """The words after macro on the .It lines of lines."""
    out = set()
    for line in lines:
        if line.startswith(".It "):
            out.update(after(line, macro))
    return out


def section_lines(page, title):
    """The lines of the .Sh section title of page."""
    found = chunks(page, "Sh")
    assert title in found, f"{page.name} has no section {title}"
    return found[title]


# --- what the code offers -----------------------------------------------

def conf_sections():
    """{section: takes a NAME} from conf_sections[] of daemon/conf.c."""
    body = table(strip_comments(read(DAEMON / "conf.c")), "conf_sections")
    return {name: named == "1" for name, named in re.findall(
        r'\[\s*SECTION_\w+\s*\]\s*=\s*\{\s*"(\w+)"\s*,\s*(\d)', body)}


def conf_keys():
    """[(section, key)] from conf_keys[] of daemon/conf.c."""
    text = strip_comments(read(DAEMON / "conf.c"))
    enum = dict(re.findall(r'\[\s*(SECTION_\w+)\s*\]\s*=\s*\{\s*"(\w+)"',
                           table(text, "conf_sections")))
    return [(enum[sec], key) for sec, key in re.findall(
        r'\{\s*(SECTION_\w+)\s*,\s*"(\w+)"', table(text, "conf_keys"))]


def conf_list(name):
    """The strings of a table of daemon/conf.c: conf_events, conf_format_names."""
    return re.findall(r'"([^"]+)"',
                      table(strip_comments(read(DAEMON / "conf.c")), name))


def ctl_sources():
    return [DAEMON / "ctl.c"] + sorted(DAEMON.glob("ctl-*.c"))


def ctl_commands():
    """{command: {"options": set, "words": set}}: the commands of
    ctl_commands[] with what each accepts, found by following the calls from
    the function the table runs to the options each function parses
    (getopt strings, long options, argv compared with a literal) and the
    lowercase words its usage text or tables take (release, patients)."""
    texts = {p: strip_comments(read(p)) for p in ctl_sources()}
    funcs = {}      # name -> [(file, body)]: static names may repeat
    for path, text in texts.items():
        for name, body in functions(text).items():
            funcs.setdefault(name, []).append((path, body))

    def parsed(path, body):
        opts, kinds = set(), set()
        for s in re.findall(r'getopt(?:_long)?\(\s*\w+\s*,\s*\w+\s*,\s*"([^"]*)"',
                            body):
            opts.update("-" + c for c in s if c.isalnum())
        opts.update("--" + n for n in re.findall(
            r'\{\s*"([\w-]+)"\s*,\s*(?:no|required|optional)_argument', body))
        for s in re.findall(r'strcmp\(\s*argv\[\w+\]\s*,\s*"([^"]+)"\s*\)', body):
            (opts if s.startswith("-") else kinds).add(s)
        # Words from a table an argument is looked up in by name.
        for tab in re.findall(
                r"strcmp\(\s*argv\[\w+\]\s*,\s*(\w+)\[\w+\]\.\w+\s*\)", body):
            for entry in entries(table(texts[path], tab, False)):
                if m := re.search(r'"([a-z][\w-]*)"', entry):
                    kinds.add(m.group(1))
        return opts, kinds

    def reach(name, path, seen):
        """Options and words of function name and what it calls."""
        cands = funcs.get(name, [])
        here = [c for c in cands if c[0] == path] or cands
        opts, kinds = set(), set()
        for fpath, body in here:
            if (fpath, name) in seen:
                continue
            seen.add((fpath, name))
            o, k = parsed(fpath, body)
            opts |= o
            kinds |= k
            for callee in set(re.findall(r"\b(\w+)\s*\(", body)):
                if callee in funcs and callee != name:
                    o, k = reach(callee, fpath, seen)
                    opts |= o
                    kinds |= k
        return opts, kinds

    ctl = DAEMON / "ctl.c"
    rows = re.findall(
        r'\{\s*"([a-z][\w-]*)"\s*,\s*"([^"]*)"\s*,\s*"(?:[^"\\]|\\.)*"\s*,'
        r'\s*\d+\s*,\s*\d+\s*,\s*(\w+)\s*\}',
        table(texts[ctl], "ctl_commands"))
    assert rows, "no rows in ctl_commands[]"
    out = {}
    for name, args, func in rows:
        cmd = out.setdefault(name, {"options": set(), "words": set()})
        cmd["options"].update(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", args))
        for alt in re.findall(r"(?<![\w-])([a-z][\w-]*(?:\|[a-z][\w-]*)+)",
                              args):
            cmd["words"].update(alt.split("|"))
        opts, kinds = reach(func, ctl, set())
        cmd["options"] |= opts
        cmd["words"] |= kinds
    return out


def main_options(path):
    """The options of a program's main(): its getopt string and the long
    options of its getopt_long table."""
    body = functions(strip_comments(read(path))).get("main", "")
    m = re.search(r'getopt(?:_long)?\(\s*argc\s*,\s*argv\s*,\s*"([^"]*)"',
                  body)
    assert m, f"no getopt() in main() of {path}"
    return sorted({"-" + c for c in m.group(1) if c.isalnum()} |
                  {"--" + n for n in re.findall(
                      r'\{\s*"([\w-]+)"\s*,\s*(?:no|required|optional)'
                      r'_argument', body)}, key=str.lower)


def ctl_global_options():
    """The options of vialwatchctl itself."""
    return main_options(DAEMON / "ctl.c")


def daemon_flags():
    """The flags of vialwatchd."""
    return main_options(DAEMON / "main.c")


def daemon_sources():
    return sorted(p for p in DAEMON.glob("*.c")
                  if not p.name.startswith("ctl"))


def metrics():
    """{metric: set of labels} of every metric the daemon prints: the names
    given to metrics_header/metrics_one/metrics_histogram and the names that
    start a sample line ("name{label=..." or "name %..."), with the _sum,
    _count and _bucket lines of summaries and histograms folded into their
    metric."""
    names, samples = set(), []
    for path in daemon_sources():
        text = strip_comments(read(path))
        names.update(re.findall(
            r'metrics_(?:header|one|histogram)\(\s*\w+\s*,\s*"(vialwatch_\w+)"',
            text))
        names.update(re.findall(r"# TYPE (vialwatch_\w+)", text))
        for lit in literals(text):
            for m in re.finditer(r"(?:^|\\n)(vialwatch_[a-z0-9_]+)(\{[^}]*|\s%)",
                                 lit):
                samples.append((m.group(1), re.findall(r'(\w+)=\\"',
                                                       m.group(2))))
    out = {n: set() for n in names}
    for name, labels in samples:
        base = re.sub(r"_(sum|count|bucket)$", "", name)
        if base != name and base in names:
            name = base
        out.setdefault(name, set()).update(l for l in labels if l != "le")
    return out


def http_paths():
    """The paths of evhttp_set_cb() and of the prefixes compared with the
    request's path in daemon/http.c and daemon/pages.c."""
    out = set()
    for name in ("http.c", "pages.c"):
        path = DAEMON / name
        if not path.exists():
            continue
        text = strip_comments(read(path))
        out.update(re.findall(r'evhttp_set_cb\(\s*\w+\s*,\s*"(/[^"]*)"', text))
        out.update(re.findall(
            r'str(?:n)?(?:case)?cmp\(\s*\w*path\w*\s*,\s*"(/[^"]*)"', text))
    return sorted(out)


def reject_reasons():
    """The labels of payload_reason_labels[] in daemon/payload.c, but none."""
    body = table(strip_comments(read(DAEMON / "payload.c")),
                 "payload_reason_labels")
    return [r for r in re.findall(r'"(\w+)"', body) if r != "none"]


def example_keys():
    """[(section, key, line)] of conf/vialwatch.conf, with the keys and
    sections commented out by ';' too: they are there to be used."""
    out, section = [], None
    for n, line in enumerate(read(EXAMPLE_CONF).splitlines(), 1):
        s = line.strip()
        if s.startswith(";"):
            s = s[1:].strip()
        elif s.startswith("#") or not s:
            continue
        if m := re.match(r"\[\s*(\w+)[^\]]*\]$", s):
            section = m.group(1)
        elif m := re.match(r"([a-z_][a-z0-9_]*)\s*=", s):
            out.append((section, m.group(1), n))
    return out


KEYS = conf_keys()
SECTIONS = conf_sections()
COMMANDS = ctl_commands()
CTL_OPTIONS = ctl_global_options()
CMD_OPTIONS = sorted((c, o) for c, v in COMMANDS.items() for o in v["options"])
CMD_WORDS = sorted((c, w) for c, v in COMMANDS.items() for w in v["words"])
FLAGS = daemon_flags()
METRICS = metrics()
PATHS = http_paths()
EVENTS = conf_list("conf_events")
FORMATS = conf_list("conf_format_names")
REASONS = reject_reasons()
EXAMPLE = example_keys()


# --- what the pages say -------------------------------------------------

def conf_page_sections():
    """{section: (heading, set of keys)} of SECTIONS in vialwatch.conf(5)."""
    out = {}
    for heading, lines in chunks(CONF_PAGE, "Ss").items():
        m = re.match(r"\[(\w+)", heading)
        if m:
            out[m.group(1)] = (heading, items(lines, "Ic"))
    return out


def ctl_page_commands():
    """{command: [lines]}: the entries of the list of commands in
    vialwatchctl(8), an entry being its .It lines (and Xo block) and body."""
    lines = read(CTL_PAGE).splitlines()
    start = next(i for i, l in enumerate(lines) if "commands are as follows" in l)
    start = next(i for i in range(start, len(lines))
                 if lines[i].startswith(".Bl"))
    entries, depth, in_head, xo = [], 1, False, False
    for line in lines[start + 1:]:
        if line.startswith(".Bl"):
            depth += 1
        elif line.startswith(".El"):
            depth -= 1
            if depth == 0:
                break
        if depth == 1 and line.startswith(".It"):
            if not (entries and in_head):
                entries.append({"names": [], "lines": []})
            in_head = True
            xo = "Xo" in words(line)
        elif xo:
            xo = "Xc" not in words(line)
        else:
            in_head = False
        entry = entries[-1]
        entry["lines"].append(line)
        if in_head and "Cm" in words(line) and not entry["names"]:
            entry["names"] = after(line, "Cm")[:1]
    out = {}
    for e in entries:
        for name in e["names"]:
            out.setdefault(name, []).extend(e["lines"])
    return out


def page_metrics():
    """{metric: set of labels} of the .It Li vialwatch_... items of
    vialwatchd(8), labels being the Ar words between the braces."""
    out = {}
    for line in read(DAEMON_PAGE).splitlines():
        w = words(line)
        if line.startswith(".It Li vialwatch_"):
            labels = set()
            if "{" in w:
                inner = w[w.index("{") + 1:]
                inner = inner[:inner.index("}")] if "}" in inner else inner
                labels = {x.rstrip(",") for x in inner
                          if not MACRO.match(x) and x != ","}
            out[w[2]] = labels
    return out


# --- extraction found what it should ------------------------------------

FOUND = {     # what: (the list read from the source, the least it holds)
    "config_sections": (SECTIONS, 9),
    "config_keys": (KEYS, 35),
    "ctl_commands": (COMMANDS, 10),
    "ctl_options": (CTL_OPTIONS, 3),
    "ctl_command_options": (CMD_OPTIONS, 15),
    "daemon_flags": (FLAGS, 4),
    "metrics": (METRICS, 25),
    "http_paths": (PATHS, 4),
    "hook_events": (EVENTS, 8),
    "payload_formats": (FORMATS, 9),
    "reject_reasons": (REASONS, 12),
    "example_config_keys": (EXAMPLE, 35),
}


@pytest.mark.parametrize("what", FOUND)
def test_extraction_finds_enough(what):
    """The lists read from the source are not empty by mistake."""
    found, least = FOUND[what]
    assert len(found) >= least, f"only {len(found)} {what}: {found}"


def test_extraction_keys_are_unique_per_section():
    assert len(KEYS) == len(set(KEYS)), "a key given twice in conf_keys[]"


def test_extraction_conf_specials_are_table_keys():
    """Keys the parser treats by name, strcmp(k->name, "..."), are in the
    table, so that reading the table misses none."""
    named = set(re.findall(r'strcmp\(\s*k->name\s*,\s*"(\w+)"\s*\)',
                           strip_comments(read(DAEMON / "conf.c"))))
    assert named, "no strcmp(k->name, ...) in daemon/conf.c"
    assert named <= {k for _, k in KEYS}, named - {k for _, k in KEYS}


# --- vialwatch.conf(5) --------------------------------------------------

@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_conf_section_documented(section):
    found = conf_page_sections()
    assert section in found, f"no .Ss [{section}] in vialwatch.conf.5"
    heading = found[section][0]
    if SECTIONS[section]:
        assert "NAME" in heading, f"[{section} NAME] takes a name: {heading}"
    else:
        assert re.match(r"\[\w+\]", heading), f"[{section}] takes no name"


@pytest.mark.parametrize("section, key", KEYS,
                         ids=[f"{s}.{k}" for s, k in KEYS])
def test_conf_key_documented(section, key):
    """The key is an item (.It Ic key) under its section's heading."""
    found = conf_page_sections()
    assert section in found, f"no .Ss [{section}] in vialwatch.conf.5"
    assert key in found[section][1], \
        f"no '.It Ic {key}' under [{section}] in vialwatch.conf.5"


def test_conf_page_documents_only_real_keys():
    documented = {(s, k) for s, (_, keys) in conf_page_sections().items()
                  for k in keys}
    unknown = documented - set(KEYS)
    assert not unknown, f"vialwatch.conf.5 documents keys the parser " \
        f"refuses: {sorted(unknown)}"


@pytest.mark.parametrize("section, key, line", EXAMPLE,
                         ids=[f"{s}.{k}:{n}" for s, k, n in EXAMPLE])
def test_example_key_known(section, key, line):
    assert section in SECTIONS, \
        f"conf/vialwatch.conf:{line}: unknown section [{section}]"
    assert (section, key) in KEYS, \
        f"conf/vialwatch.conf:{line}: unknown key {key} in [{section}]"


@pytest.mark.parametrize("event", EVENTS)
def test_hook_event_documented(event):
    hook = conf_page_sections()["hook"]
    lines = chunks(CONF_PAGE, "Ss")[hook[0]]
    assert any(event in after(l, "Cm") for l in lines), \
        f"[hook] events in vialwatch.conf.5 lacks Cm {event}"
    assert event in items(section_lines(DAEMON_PAGE, "HOOKS"), "Cm"), \
        f"HOOKS in vialwatchd.8 lacks .It Cm {event}"


@pytest.mark.parametrize("fmt", FORMATS)
def test_payload_format_documented(fmt):
    source = conf_page_sections()["source"]
    lines = chunks(CONF_PAGE, "Ss")[source[0]]
    assert any(fmt in after(l, "Cm") for l in lines), \
        f"[source] format in vialwatch.conf.5 lacks Cm {fmt}"
    assert fmt in items(section_lines(DAEMON_PAGE, "PAYLOAD FORMATS"), "Cm"), \
        f"PAYLOAD FORMATS in vialwatchd.8 lacks .It Cm {fmt}"


# --- vialwatchctl(8) ----------------------------------------------------

@pytest.mark.parametrize("option", CTL_OPTIONS)
def test_ctl_option_documented(option):
    lines = read(CTL_PAGE).splitlines()
    assert any(option in flags(l) for l in lines if l.startswith(".It ")), \
        f"no '.It Fl {option[1:]}' in vialwatchctl.8"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_ctl_command_documented(command):
    assert command in ctl_page_commands(), \
        f"no '.It Cm {command}' in the commands of vialwatchctl.8"


@pytest.mark.parametrize("command, option", CMD_OPTIONS,
                         ids=[f"{c} {o}" for c, o in CMD_OPTIONS])
def test_ctl_command_option_documented(command, option):
    """The option appears, with Fl, in its command's entry."""
    lines = ctl_page_commands().get(command, [])
    assert any(option in flags(l) for l in lines), \
        f"'{command}' in vialwatchctl.8 does not mention Fl {option[1:]}"


@pytest.mark.parametrize("command, word", CMD_WORDS,
                         ids=[f"{c} {w}" for c, w in CMD_WORDS])
def test_ctl_command_word_documented(command, word):
    """Words a command takes (lots release, import patients) appear with
    Cm in its entry."""
    lines = ctl_page_commands().get(command, [])
    assert any(word in after(l, "Cm") for l in lines), \
        f"'{command}' in vialwatchctl.8 does not mention Cm {word}"


# --- vialwatchd(8) ------------------------------------------------------

@pytest.mark.parametrize("flag", FLAGS)
def test_daemon_flag_documented(flag):
    lines = read(DAEMON_PAGE).splitlines()
    assert any(flag in flags(l) for l in lines if l.startswith(".It ")), \
        f"no '.It Fl {flag[1:]}' in vialwatchd.8"


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_metric_documented(metric):
    found = page_metrics()
    assert metric in found, f"no '.It Li {metric}' in vialwatchd.8"
    assert found[metric] == METRICS[metric], \
        f"{metric}: labels in the code {sorted(METRICS[metric])}, " \
        f"in vialwatchd.8 {sorted(found[metric])}"


def test_daemon_page_documents_only_real_metrics():
    unknown = set(page_metrics()) - set(METRICS)
    assert not unknown, f"vialwatchd.8 documents metrics the daemon does " \
        f"not print: {sorted(unknown)}"


@pytest.mark.parametrize("path", PATHS)
def test_http_path_documented(path):
    http = section_lines(DAEMON_PAGE, "HTTP")
    served = {w[3] for w in map(words, http)
              if len(w) > 3 and w[:2] == ["It", "Li"]
              and w[2] in ("GET", "POST", "HEAD")}
    assert path in served, f"no '.It Li GET {path}' under HTTP in vialwatchd.8"


@pytest.mark.parametrize("reason", REASONS)
def test_reject_reason_documented(reason):
    assert reason in items(section_lines(DAEMON_PAGE, "BAD INPUT"), "Cm"), \
        f"BAD INPUT in vialwatchd.8 lacks .It Cm {reason}"
