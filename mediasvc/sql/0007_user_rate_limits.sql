-- Request budgets per verified user and operation, shared by every node: one row each,
-- a GCRA ("theoretical arrival time") updated by one statement per request
-- (`db.queries.SPEND_BUDGET`). Rows idle past their refill are pruned by the reaper.
CREATE TABLE user_budgets (
    subject   text        NOT NULL,
    operation text        NOT NULL,
    tat       timestamptz NOT NULL,
    allowed   boolean     NOT NULL,
    PRIMARY KEY (subject, operation)
);
CREATE INDEX user_budgets_tat_idx ON user_budgets (tat);
