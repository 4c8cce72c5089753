"""Keyed hashes that stand in for literal values in the audit log, so it shows what was asked, not the values.

The audit log never holds the literals of an agent's ``where`` clause or a requested name that is not a
column name: :func:`literal_hash` replaces each with a keyed hash, equal under one key (so a security
officer can see that two calls asked for the same value) and useless without the key. The hash key is
derived from the audit key for this one use, so no literal can be made to reveal another derived key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Collection


def literal_hash(key: bytes, value: object) -> str:
    """A keyed hash standing in for a literal in the log: equal literals give equal hashes under one key."""
    literal_key = hmac.new(key, b"assay-audit-literal", hashlib.sha256).digest()
    digest = hmac.new(literal_key, str(value).encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[
        :16
    ]
    return f"<hmac:{digest}>"


_SQL_TOKEN = re.compile(
    r"""
    (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))     # comments: hashed whole
   |(?P<dollar>\$(?P<tag>[^\W\d]\w*|)\$.*?(?:\$(?P=tag)\$|\Z))  # $$string$$ or $tag$string$tag$: hashed
   |(?P<string>'(?:[^']|'')*(?:'|\Z))          # 'string' (unterminated runs to the end): hashed
   |(?P<ident>"(?:[^"]|"")*(?:"|\Z))           # "quoted identifier": kept only if a known column
   |(?P<backtick>`(?:[^`]|``)*(?:`|\Z))        # `quoted identifier`: likewise
   |(?P<number>(?:\d|\.\d)[\w.]*(?:[eE][+-]\d+)?)  # number, with any suffix (0x4A, 0b10, 1_000): hashed
   |(?P<word>[^\W\d]\w*)                       # keyword, function or column: kept; anything else hashed
    """,
    re.VERBOSE | re.DOTALL,
)

# Words of the SQL an agent's filter may use (keywords and type names): kept in clear.
SQL_WORDS = frozenset(
    """AND OR NOT IN IS NULL LIKE ILIKE RLIKE REGEXP SIMILAR TO ESCAPE BETWEEN TRUE FALSE CASE WHEN THEN ELSE
    END CAST TRY_CAST AS DISTINCT FROM INTERVAL ANY ALL SOME VARCHAR CHAR TEXT STRING INT INTEGER BIGINT
    SMALLINT TINYINT DOUBLE FLOAT REAL DECIMAL NUMERIC DATE TIMESTAMP TIME BOOLEAN BOOL""".split()
)
_COLUMN_SHAPED = re.compile(r"[a-z_][a-z0-9_]*")


def redact_sql(key: bytes, sql: str, columns: Collection[str] | None = None) -> str:
    """``sql`` with everything but its SQL words, function names and column names replaced by a hash.

    Kept in clear: SQL keywords and type names (:data:`SQL_WORDS`), a word directly followed by ``(`` (a
    function), and column names: those in ``columns`` when given (the dataset's contract columns), else
    any lower-case ``snake_case`` word. Everything else is replaced by :func:`literal_hash`: string
    literals however quoted (``'…'``, ``$$…$$``, ``$tag$…$tag$``; the hash is of the value, so ``'O''Brien'``
    and ``$$O'Brien$$`` hash alike), numbers with whatever follows them (``0x4A414E45``, ``1_000``),
    comments, quoted identifiers that are not known columns (``"Jane Doe"``, ``\\`jane\\```), and bare
    words that are not known columns (``jane``). An unterminated quote hashes everything after it.
    This is a tokenizer with an allow-list, not a parser: what it does not recognise is hashed.
    """

    def known(name: str) -> bool:
        return name in columns if columns is not None else bool(_COLUMN_SHAPED.fullmatch(name))

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
        if kind in ("ident", "backtick"):
            quote = token[0]
            inner = token[1:-1] if len(token) > 1 and token.endswith(quote) else token[1:]
            return token if known(inner.replace(quote * 2, quote)) else literal_hash(key, token)
        if kind == "word":
            if token.upper() in SQL_WORDS or known(token) or sql[match.end() :].lstrip().startswith("("):
                return token
            return literal_hash(key, token)
        return literal_hash(key, token)  # number, comment

    return _SQL_TOKEN.sub(replace, sql)
