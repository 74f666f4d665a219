"""Knowledge base (articles with categories, versions and a usage count; ranked search in English and Chinese) and
standard service phrases per locale. The one owner of kb_categories, kb_articles, kb_article_versions and
service_phrases."""

from __future__ import annotations

from backoffice.support import search
from fleetcore.audit import audit
from fleetcore.db import Conn, one
from fleetcore.errors import Invalid, NotFound

ARTICLE_COLUMNS = "id, category, locale, title, body, keywords, version, status, usage_count, created_by, created_at, updated_at"
# Rank = full-text rank of the segmented terms (title weighted 1.0, keywords 0.4, body 0.2, ts_rank's default
# weights for A/B/C) plus title trigram similarity as a tie-breaker for near-identical titles and typos.
TRIGRAM_WEIGHT = 0.3
MAX_RESULTS = 50


def list_categories(conn: Conn) -> list[dict]:
    return conn.execute("SELECT * FROM kb_categories ORDER BY code").fetchall()


def _check_category(conn: Conn, code: str) -> None:
    if conn.execute("SELECT 1 FROM kb_categories WHERE code = %s", (code,)).fetchone() is None:
        raise Invalid(f"category: unknown knowledge-base category {code!r}", details={"field": "category"})


def get(conn: Conn, *, article_id: int) -> dict | None:
    return conn.execute(f"SELECT {ARTICLE_COLUMNS} FROM kb_articles WHERE id = %s", (article_id,)).fetchone()


def get_or_raise(conn: Conn, *, article_id: int) -> dict:
    a = get(conn, article_id=article_id)
    if a is None:
        raise NotFound(f"no knowledge-base article {article_id}")
    return a


def list_(
    conn: Conn,
    *,
    category: str | None = None,
    locale: str | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[dict]:
    return conn.execute(
        f"""SELECT {ARTICLE_COLUMNS} FROM kb_articles
             WHERE (%(c)s::text IS NULL OR category = %(c)s) AND (%(l)s::text IS NULL OR locale = %(l)s)
               AND (%(s)s::text IS NULL OR status = %(s)s)
             ORDER BY usage_count DESC, id LIMIT %(n)s""",
        {"c": category, "l": locale, "s": status, "n": limit},
    ).fetchall()


def create(conn: Conn, *, data: dict, actor: dict) -> dict:
    """A new article (version 1) with its search terms."""
    _check_category(conn, data["category"])
    row = one(
        conn.execute(
            """INSERT INTO kb_articles (category, locale, title, body, keywords, status, title_terms, body_terms,
                                        created_by)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
            (
                data["category"],
                data["locale"],
                data["title"],
                data["body"],
                search.as_text(data.get("keywords", "")),
                data.get("status", "published"),
                search.as_text(data["title"]),
                search.as_text(data["body"]),
                actor["username"],
            ),
        )
    )
    conn.execute(
        "INSERT INTO kb_article_versions (article_id, version, title, body, edited_by) VALUES (%s, 1, %s, %s, %s)",
        (row["id"], data["title"], data["body"], actor["username"]),
    )
    article = get_or_raise(conn, article_id=row["id"])
    audit(conn, actor=actor, action="kb.create", entity="kb_articles", entity_id=row["id"], after=article)
    return article


def update(conn: Conn, *, article_id: int, changes: dict, actor: dict) -> dict:
    """Edit an article; a new title or body makes a new version (the old one is kept)."""
    before = get_or_raise(conn, article_id=article_id)
    changes = {k: v for k, v in changes.items() if v is not None}
    if "category" in changes:
        _check_category(conn, changes["category"])
    new = {**before, **changes}
    text_changed = new["title"] != before["title"] or new["body"] != before["body"]
    version = before["version"] + 1 if text_changed else before["version"]
    conn.execute(
        """UPDATE kb_articles SET category = %s, title = %s, body = %s, keywords = %s, status = %s, version = %s,
                  title_terms = %s, body_terms = %s, updated_at = now() WHERE id = %s""",
        (
            new["category"],
            new["title"],
            new["body"],
            search.as_text(new["keywords"]),
            new["status"],
            version,
            search.as_text(new["title"]),
            search.as_text(new["body"]),
            article_id,
        ),
    )
    if text_changed:
        conn.execute(
            """INSERT INTO kb_article_versions (article_id, version, title, body, edited_by)
               VALUES (%s, %s, %s, %s, %s)""",
            (article_id, version, new["title"], new["body"], actor["username"]),
        )
    after = get_or_raise(conn, article_id=article_id)
    audit(
        conn,
        actor=actor,
        action="kb.update",
        entity="kb_articles",
        entity_id=article_id,
        before={k: before[k] for k in changes},
        after={**{k: after[k] for k in changes}, "version": version},
    )
    return after


def versions(conn: Conn, *, article_id: int) -> list[dict]:
    get_or_raise(conn, article_id=article_id)
    return conn.execute(
        "SELECT * FROM kb_article_versions WHERE article_id = %s ORDER BY version DESC", (article_id,)
    ).fetchall()


def search_articles(
    conn: Conn, *, q: str, locale: str | None = None, category: str | None = None, limit: int = 10
) -> list[dict]:
    """Published articles ranked for the query (English or Chinese), best first."""
    query = search.as_query(q)
    if query is None:
        raise Invalid("q: the query has no searchable words", details={"field": "q"})
    return conn.execute(
        f"""WITH q AS (SELECT websearch_to_tsquery('english', %(q)s) AS tsq)
            SELECT {ARTICLE_COLUMNS},
                   (ts_rank(tsv, q.tsq) + %(w)s * word_similarity(%(raw)s, title))::float AS score
              FROM kb_articles, q
             WHERE status = 'published' AND (tsv @@ q.tsq OR %(raw)s <%% title)
               AND (%(l)s::text IS NULL OR locale = %(l)s) AND (%(c)s::text IS NULL OR category = %(c)s)
             ORDER BY score DESC, usage_count DESC, id LIMIT %(n)s""",
        {"q": query, "raw": q, "w": TRIGRAM_WEIGHT, "l": locale, "c": category, "n": min(limit, MAX_RESULTS)},
    ).fetchall()


def record_use(conn: Conn, *, article_id: int, actor: dict) -> dict:
    """An agent used the article to answer a customer: count it."""
    row = conn.execute(
        "UPDATE kb_articles SET usage_count = usage_count + 1 WHERE id = %s RETURNING id", (article_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no knowledge-base article {article_id}")
    audit(conn, actor=actor, action="kb.use", entity="kb_articles", entity_id=article_id)
    return get_or_raise(conn, article_id=article_id)


# ---- phrases -------------------------------------------------------------------------------------------------


def list_phrases(conn: Conn, *, locale: str | None = None, kind: str | None = None) -> list[dict]:
    return conn.execute(
        """SELECT id, kind, locale, text FROM service_phrases
            WHERE (%(l)s::text IS NULL OR locale = %(l)s) AND (%(k)s::text IS NULL OR kind = %(k)s)
            ORDER BY kind, locale, id""",
        {"l": locale, "k": kind},
    ).fetchall()


def create_phrase(conn: Conn, *, kind: str, locale: str, text: str, actor: dict) -> dict:
    row = one(
        conn.execute(
            """INSERT INTO service_phrases (kind, locale, text, created_by) VALUES (%s, %s, %s, %s)
               RETURNING id, kind, locale, text""",
            (kind, locale, text, actor["username"]),
        )
    )
    audit(conn, actor=actor, action="phrase.create", entity="service_phrases", entity_id=row["id"], after=row)
    return row


def delete_phrase(conn: Conn, *, phrase_id: int, actor: dict) -> None:
    row = conn.execute(
        "DELETE FROM service_phrases WHERE id = %s RETURNING id, kind, locale", (phrase_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no phrase {phrase_id}")
    audit(
        conn, actor=actor, action="phrase.delete", entity="service_phrases", entity_id=phrase_id, before=row
    )
