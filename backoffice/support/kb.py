"""Knowledge base (articles with categories, versions and a usage count; ranked search in English and Chinese) and
standard service phrases per locale. The one owner of kb_categories, kb_articles, kb_article_versions and
service_phrases."""

from __future__ import annotations

from backoffice.support import search
from fleetcore.audit import audit
from fleetcore.db import Conn, one
from fleetcore.errors import Invalid, NotFound

ARTICLE_COLUMNS = "id, category, locale, title, body, keywords, version, status, usage_count, created_by, created_at, updated_at"
# ts_rank's weights for D, C (body), B (keywords), A (title): curated keywords count almost as much as the title.
FIELD_WEIGHTS = [0.1, 0.2, 0.8, 1.0]
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
    """Published articles ranked for the query (English or Chinese), best first.

    ts_rank alone counts every matched term alike, so a word found in most articles ("car", "车") outranks the one
    that names the topic. Each query lexeme is weighted by its inverse document frequency over the published
    articles (BM25's idf, from ts_stat) times ts_rank of that lexeme alone (title 1.0, keywords 0.8, body 0.2), and
    the more used article wins a tie. Measured in bench/kb_search.md (a title-trigram tie-break changed nothing there,
    and pg_trgm is missing from the embedded PostgreSQL of `fleet demo`, so it is not used).
    """
    terms = search.as_text(q)
    if not terms:
        raise Invalid("q: the query has no searchable words", details={"field": "q"})
    return conn.execute(
        f"""WITH lex AS (SELECT DISTINCT l FROM unnest(tsvector_to_array(to_tsvector('english', %(terms)s))) AS l),
                 docs AS (SELECT count(*) AS n FROM kb_articles WHERE status = 'published'),
                 df AS (SELECT lex.l, s.ndoc FROM lex
                          JOIN ts_stat($$SELECT tsv FROM kb_articles WHERE status = 'published'$$) s ON s.word = lex.l),
                 w AS (SELECT quote_literal(df.l)::tsquery AS tq,
                              ln(1 + (docs.n - df.ndoc + 0.5) / (df.ndoc + 0.5)) AS idf FROM df, docs)
            SELECT {", ".join("a." + c.strip() for c in ARTICLE_COLUMNS.split(","))},
                   sum(w.idf * ts_rank(%(fw)s::float4[], a.tsv, w.tq))::float
                       AS score
              FROM kb_articles a JOIN w ON a.tsv @@ w.tq
             WHERE a.status = 'published'
               AND (%(l)s::text IS NULL OR a.locale = %(l)s) AND (%(c)s::text IS NULL OR a.category = %(c)s)
             GROUP BY a.id
             ORDER BY score DESC, a.usage_count DESC, a.id LIMIT %(n)s""",
        {
            "terms": terms,
            "fw": FIELD_WEIGHTS,
            "l": locale,
            "c": category,
            "n": min(limit, MAX_RESULTS),
        },
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
