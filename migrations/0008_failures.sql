-- Failures stay with what failed, so they hold up nothing else (issue 14).

-- A day or month that could not be rolled keeps its mark, with when and why; it is
-- tried again after the others and not before `failed_at` is old enough
-- (tally_storage::pipeline::ROLL_RETRY_MS).
ALTER TABLE dirty_periods ADD COLUMN failed_at INTEGER;
ALTER TABLE dirty_periods ADD COLUMN error TEXT;

-- Why a rule's last evaluation failed (NULL when it succeeded); shown with its state.
ALTER TABLE alert_rules ADD COLUMN last_error TEXT;
