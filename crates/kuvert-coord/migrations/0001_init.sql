-- kuvert-coord storage, version 1. Portable SQL (SQLite and PostgreSQL):
-- TEXT and BIGINT only, no autoincrement. Times are RFC 3339 text plus
-- unix milliseconds where the scheduler compares them.

CREATE TABLE analyses (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    spec_toml TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL,
    submitted_at TEXT NOT NULL,
    submitted_ms BIGINT NOT NULL,
    updated_at TEXT NOT NULL,
    unreachable_since_ms BIGINT NOT NULL,
    deadline TEXT NOT NULL
);

CREATE TABLE approvals (
    analysis_id TEXT NOT NULL,
    contributor TEXT NOT NULL,
    approval TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (analysis_id, contributor)
);

CREATE TABLE node_states (
    analysis_id TEXT NOT NULL,
    node BIGINT NOT NULL,
    status TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (analysis_id, node)
);

CREATE TABLE receipts (
    analysis_id TEXT NOT NULL,
    node BIGINT NOT NULL,
    receipt TEXT NOT NULL,
    PRIMARY KEY (analysis_id, node)
);
