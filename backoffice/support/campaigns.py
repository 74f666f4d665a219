"""Care campaigns (holiday greetings, birthday wishes, rental discounts): a segment of customers chosen from what the
system knows (rentals, spend, last rental, birthday), a template per locale, an optional single-use discount code per
recipient. Messages go into the notifications outbox (delivered by its SMTP job); opted-out customers are skipped.
The one owner of campaigns and campaign_recipients.
"""

from __future__ import annotations

import string
from decimal import Decimal

from psycopg.types.json import Jsonb

from backoffice.notifications import service as notifications
from backoffice.promotions import service as promotions
from fleetcore.audit import audit
from fleetcore.db import Conn, one
from fleetcore.errors import Conflict, Invalid, NotFound

PLACEHOLDERS = frozenset({"first_name", "last_name", "code", "valid_until", "percent"})

# Customers with their rental count, spend (gross of non-void invoices) and last pickup: a read across customers,
# orders and invoices in one query (listed in docs/backoffice-fleet.md), since per-customer service calls would be
# one query per customer.
AUDIENCE_SQL = """
WITH stats AS (
    SELECT c.id AS customer_id, c.email, c.first_name, c.last_name, c.date_of_birth,
           (SELECT count(*) FROM orders o WHERE o.customer_id = c.id AND o.picked_up_at IS NOT NULL) AS rentals,
           (SELECT coalesce(sum(i.gross), 0) FROM invoices i WHERE i.customer_id = c.id AND i.status <> 'void')
               AS spend,
           (SELECT max(o.picked_up_at) FROM orders o WHERE o.customer_id = c.id) AS last_rental_at
      FROM customers c WHERE NOT c.blacklisted
)
SELECT * FROM stats
 WHERE (%(min_rentals)s::int IS NULL OR rentals >= %(min_rentals)s)
   AND (%(max_rentals)s::int IS NULL OR rentals <= %(max_rentals)s)
   AND (%(min_spend)s::numeric IS NULL OR spend >= %(min_spend)s)
   AND (%(before)s::timestamptz IS NULL OR last_rental_at < %(before)s)
   AND (%(after)s::timestamptz IS NULL OR last_rental_at >= %(after)s)
   AND (%(bmonth)s::int IS NULL OR extract(month FROM date_of_birth) = %(bmonth)s)
   AND (%(bday)s::date IS NULL OR (extract(month FROM date_of_birth) = extract(month FROM %(bday)s::date)
                                   AND extract(day FROM date_of_birth) = extract(day FROM %(bday)s::date)))
 ORDER BY customer_id
"""


def _check_template(text: str, where: str) -> None:
    for _, name, _, _ in string.Formatter().parse(text):
        if name is not None and name not in PLACEHOLDERS:
            raise Invalid(
                f"{where}: unknown placeholder {{{name}}} (allowed: {', '.join(sorted(PLACEHOLDERS))})"
            )


def render(template: str, values: dict) -> str:
    return template.format_map({k: values.get(k, "") for k in PLACEHOLDERS})


def create(conn: Conn, *, data: dict, actor: dict) -> dict:
    """A draft campaign; templates are checked for unknown placeholders."""
    for loc, t in data["templates"].items():
        _check_template(t["subject"], f"templates.{loc}.subject")
        _check_template(t["body"], f"templates.{loc}.body")
    discount = None
    if data.get("discount_percent") is not None:
        discount = {"percent": str(data["discount_percent"]), "valid_days": data["discount_valid_days"]}
    elif data["kind"] == "discount":
        raise Invalid("discount_percent: a discount campaign gives a discount")
    row = one(
        conn.execute(
            """INSERT INTO campaigns (name, kind, segment, templates, discount, created_by)
               VALUES (%s, %s, %s, %s, %s, %s) RETURNING id""",
            (
                data["name"],
                data["kind"],
                Jsonb(data.get("segment") or {}),
                Jsonb(data["templates"]),
                Jsonb(discount) if discount else None,
                actor["username"],
            ),
        )
    )
    audit(conn, actor=actor, action="campaign.create", entity="campaigns", entity_id=row["id"],
          after={"kind": data["kind"], "segment": data.get("segment")})  # fmt: skip
    return get_or_raise(conn, campaign_id=row["id"])


def get_or_raise(conn: Conn, *, campaign_id: int) -> dict:
    c = conn.execute("SELECT * FROM campaigns WHERE id = %s", (campaign_id,)).fetchone()
    if c is None:
        raise NotFound(f"no campaign {campaign_id}")
    counts = conn.execute(
        "SELECT status, count(*) AS n FROM campaign_recipients WHERE campaign_id = %s GROUP BY status",
        (campaign_id,),
    ).fetchall()
    return {**c, "recipients": {r["status"]: r["n"] for r in counts}}


def list_(conn: Conn) -> list[dict]:
    ids = conn.execute("SELECT id FROM campaigns ORDER BY id DESC LIMIT 200").fetchall()
    return [get_or_raise(conn, campaign_id=r["id"]) for r in ids]


def select(conn: Conn, *, segment: dict) -> list[dict]:
    """Customers in a segment with their rentals, spend and last rental."""
    return conn.execute(
        AUDIENCE_SQL,
        {
            "min_rentals": segment.get("min_rentals"),
            "max_rentals": segment.get("max_rentals"),
            "min_spend": None if segment.get("min_spend") is None else Decimal(str(segment["min_spend"])),
            "before": segment.get("last_rental_before"),
            "after": segment.get("last_rental_after"),
            "bmonth": segment.get("birthday_month"),
            "bday": segment.get("birthday_on"),
        },
    ).fetchall()


def audience(conn: Conn, *, campaign_id: int) -> list[dict]:
    return select(conn, segment=get_or_raise(conn, campaign_id=campaign_id)["segment"])


def send(conn: Conn, *, campaign_id: int, actor: dict) -> dict:
    """Queue the campaign's e-mails (once): per recipient its locale's template, a discount code if the campaign
    gives one; opted-out customers and customers without an e-mail address are recorded and skipped."""
    camp = conn.execute("SELECT * FROM campaigns WHERE id = %s FOR UPDATE", (campaign_id,)).fetchone()
    if camp is None:
        raise NotFound(f"no campaign {campaign_id}")
    if camp["status"] != "draft":
        raise Conflict(f"campaign {campaign_id} was already sent")
    prefs = {
        r["customer_id"]: r
        for r in conn.execute(
            "SELECT customer_id, marketing_opt_out, locale FROM customer_contact_prefs"
        ).fetchall()
    }
    for person in select(conn, segment=camp["segment"]):
        p = prefs.get(person["customer_id"], {"marketing_opt_out": False, "locale": "en"})
        status, outbox_id, code = "queued", None, None
        if p["marketing_opt_out"]:
            status = "opted_out"
        elif not person["email"]:
            status = "no_email"
        else:
            values: dict = {"first_name": person["first_name"], "last_name": person["last_name"]}
            if camp["discount"]:
                issued = promotions.issue(
                    conn,
                    source=f"support.campaign:{campaign_id}",
                    valid_days=int(camp["discount"]["valid_days"]),
                    percent=Decimal(camp["discount"]["percent"]),
                    customer_id=person["customer_id"],
                    actor=actor,
                )
                code = issued["code"]
                values |= {"code": code, "valid_until": issued["valid_until"].date().isoformat(),
                           "percent": camp["discount"]["percent"]}  # fmt: skip
            loc = p["locale"] if p["locale"] in camp["templates"] else "en"
            t = camp["templates"][loc]
            queued = notifications.enqueue_email(
                conn,
                recipient=person["email"],
                subject=render(t["subject"], values),
                body_text=render(t["body"], values),
                locale=loc,
                source=f"support.campaign:{campaign_id}",
                dedupe_key=f"campaign:{campaign_id}:{person['customer_id']}",
                actor=actor,
            )
            outbox_id = queued["id"]
        conn.execute(
            """INSERT INTO campaign_recipients (campaign_id, customer_id, status, outbox_id, discount_code)
               VALUES (%s, %s, %s, %s, %s)""",
            (campaign_id, person["customer_id"], status, outbox_id, code),
        )
    conn.execute("UPDATE campaigns SET status = 'sent', sent_at = now() WHERE id = %s", (campaign_id,))
    after = get_or_raise(conn, campaign_id=campaign_id)
    audit(conn, actor=actor, action="campaign.send", entity="campaigns", entity_id=campaign_id,
          after=after["recipients"])  # fmt: skip
    return after
