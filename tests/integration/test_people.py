"""The people behind the record: a contact's roles (alerts by default,
only alerts, checks and admin allowed) and vialwatch.actor_set, which names
the person acting by email or id and refuses a name nobody has.
"""

import psycopg
import pytest

from test_excursions import insert, rows


@pytest.fixture
def people(db, clean_db):
    lakeside = insert(db, "clinic", name="Lakeside", timezone="America/Chicago")
    mitte = insert(db, "clinic", name="Mitte", timezone="Europe/Berlin")
    return {
        "lakeside": lakeside,
        "mitte": mitte,
        "dana": insert(db, "contact", clinic_id=lakeside, name="Dana Lee",
                       email="dana@lakeside.example"),
        "omar": insert(db, "contact", clinic_id=lakeside, name="Omar Ruiz",
                       email="omar@lakeside.example",
                       roles=["checks", "admin"]),
        # the same person in two clinics
        "kim_l": insert(db, "contact", clinic_id=lakeside, name="Kim Ho",
                        email="kim@group.example"),
        "kim_m": insert(db, "contact", clinic_id=mitte, name="Kim Ho",
                        email="kim@group.example"),
    }


def test_roles_default_to_alerts(db, people):
    got = rows(db, "select id, roles from vialwatch.contact order by id")
    roles = {r["id"]: r["roles"] for r in got}
    assert roles[people["dana"]] == ["alerts"]
    assert roles[people["omar"]] == ["checks", "admin"]


@pytest.mark.parametrize("roles", [["boss"], [], ["alerts", "pager"]])
def test_unknown_or_no_role_refused(db, people, roles):
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("update vialwatch.contact set roles = %s where id = %s",
                   (roles, people["dana"]))


@pytest.mark.parametrize("who,expect", [
    ("dana@lakeside.example", "dana"),
    ("DANA@Lakeside.Example", "dana"),
    (" omar@lakeside.example ", "omar"),
])
def test_actor_by_email(db, people, who, expect):
    got = db.execute("select vialwatch.actor_set(%s, 'nurse', 'restock')",
                     (who,)).fetchone()[0]
    assert got == people[expect]
    assert db.execute("select vialwatch.actor_contact_id(), "
                      "vialwatch.actor_reason(), "
                      "current_setting('vialwatch.actor_os_user')"
                      ).fetchone() == (people[expect], "restock", "nurse")


def test_actor_by_id(db, people):
    got = db.execute("select vialwatch.actor_set(%s, 'root', null)",
                     (str(people["omar"]),)).fetchone()[0]
    assert got == people["omar"]
    assert db.execute("select vialwatch.actor_reason()").fetchone()[0] is None


@pytest.mark.parametrize("who", ["nobody@lakeside.example", "Dana Lee", "",
                                 "999999", "0"])
def test_unknown_actor_refused(db, people, who):
    with pytest.raises(psycopg.errors.InvalidParameterValue,
                       match="nobody known as"):
        db.execute("select vialwatch.actor_set(%s, 'root', 'x')", (who,))


def test_email_of_two_clinics_needs_an_id(db, people):
    with pytest.raises(psycopg.errors.InvalidParameterValue,
                       match="several clinics"):
        db.execute("select vialwatch.actor_set('kim@group.example', 'root', "
                   "'x')")
    assert db.execute("select vialwatch.contact_find('kim@group.example', "
                      "%s)", (people["mitte"],)).fetchone()[0] == people["kim_m"]
