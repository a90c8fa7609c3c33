-- kuvert-coord storage, version 3: who submitted each analysis (the
-- principal's name: a client certificate's party or a token's name). A
-- submitter may read the analyses it submitted; the same spec submitted
-- twice by different principals is visible to both.

CREATE TABLE submitters (
    analysis_id TEXT NOT NULL,
    principal TEXT NOT NULL,
    submitted_at TEXT NOT NULL,
    PRIMARY KEY (analysis_id, principal)
);
