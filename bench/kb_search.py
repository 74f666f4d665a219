"""Knowledge-base search, measured: which ranking puts the right article first for English and Chinese questions.

`make bench-kb` loads tests/fixtures/kb_search.json (30 articles, 43 questions phrased unlike the titles) into a
fresh database and ranks each question with five methods; bench/kb_search.md keeps hit@1 per language and the mean
reciprocal rank. The production method is `kb.search_articles` (jieba terms in a weighted tsvector + title trigram
tie-break).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

from backoffice.support import kb, search
from bench.common import drop_database, make_database
from fleetcore.db import Conn, connect

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "kb_search.json"
OUT = Path(__file__).resolve().parent / "kb_search.md"
ACTOR = {"username": "bench"}
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")


def bigram_text(text: str) -> str:
    """Latin words plus overlapping Han bigrams (the segmenter-free CJK approach, as Lucene's CJKAnalyzer)."""
    out: list[str] = []
    pos = 0
    low = text.lower()
    for m in _HAN.finditer(low):
        out.append(low[pos : m.start()])
        run = m.group()
        out.extend(run[i : i + 2] for i in range(max(1, len(run) - 1)))
        pos = m.end()
    out.append(low[pos:])
    return " ".join(out)


def _rank(conn: Conn, sql: str, params: dict) -> list[int]:
    return [r["id"] for r in conn.execute(sql, params).fetchall()]


def methods(conn: Conn) -> dict[str, Callable[[str, str], list[int]]]:
    def production(q: str, loc: str) -> list[int]:
        return [a["id"] for a in kb.search_articles(conn, q=q, locale=loc, limit=10)]

    def fts_jieba(q: str, loc: str) -> list[int]:
        return _rank(conn, """SELECT id FROM kb_articles WHERE locale = %(l)s AND tsv @@ websearch_to_tsquery('english', %(q)s)
                   ORDER BY ts_rank(tsv, websearch_to_tsquery('english', %(q)s)) DESC, id LIMIT 10""",
                     {"q": search.as_query(q) or "", "l": loc})  # fmt: skip

    def fts_bigram(q: str, loc: str) -> list[int]:
        terms = " or ".join(dict.fromkeys(bigram_text(q).split()))
        return _rank(conn, """SELECT id FROM kb_bigram WHERE locale = %(l)s AND tsv @@ websearch_to_tsquery('english', %(q)s)
                   ORDER BY ts_rank(tsv, websearch_to_tsquery('english', %(q)s)) DESC, id LIMIT 10""",
                     {"q": terms, "l": loc})  # fmt: skip

    def trigram(q: str, loc: str) -> list[int]:
        return _rank(conn, """SELECT id FROM kb_articles WHERE locale = %(l)s
                   ORDER BY word_similarity(%(q)s, title || ' ' || keywords || ' ' || body) DESC, id LIMIT 10""",
                     {"q": q, "l": loc})  # fmt: skip

    def simple_raw(q: str, loc: str) -> list[int]:
        return _rank(conn, """SELECT id FROM kb_articles WHERE locale = %(l)s
                     AND to_tsvector('simple', title || ' ' || body) @@ plainto_tsquery('simple', %(q)s)
                   ORDER BY ts_rank(to_tsvector('simple', title || ' ' || body), plainto_tsquery('simple', %(q)s))
                            DESC, id LIMIT 10""", {"q": q, "l": loc})  # fmt: skip

    return {
        "jieba words + their characters, idf per lexeme x field weight (production)": production,
        "same terms, plain ts_rank of the whole query": fts_jieba,
        "Han bigrams + weighted tsvector": fts_bigram,
        "pg_trgm word_similarity on the raw text": trigram,
        "to_tsvector('simple') on the raw text": simple_raw,
    }


def load(conn: Conn, fixture: dict) -> dict[str, int]:
    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")  # for the trigram method only
    ids = {}
    for a in fixture["articles"]:
        ids[a["key"]] = kb.create(conn, data=a, actor=ACTOR)["id"]
    conn.execute("CREATE TABLE kb_bigram (id bigint, locale text, tsv tsvector)")
    for a in fixture["articles"]:
        conn.execute(
            """INSERT INTO kb_bigram VALUES (%s, %s, setweight(to_tsvector('english', %s), 'A') ||
                      setweight(to_tsvector('english', %s), 'B') || setweight(to_tsvector('english', %s), 'C'))""",
            (
                ids[a["key"]],
                a["locale"],
                bigram_text(a["title"]),
                bigram_text(a["keywords"]),
                bigram_text(a["body"]),
            ),
        )
    return ids


def evaluate(conn: Conn, fixture: dict, ids: dict[str, int], rank: Callable[[str, str], list[int]]) -> dict:
    out: dict[str, dict] = {}
    for loc in ("en", "zh-CN"):
        qs = [q for q in fixture["queries"] if q["locale"] == loc]
        hits, rr = 0, 0.0
        for q in qs:
            got = rank(q["q"], loc)
            want = ids[q["expect"]]
            hits += int(bool(got) and got[0] == want)
            rr += 1.0 / (got.index(want) + 1) if want in got else 0.0
        out[loc] = {"queries": len(qs), "hit1": hits, "mrr": round(rr / len(qs), 3)}
    return out


def main() -> None:
    fixture = json.loads(FIXTURE.read_text())
    url, _ = make_database(0)
    try:
        with connect(url, autocommit=True) as conn:
            ids = load(conn, fixture)
            rows = []
            for name, fn in methods(conn).items():
                t0 = time.perf_counter()
                res = evaluate(conn, fixture, ids, fn)
                ms = (time.perf_counter() - t0) * 1000 / len(fixture["queries"])
                rows.append((name, res, ms))
                print(name, res, f"{ms:.1f} ms/query", flush=True)
    finally:
        drop_database(url)
    lines = [
        "# Knowledge-base search: right article first (hit@1) on tests/fixtures/kb_search.json",
        "",
        f"{len(fixture['articles'])} articles, {len(fixture['queries'])} questions; run {time.strftime('%Y-%m-%d %H:%M')}.",
        "",
        "| method | English hit@1 | English MRR | Chinese hit@1 | Chinese MRR | ms/query |",
        "|---|---|---|---|---|---|",
    ]
    for name, res, ms in rows:
        en, zh = res["en"], res["zh-CN"]
        lines.append(
            f"| {name} | {en['hit1']}/{en['queries']} | {en['mrr']} | {zh['hit1']}/{zh['queries']} | {zh['mrr']} "
            f"| {ms:.1f} |"
        )
    OUT.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
