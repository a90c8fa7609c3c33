-- kuvert-coord storage, version 2: the differential-privacy budget ledger.
-- One row per account (a contributor's dataset); `ledger` is kuvert-dp's
-- DatasetLedger as JSON (budget and every release charged). `dp_charges`
-- makes charging an analysis idempotent across coordinator restarts.

CREATE TABLE dp_ledger (
    account TEXT PRIMARY KEY,
    ledger TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE dp_charges (
    analysis_id TEXT NOT NULL,
    account TEXT NOT NULL,
    charged_at TEXT NOT NULL,
    PRIMARY KEY (analysis_id, account)
);
