-- The trigger cache (src/trigger_cache.rs) reads the rows changed since a log position each time
-- the projector moves: without this index, a scan of every trigger.
CREATE INDEX trigger_view_last_position ON trigger_view (last_position);
