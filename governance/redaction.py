"""Keyed hashes that stand in for literal values in the audit log, so it shows what was asked, not the values.

The audit log never holds the literals of an agent's ``where`` clause or a requested name that is not a
column name: :func:`literal_hash` replaces each with a keyed hash, equal under one key (so a security
officer can see that two calls asked for the same value) and useless without the key.
"""

from __future__ import annotations

import hashlib
import hmac
import re


def literal_hash(key: bytes, value: object) -> str:
    """A keyed hash standing in for a literal in the log: equal literals give equal hashes under one key."""
    digest = hmac.new(key, str(value).encode("utf-8"), hashlib.sha256).hexdigest()[:16]
    return f"<hmac:{digest}>"


_SQL_TOKEN = re.compile(
    r"""
    (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))     # comments: hashed whole
   |(?P<dollar>\$(?P<tag>[^\W\d]\w*|)\$.*?(?:\$(?P=tag)\$|\Z))  # $$string$$ or $tag$string$tag$: hashed
   |(?P<string>'(?:[^']|'')*(?:'|\Z))          # 'string' (unterminated runs to the end): hashed
   |(?P<ident>"(?:[^"]|"")*(?:"|\Z))           # "quoted identifier": kept if it could name a column
   |(?P<word>[^\W\d]\w*)                       # keyword or identifier: kept (so col1 keeps its 1)
   |(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)  # number: hashed
    """,
    re.VERBOSE | re.DOTALL,
)


_COLUMN_SHAPED = re.compile(r'"[a-z_][a-z0-9_]*"')


def redact_sql(key: bytes, sql: str) -> str:
    """``sql`` with every string and number literal (and comment) replaced by :func:`literal_hash`.

    A string's hash is of its value (``'O''Brien'`` hashes ``O'Brien``); a number's is of its text as
    written (``42`` and ``42.0`` differ). Limits: this is a tokenizer, not a parser. It knows
    single-quoted and dollar-quoted (``$$…$$``, ``$tag$…$tag$``) strings, double-quoted identifiers,
    comments, words and numbers; keywords, operators and identifiers are kept in clear. A quoted
    identifier is kept only if it has the shape of a column name (``[a-z_][a-z0-9_]*``), so a value
    smuggled in as one (``"Jane Doe"``) is hashed. An unterminated quote hashes everything after it.
    """

    def replace(match: re.Match[str]) -> str:
        kind = match.lastgroup
        token = match.group()
        if kind == "string":
            inner = token[1:-1] if len(token) > 1 and token.endswith("'") else token[1:]
            return literal_hash(key, inner.replace("''", "'"))
        if kind == "dollar":
            opener = len(match.group("tag") or "") + 2
            closed = len(token) >= 2 * opener and token.endswith(token[:opener])
            return literal_hash(key, token[opener : len(token) - opener] if closed else token[opener:])
        if kind == "ident" and not _COLUMN_SHAPED.fullmatch(token):
            return literal_hash(key, token)
        if kind in ("number", "comment"):
            return literal_hash(key, token)
        return token

    return _SQL_TOKEN.sub(replace, sql)
