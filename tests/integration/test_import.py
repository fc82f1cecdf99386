"""vialwatchctl import: the CSV exports of a clinic's practice software
into patient, treatment, appointment and lot.  Each kind imports with the
right values, clinic-local times converted; importing the same file again
rewrites no row; a changed row is updated and only it; RFC 4180 quoting
round-trips; a file with bad rows imports nothing and names each of them
FILE:LINE: column; unsubscribed_at and a lot's status are never touched.
"""

import datetime
from zoneinfo import ZoneInfo

import pytest

from conftest import ctl_config
from servers import run_ctl
from test_excursions import insert, rows

UTC = datetime.timezone.utc
CHICAGO = ZoneInfo("America/Chicago")
BERLIN = ZoneInfo("Europe/Berlin")

LAKESIDE = "Lakeside Aesthetics"        # America/Chicago
MITTE = "Praxis Mitte"                  # Europe/Berlin


# --- helpers --------------------------------------------------------------


@pytest.fixture
def ctl_conf(pg, tmp_path):
    return ctl_config(tmp_path / "ctl.conf", pg.conninfo("vialwatch"), tmp_path)


@pytest.fixture
def clinics(db, clean_db):
    """Two clinics in different zones, each with a fridge."""
    lakeside = insert(db, "clinic", name=LAKESIDE, timezone="America/Chicago")
    mitte = insert(db, "clinic", name=MITTE, timezone="Europe/Berlin")
    return {
        "lakeside": lakeside,
        "mitte": mitte,
        "main": insert(db, "fridge", clinic_id=lakeside, name="Main"),
        "impf": insert(db, "fridge", clinic_id=mitte, name="Impfstoffe"),
    }


@pytest.fixture
def run_import(ctl_conf, tmp_path):
    """run_import(kind, name, text or bytes): writes the file, imports it."""

    def run(kind, name, content):
        path = tmp_path / name
        if isinstance(content, str):
            content = content.encode()
        path.write_bytes(content)
        return run_ctl(["import", kind, path], ctl_conf)

    return run


def counts(r, n, new, updated, unchanged):
    """Whether import result r says exactly these counts."""
    return (r.returncode == 0 and r.stdout.endswith(
        f": {n} row{'' if n == 1 else 's'}: {new} new, {updated} updated, "
        f"{unchanged} unchanged\n"))


def table_rows(db, table):
    """Every row of a table with its xmin, by id: a rewrite changes xmin."""
    return rows(db, f"select xmin::text as xmin, * from vialwatch.{table} "
                    f"order by id")


def patient_id(db, clinic_id, ref):
    return db.execute("select id from vialwatch.patient where clinic_id = %s "
                      "and external_ref = %s", [clinic_id, ref]).fetchone()[0]


PATIENTS = (
    "clinic,external_ref,first_name,last_name,email,email_consent\n"
    f"{LAKESIDE},P-1,Ana,Doe,ana@example.com,yes\n"
    f"{LAKESIDE},P-2,Bob,Lee,bob@example.com,N\n"
    f"{LAKESIDE},P-3,Cy,,,\n"
    f"{MITTE},P-1,Jörg,Müller,joerg@example.de,TRUE\n"
)


# --- good imports of each kind ---------------------------------------------


def test_patients(db, clinics, run_import):
    r = run_import("patients", "patients.csv", PATIENTS)
    assert counts(r, 4, 4, 0, 0), r.stdout + r.stderr
    got = rows(db, "select c.name as clinic, p.external_ref, p.first_name, "
                   "p.last_name, p.email, p.email_consent, p.unsubscribed_at "
                   "from vialwatch.patient p join vialwatch.clinic c "
                   "on c.id = p.clinic_id order by c.name, p.external_ref")
    assert [tuple(g.values()) for g in got] == [
        (LAKESIDE, "P-1", "Ana", "Doe", "ana@example.com", True, None),
        (LAKESIDE, "P-2", "Bob", "Lee", "bob@example.com", False, None),
        # Empty optional cells are null; empty consent is no.
        (LAKESIDE, "P-3", "Cy", None, None, False, None),
        (MITTE, "P-1", "Jörg", "Müller", "joerg@example.de", True, None),
    ]


def test_treatments_clinic_local_time(db, clinics, run_import):
    """Times without an offset are the clinic's: Chicago is UTC-6 in
    January and UTC-5 in July, Berlin UTC+1 in January.  A date alone is
    12:00 there; an offset or Z is taken as given."""
    assert counts(run_import("patients", "p.csv", PATIENTS), 4, 4, 0, 0)
    r = run_import("treatments", "treatments.csv", (
        "Clinic,Patient_Ref,External_Ref,Product,Treated_At,Area,Units,"
        "Lot_Number\n"
        f"{LAKESIDE},P-1,T-1,Botox,2026-01-15 14:30,glabella,20,C1234\n"
        f"{LAKESIDE},P-1,T-2,Botox,2026-07-15T09:05:30,,,\n"
        f"{LAKESIDE},P-2,T-1,Dysport,2026-01-16,crow's feet,12.5,\n"
        f"{LAKESIDE},P-2,T-2,Dysport,2026-01-17T08:00:00Z,,0,\n"
        f"{MITTE},P-1,T-1,Xeomin,2026-01-20 10:00+02:00,Stirn,,X9\n"
        f"{MITTE},P-1,T-2,Xeomin,2026-01-21 10:00,,,\n"))
    assert counts(r, 6, 6, 0, 0), r.stdout + r.stderr
    got = rows(db, "select p.external_ref as patient, c.name as clinic, "
                   "t.external_ref, t.product, t.area, t.units, t.lot_number, "
                   "t.treated_at from vialwatch.treatment t "
                   "join vialwatch.patient p on p.id = t.patient_id "
                   "join vialwatch.clinic c on c.id = p.clinic_id "
                   "order by c.name, p.external_ref, t.external_ref")
    at = lambda tz, *a: datetime.datetime(*a, tzinfo=tz)
    assert [tuple(g.values()) for g in got] == [
        ("P-1", LAKESIDE, "T-1", "Botox", "glabella", 20, "C1234",
         at(CHICAGO, 2026, 1, 15, 14, 30)),
        ("P-1", LAKESIDE, "T-2", "Botox", None, None, None,
         at(CHICAGO, 2026, 7, 15, 9, 5, 30)),
        ("P-2", LAKESIDE, "T-1", "Dysport", "crow's feet", 12.5, None,
         at(CHICAGO, 2026, 1, 16, 12, 0)),
        ("P-2", LAKESIDE, "T-2", "Dysport", None, 0, None,
         at(UTC, 2026, 1, 17, 8, 0)),
        ("P-1", MITTE, "T-1", "Xeomin", "Stirn", None, "X9",
         at(UTC, 2026, 1, 20, 8, 0)),
        ("P-1", MITTE, "T-2", "Xeomin", None, None, None,
         at(BERLIN, 2026, 1, 21, 10, 0)),
    ]
    # The same instants, as UTC wall-clock times: 14:30 in Chicago in
    # January is 20:30 UTC, 09:05:30 in July 14:05:30 UTC.
    utc = [g["treated_at"].astimezone(UTC).strftime("%m-%d %H:%M:%S")
           for g in got]
    assert utc == ["01-15 20:30:00", "07-15 14:05:30", "01-16 18:00:00",
                   "01-17 08:00:00", "01-20 08:00:00", "01-21 09:00:00"]


def test_appointments(db, clinics, run_import):
    assert counts(run_import("patients", "p.csv", PATIENTS), 4, 4, 0, 0)
    r = run_import("appointments", "appointments.csv", (
        "clinic,patient_ref,external_ref,starts_at,status\n"
        f"{LAKESIDE},P-1,A-1,2026-04-15 10:00,\n"
        f"{LAKESIDE},P-2,A-1,2026-04-16T16:30:00-05:00,Cancelled\n"
        f"{MITTE},P-1,A-7,2026-05-02 09:15,done\n"))
    assert counts(r, 3, 3, 0, 0), r.stdout + r.stderr
    got = rows(db, "select p.external_ref as patient, a.external_ref, "
                   "a.starts_at, a.status from vialwatch.appointment a "
                   "join vialwatch.patient p on p.id = a.patient_id "
                   "order by a.starts_at")
    assert [tuple(g.values()) for g in got] == [
        ("P-1", "A-1", datetime.datetime(2026, 4, 15, 15, 0, tzinfo=UTC),
         "booked"),
        ("P-2", "A-1", datetime.datetime(2026, 4, 16, 21, 30, tzinfo=UTC),
         "cancelled"),
        ("P-1", "A-7", datetime.datetime(2026, 5, 2, 7, 15, tzinfo=UTC),
         "done"),
    ]


def test_lots_keep_their_status(db, clinics, run_import):
    text = ("clinic,fridge,product,lot_number,expires_on,quantity\n"
            f"{LAKESIDE},Main,Botox,C1234,2027-01-31,10\n"
            f"{LAKESIDE},Main,Juvederm,J-77,,\n"
            f"{MITTE},Impfstoffe,Botox,C1234,2028-02-29,3\n")
    r = run_import("lots", "lots.csv", text)
    assert counts(r, 3, 3, 0, 0), r.stdout + r.stderr
    got = rows(db, "select fridge_id, product, lot_number, expires_on, "
                   "quantity, status from vialwatch.lot order by id")
    assert [tuple(g.values()) for g in got] == [
        (clinics["main"], "Botox", "C1234", datetime.date(2027, 1, 31), 10,
         "ok"),
        (clinics["main"], "Juvederm", "J-77", None, None, "ok"),
        (clinics["impf"], "Botox", "C1234", datetime.date(2028, 2, 29), 3,
         "ok"),
    ]
    # An excursion quarantined one; the next stock count changes it.
    db.execute("update vialwatch.lot set status = 'quarantined' "
               "where lot_number = 'C1234' and fridge_id = %s",
               [clinics["main"]])
    r = run_import("lots", "lots.csv", text.replace("2027-01-31,10",
                                                    "2027-01-31,4"))
    assert counts(r, 3, 0, 1, 2), r.stdout + r.stderr
    assert rows(db, "select quantity, status from vialwatch.lot "
                    "where lot_number = 'C1234' order by id") == [
        {"quantity": 4, "status": "quarantined"},
        {"quantity": 3, "status": "ok"}]


# --- re-imports --------------------------------------------------------------


REIMPORT = [
    ("patients", "patient", PATIENTS),
    ("treatments", "treatment",
     "clinic,patient_ref,external_ref,product,treated_at,area,units\n"
     f"{LAKESIDE},P-1,T-1,Botox,2026-01-15 14:30,glabella,20\n"
     f"{LAKESIDE},P-2,T-1,Botox,2026-01-15,,\n"
     f"{MITTE},P-1,T-1,Botox,2026-01-15T10:00:00+01:00,,7.50\n"),
    ("appointments", "appointment",
     "clinic,patient_ref,external_ref,starts_at,status\n"
     f"{LAKESIDE},P-1,A-1,2026-04-15 10:00,\n"
     f"{LAKESIDE},P-2,A-1,2026-04-16,cancelled\n"),
    ("lots", "lot",
     "clinic,fridge,product,lot_number,expires_on,quantity\n"
     f"{LAKESIDE},Main,Botox,C1234,2027-01-31,10\n"
     f"{MITTE},Impfstoffe,Botox,C1234,,\n"),
]


@pytest.mark.parametrize("kind,table,text", REIMPORT,
                         ids=[k for k, _, _ in REIMPORT])
def test_reimport_changes_nothing(db, clinics, run_import, kind, table, text):
    if kind != "patients":
        assert counts(run_import("patients", "p.csv", PATIENTS), 4, 4, 0, 0)
    n = text.count("\n") - 1
    r = run_import(kind, "file.csv", text)
    assert counts(r, n, n, 0, 0), r.stdout + r.stderr
    before = table_rows(db, table)
    r = run_import(kind, "file.csv", text)
    assert counts(r, n, 0, 0, n), r.stdout + r.stderr
    assert table_rows(db, table) == before


def test_changed_row_is_updated(db, clinics, run_import):
    assert counts(run_import("patients", "p.csv", PATIENTS), 4, 4, 0, 0)
    before = {r["external_ref"] + str(r["clinic_id"]): r
              for r in table_rows(db, "patient")}
    changed = PATIENTS.replace("bob@example.com,N", "bob@new.example,y")
    r = run_import("patients", "p.csv", changed)
    assert counts(r, 4, 0, 1, 3), r.stdout + r.stderr
    after = {r["external_ref"] + str(r["clinic_id"]): r
             for r in table_rows(db, "patient")}
    bob = f"P-2{clinics['lakeside']}"
    assert (after[bob]["email"], after[bob]["email_consent"]) == \
        ("bob@new.example", True)
    assert after[bob]["xmin"] != before[bob]["xmin"]
    del before[bob], after[bob]
    assert after == before


def test_unsubscribed_at_survives(db, clinics, run_import):
    assert counts(run_import("patients", "p.csv", PATIENTS), 4, 4, 0, 0)
    ana = patient_id(db, clinics["lakeside"], "P-1")
    when = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    db.execute("update vialwatch.patient set unsubscribed_at = %s "
               "where id = %s", [when, ana])
    r = run_import("patients", "p.csv", PATIENTS)
    assert counts(r, 4, 0, 0, 4), r.stdout + r.stderr
    r = run_import("patients", "p.csv",
                   PATIENTS.replace("Ana,Doe", "Anna,Doe"))
    assert counts(r, 4, 0, 1, 3), r.stdout + r.stderr
    assert rows(db, "select first_name, email_consent, unsubscribed_at "
                    "from vialwatch.patient where id = %s", [ana]) == [
        {"first_name": "Anna", "email_consent": True,
         "unsubscribed_at": when}]


def test_missing_optional_column_is_kept(db, clinics, run_import):
    """A column the file leaves out is not cleared on existing rows."""
    assert counts(run_import("patients", "p.csv", PATIENTS), 4, 4, 0, 0)
    r = run_import("patients", "names.csv", (
        "external_ref,clinic,first_name\n"
        f"P-1,{LAKESIDE},Ana\n"
        f"P-9,{LAKESIDE},Nina\n"))
    assert counts(r, 2, 1, 0, 1), r.stdout + r.stderr
    assert rows(db, "select external_ref, last_name, email, email_consent "
                    "from vialwatch.patient where clinic_id = %s "
                    "and external_ref in ('P-1', 'P-9') order by 1",
                [clinics["lakeside"]]) == [
        {"external_ref": "P-1", "last_name": "Doe",
         "email": "ana@example.com", "email_consent": True},
        {"external_ref": "P-9", "last_name": None, "email": None,
         "email_consent": False}]


def test_rfc4180_quoting(db, clinics, run_import):
    """A BOM, CRLF line ends, quoted commas, doubled quotes and line ends
    inside fields, blanks around cells, no line end at the end."""
    text = ("\ufeffclinic,external_ref,first_name,last_name,email\r\n"
            f"\"{LAKESIDE}\",\"P-1\",\"Ana, Maria\",\"O\"\"Neil\",\r\n"
            f"{LAKESIDE},P-2,\"two\r\nlines\",\"a\nb\",\r\n"
            f"  {LAKESIDE} ,  P-3  ,\"\"\"Cy\"\"\",\"tab\there\","
            " cy@example.com ")
    r = run_import("patients", "quoted.csv", text.encode())
    assert counts(r, 3, 3, 0, 0), r.stdout + r.stderr
    assert rows(db, "select external_ref, first_name, last_name, email "
                    "from vialwatch.patient order by external_ref") == [
        {"external_ref": "P-1", "first_name": "Ana, Maria",
         "last_name": "O\"Neil", "email": None},
        {"external_ref": "P-2", "first_name": "two\r\nlines",
         "last_name": "a\nb", "email": None},
        {"external_ref": "P-3", "first_name": "\"Cy\"",
         "last_name": "tab\there", "email": "cy@example.com"}]
    # Line ends inside fields count: the next record's line is right.
    r = run_import("patients", "quoted.csv", text + (
        f"\r\n{LAKESIDE},P-4,Dee,,dee@\r\n"))
    assert r.returncode == 1
    assert f"quoted.csv:7: email: not an email address \"dee@\"" in r.stderr


# --- bad files -------------------------------------------------------------


def test_bad_rows_import_nothing(db, clinics, run_import, tmp_path):
    assert counts(run_import("patients", "p.csv", PATIENTS), 4, 4, 0, 0)
    before = {t: table_rows(db, t) for t in ("patient", "treatment")}

    r = run_import("patients", "patients.csv", (
        "clinic,external_ref,first_name,email,email_consent\n"  # 1
        f"{LAKESIDE},P-10,Ed,ed@example.com,yes\n"              # 2 good
        f"{LAKESIDE},P-11,\"Fay\n(new)\",fay@example.com,no\n"  # 3-4 good
        f"{LAKESIDE},P-12,Gus,gus@,yes\n"                       # 5 email
        f"Nowhere,P-13,Hal,,\n"                                 # 6 clinic
        f"{LAKESIDE},P-10,Ida,,\n"                              # 7 same as 2
        f"{LAKESIDE},P-14,,,maybe\n"))                          # 8 two bad
    path = tmp_path / "patients.csv"
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr.splitlines() == [
        f"{path}:5: email: not an email address \"gus@\"",
        f"{path}:6: clinic: unknown clinic \"Nowhere\"",
        f"{path}:7: external_ref: same as line 2",
        f"{path}:8: first_name: required but empty",
        f"{path}:8: email_consent: not yes or no \"maybe\"",
        f"{path}: 4 bad rows, nothing imported",
    ]

    r = run_import("treatments", "treatments.csv", (
        "clinic,patient_ref,external_ref,product,treated_at,units\n"  # 1
        f"{LAKESIDE},P-1,T-1,Botox,2026-01-15 14:30,20\n"             # 2 good
        f"{LAKESIDE},P-999,T-2,Botox,2026-01-15,\n"                   # 3
        f"{LAKESIDE},P-1,T-3,Botox,2026-02-30,\n"                     # 4
        f"{LAKESIDE},P-1,T-4,Botox,15/01/2026,-2\n"                   # 5
        f"{MITTE},P-1,T-1,Botox,2026-01-15 25:00,\n"                  # 6
        f"{LAKESIDE},P-1,T-1,Botox,2026-01-15,\n"                     # 7
        f"{LAKESIDE},P-1,\"T-5\"x,Botox,2026-01-15,\n"))              # 8
    path = tmp_path / "treatments.csv"
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f"{path}:3: patient_ref: unknown patient \"P-999\" in clinic "
        f"\"{LAKESIDE}\"",
        f"{path}:4: treated_at: not a date or time \"2026-02-30\"",
        f"{path}:5: treated_at: not a date or time \"15/01/2026\"",
        f"{path}:5: units: not a number >= 0 \"-2\"",
        f"{path}:6: treated_at: not a date or time \"2026-01-15 25:00\"",
        f"{path}:7: external_ref: same as line 2",
        f"{path}:8: external_ref: characters after a closing quote",
        f"{path}: 6 bad rows, nothing imported",
    ]
    assert {t: table_rows(db, t) for t in before} == before


def test_bad_values(db, clinics, run_import, tmp_path):
    """Each check of a value, on the lots and appointments kinds."""
    r = run_import("lots", "lots.csv", (
        "clinic,fridge,product,lot_number,expires_on,quantity\n"
        f"{LAKESIDE},Back room,Botox,L1,2027-01-31,1\n"
        f"{LAKESIDE},Main,Botox,L2,2027-02-29,1.5\n"
        f"{LAKESIDE},Main,Botox,L3,2027-1-31,2147483648\n"
        f"{LAKESIDE},Main,Botox,L4,2028-02-29,2147483647\n"
        f"{LAKESIDE},Main,Botox,L4,,\n"
        f"{LAKESIDE},Main,Botox\n"))
    path = tmp_path / "lots.csv"
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f"{path}:2: fridge: unknown fridge \"Back room\" in clinic "
        f"\"{LAKESIDE}\"",
        f"{path}:3: expires_on: not a date \"2027-02-29\"",
        f"{path}:3: quantity: not a whole number >= 0 \"1.5\"",
        f"{path}:4: expires_on: not a date \"2027-1-31\"",
        f"{path}:4: quantity: not a whole number >= 0 \"2147483648\"",
        f"{path}:6: lot_number: same as line 5",
        f"{path}:7: 3 fields, the header has 6",
        f"{path}: 5 bad rows, nothing imported",
    ]
    assert rows(db, "select count(*) as n from vialwatch.lot") == [{"n": 0}]

    assert counts(run_import("patients", "p.csv", PATIENTS), 4, 4, 0, 0)
    r = run_import("appointments", "a.csv", (
        "clinic,patient_ref,external_ref,starts_at,status\n"
        f"{LAKESIDE},P-1,A-1,2026-04-15 10:00,pending\n"
        f"{LAKESIDE},P-1,A-2,2026-04-15 10:00+1:00,\n"
        f"{LAKESIDE},P-1,A-3,2026-04-15T10:00:60,\n"
        f"{LAKESIDE},P-1,A-4,2026-04-15 10:00 ,\n"
        f"{LAKESIDE},P-1,A-5,2026-04-15 10:00Z,\n"
        f"{LAKESIDE},P-1,A-6,2025-02-29,\n"
        f"{LAKESIDE},P-1,A-7,2024-02-29 23:59:59.5,\n".encode()
        + f"{LAKESIDE},P-1,A-8,2026-04-15,Jos\xe9\n".encode("latin-1")))
    path = tmp_path / "a.csv"
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f"{path}:2: status: not booked, cancelled or done \"pending\"",
        f"{path}:3: starts_at: not a date or time \"2026-04-15 10:00+1:00\"",
        f"{path}:4: starts_at: not a date or time \"2026-04-15T10:00:60\"",
        f"{path}:7: starts_at: not a date or time \"2025-02-29\"",
        f"{path}:9: status: not valid UTF-8",
        f"{path}: 5 bad rows, nothing imported",
    ]
    assert rows(db, "select count(*) as n from vialwatch.appointment") == [
        {"n": 0}]


@pytest.mark.parametrize("header,errors", [
    ("clinic,external_ref,first_name,phone",
     ["column phone: unknown column"]),
    ("clinic,first_name,last_name",
     ["column external_ref: required column missing"]),
    ("CLINIC,External_Ref,first_name,first_name",
     ["column first_name: given twice"]),
])
def test_bad_header(db, clinics, run_import, tmp_path, header, errors):
    r = run_import("patients", "h.csv", f"{header}\n{LAKESIDE},P-1,Ana,x\n")
    path = tmp_path / "h.csv"
    assert r.returncode == 1
    assert r.stderr.splitlines() == [f"{path}:1: {e}" for e in errors] + [
        f"{path}: bad header, nothing imported"]
    assert rows(db, "select count(*) as n from vialwatch.patient") == [
        {"n": 0}]


def test_usage_errors(db, clinics, run_import, ctl_conf, tmp_path):
    r = run_import("people", "p.csv", PATIENTS)
    assert r.returncode == 2
    assert "import: unknown kind \"people\"" in r.stderr
    r = run_ctl(["import", "patients", tmp_path / "missing.csv"], ctl_conf)
    assert r.returncode == 1
    assert f"{tmp_path / 'missing.csv'}: No such file or directory" in r.stderr
    r = run_ctl(["import", "patients"], ctl_conf)
    assert r.returncode == 2 and "wrong number of arguments" in r.stderr
    r = run_import("patients", "empty.csv", "")
    assert r.returncode == 1 and "empty.csv:1: no header row" in r.stderr
    r = run_import("patients", "header-only.csv",
                   "clinic,external_ref,first_name\r\n")
    assert counts(r, 0, 0, 0, 0), r.stdout + r.stderr
    assert rows(db, "select count(*) as n from vialwatch.patient") == [
        {"n": 0}]
