"""Policy changes in the audit log: which policy text was in force, from when, and what changed.

Whenever a process loads the policy to serve agents (:func:`governance.client_connect.connect`, a gateway at
start), it calls :func:`record_policy`. If the policy's content digest differs from the newest policy
record, one ``policy_change`` record is appended (actor ``policy``) with the digest, the files, and the
agents added, removed and changed, each changed agent with the names of the keys that changed. Values
are never written: a key's value is compared through a fingerprint keyed by the audit key (HMAC), which
no one without the key can test guesses against (a row filter like ``region = 'EU'`` has few possible
values). The check and the append run under the audit log's write lock, so processes starting together
record a change once.

A policy that fails to load is recorded too, when the catalog is reachable, as ``policy_invalid``
(decision ``deny``) with its digest and the ``file:line`` of each problem (not the messages, which can
quote the file); once per distinct text, like changes. The process still refuses to serve.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import socket
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine

from governance import audit
from governance.audit_chain import canonical_json
from governance.catalog import migrate
from governance.errors import PolicyError
from governance.policy import Policy, content_digest, policy_files
from governance.store import reading

CHANGE = "policy_change"
INVALID = "policy_invalid"
ACTIONS = (CHANGE, INVALID)
ACTOR = "policy"
_LOCATION = re.compile(r"^(.+?:\d+)(?::\d+)?:\s")


def record_policy(engine: Engine, policy: Policy, audit_key: bytes, *, by: str) -> audit.AuditRecord | None:
    """Append a ``policy_change`` record if ``policy`` is not the newest recorded; return it, or None.

    ``by`` says who loaded it (``connect``, ``gateway``); the host and process id are added.
    """
    if _newest_digest(engine) == policy.digest:
        return None  # the common case, without taking the write lock
    prints = fingerprints(policy, audit_key)

    def work(conn: Connection) -> audit.AuditRecord | None:
        last = audit.last_of(conn, ACTIONS)
        if last is not None and last.detail.get("digest") == policy.digest:
            return None  # another process recorded it while we waited for the lock
        previous = audit.last_of(conn, (CHANGE,))
        before = previous.detail.get("fingerprints") if previous is not None else None
        detail = {
            "digest": policy.digest,
            "files": [str(f) for f in policy.files],
            "loaded_by": _loader(by),
            "previous_digest": previous.detail.get("digest") if previous is not None else None,
            **changes(before if isinstance(before, dict) else {}, prints),
            "fingerprints": prints,
        }
        return audit.append_in(
            conn,
            actor=ACTOR,
            action=CHANGE,
            dataset=None,
            decision="allow",
            detail=detail,
            anchor_key=audit_key,
        )

    return audit.locked(engine, "policy change", work)


def record_invalid(
    engine: Engine, path: str | Path, error: PolicyError, audit_key: bytes, *, by: str
) -> audit.AuditRecord | None:
    """Append a ``policy_invalid`` record for a policy at ``path`` that failed to load (once per text)."""
    try:
        files = policy_files(path)
    except PolicyError:
        files = []
    digest = content_digest(files) if files else hashlib.sha256(f"missing:{path}".encode()).hexdigest()
    if _newest_digest(engine) == digest:
        return None
    problems = [m.group(1) for line in str(error).splitlines() if (m := _LOCATION.match(line))]

    def work(conn: Connection) -> audit.AuditRecord | None:
        last = audit.last_of(conn, ACTIONS)
        if last is not None and last.detail.get("digest") == digest:
            return None
        detail = {
            "digest": digest,
            "files": [str(f) for f in files] or [str(path)],
            "loaded_by": _loader(by),
            "problems": problems,
            "reason": f"the policy does not load ({len(problems) or 1} problem(s)); nothing is served",
        }
        return audit.append_in(
            conn,
            actor=ACTOR,
            action=INVALID,
            dataset=None,
            decision="deny",
            detail=detail,
            anchor_key=audit_key,
        )

    return audit.locked(engine, "invalid policy", work)


def record_invalid_quietly(
    engine: Engine, path: str | Path, error: PolicyError, audit_key: bytes, *, by: str
) -> None:
    """:func:`record_invalid`, for a caller about to raise ``error``: an unreachable catalog must not hide it."""
    try:
        record_invalid(engine, path, error, audit_key, by=by)
    except Exception:  # the PolicyError the caller raises next is what the operator must see
        pass


def fingerprints(policy: Policy, audit_key: bytes) -> dict[str, dict[str, str]]:
    """Agent -> key -> a keyed fingerprint of the key's value (HMAC-SHA256, 16 hex), to compare without values."""
    key = hmac.new(audit_key, b"assay-policy-fingerprint", hashlib.sha256).digest()
    return {
        name: {
            setting: hmac.new(key, canonical_json({"v": value}).encode(), hashlib.sha256).hexdigest()[:16]
            for setting, value in sorted(grant.settings.items())
        }
        for name, grant in sorted(policy.grants.items())
    }


def changes(before: dict[str, Any], after: dict[str, dict[str, str]]) -> dict[str, Any]:
    """Agents added, removed, and changed (agent -> the keys added, removed or changed), by name only."""
    changed: dict[str, list[str]] = {}
    for name in sorted(set(before) & set(after)):
        old = before[name] if isinstance(before[name], dict) else {}
        keys = sorted(k for k in set(old) | set(after[name]) if old.get(k) != after[name].get(k))
        if keys:
            changed[name] = keys
    return {
        "agents_added": sorted(set(after) - set(before)),
        "agents_removed": sorted(set(before) - set(after)),
        "agents_changed": changed,
    }


def _newest_digest(engine: Engine) -> str | None:
    migrate(engine)
    with reading(engine) as conn:
        last = audit.last_of(conn, ACTIONS)
    digest = last.detail.get("digest") if last is not None else None
    return digest if isinstance(digest, str) else None


def _loader(by: str) -> str:
    return f"{by}@{socket.gethostname()}:{os.getpid()}"
