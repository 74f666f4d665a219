"""Search terms for English and Chinese text (pure, no I/O).

Chinese is written without spaces, so a tsvector of raw Chinese text holds whole sentences as single "words" and
never matches a question phrased differently. Text is turned into space-separated terms before it reaches
PostgreSQL: Latin words stay as written (the `english` text-search configuration stems them: refunds → refund), and
runs of Han characters are split by jieba's search-mode segmenter, which emits both words and the longer compounds
they form (租车押金 → 租车, 押金, 租车押金). Measured against character trigrams (pg_trgm) and Han bigrams on the
fixture set in tests/fixtures/kb_search.json: see docs/support.md.
"""

from __future__ import annotations

import logging
import re
import threading

import jieba

# Han ideographs (CJK Unified Ideographs and Extension A) and Latin/digit words.
_HAN_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")
_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")
# Function words of questions that carry no topic (the english configuration drops English stop words itself).
_ZH_STOP_TEXT = (
    "的 了 吗 呢 吧 啊 我 你 您 他 她 它 我们 是 在 有 和 与 或 就 都 也 要 会 能 可以 怎么 怎样 如何 什么 为什么 "
    "哪里 哪个 多少 请问 一下 这个 那个 如果 没有 还 被 把 给 让 对 从 到 时 时候 后 之后 么"
)
ZH_STOP = frozenset(_ZH_STOP_TEXT.split())
_lock = threading.Lock()
_ready = False


def _segmenter() -> None:
    global _ready
    if not _ready:
        with _lock:
            if not _ready:
                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()
                _ready = True


def han_words(run: str) -> list[str]:
    """Words of one run of Han characters (search mode: words and their compounds), stop words left out."""
    _segmenter()
    words = [w for w in jieba.lcut_for_search(run) if w.strip() and w not in ZH_STOP]
    # Single characters of the words as well: 加满油 and 加油 share 油 though the segmenter splits them differently.
    chars = [c for w in words if len(w) > 1 for c in w if c not in ZH_STOP]
    return words + chars


def terms(text: str) -> list[str]:
    """The search terms of a text: lower-case Latin words and segmented Chinese words, in order."""
    out: list[str] = []
    pos = 0
    lowered = text.lower()
    for m in _HAN_RUN.finditer(lowered):
        out.extend(_WORD.findall(lowered[pos : m.start()]))
        out.extend(han_words(m.group()))
        pos = m.end()
    out.extend(_WORD.findall(lowered[pos:]))
    return out


def as_text(text: str) -> str:
    """The terms joined by spaces: what the tsvector column is built from."""
    return " ".join(terms(text))


def as_query(text: str) -> str | None:
    """A websearch_to_tsquery string matching any of the text's terms (ranking sorts out the best), or None."""
    found = list(dict.fromkeys(t for t in terms(text) if t not in ("or", "and")))
    return " or ".join(found) if found else None
