-- Revenue summed per currency, and the UTM term and content kept (issue 18).
--
-- `term` and `content` (utm_term, utm_content) become raw columns like `source`,
-- `medium` and `campaign`, so filters and exports read them. Adding a nullable column
-- rewrites no row, so this is cheap on a large table; old events read as NULL.
ALTER TABLE raw_events ADD COLUMN term TEXT;
ALTER TABLE raw_events ADD COLUMN content TEXT;

-- Revenue in thousandths of the currency of the row's value, summed only in the rows of
-- the revenue dimensions (`revenue_name`, `revenue_source`, `revenue_campaign`, whose
-- values are `[currency, value]`), 0 in every other row; it saturates at 2^53 - 1 like
-- every stored sum. A constant default rewrites no row either.
ALTER TABLE rollups ADD COLUMN revenue INTEGER NOT NULL DEFAULT 0;
