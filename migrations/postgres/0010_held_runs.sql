-- Runs held while their trigger is paused, found oldest first when it resumes.
CREATE INDEX run_view_held ON run_view (requested_at) WHERE status = 'held';
