-- Tombstone retention (the hourly tombstone_retention job): a tombstone is read
-- only by a feed's next run, which holds the deletions its previous run's
-- snapshot could not see. Once every feed's last written run has seen a
-- tombstone, no run will read it again (a feed's first run reads the tables
-- whole, not tombstones), so it is deleted. A paused feed keeps the tombstones
-- written since its last run, as it will need them when resumed; with no feeds
-- at all, none are kept.
create or replace function app_private.delete_unneeded_tombstones() returns bigint
language sql volatile
set search_path = pg_catalog
as $$
  with last_runs as (
    select (select r.snapshot::pg_snapshot
              from app_public.feed_runs r
             where r.feed_id = f.id and r.status = 'succeeded'
             order by r.number desc
             limit 1) as snapshot
      from app_public.feeds f
  ), seen_by as (
    select l.snapshot from last_runs l where l.snapshot is not null
  ), deleted as (
    delete from app_hidden.tombstones t
     -- A range of the written_in index first; then each feed's snapshot exactly.
     where t.written_in < coalesce((select min(pg_snapshot_xmax(s.snapshot)::text::bigint) from seen_by s), 9223372036854775807)
       and not exists (select from seen_by s where not pg_visible_in_snapshot(t.written_in::text::xid8, s.snapshot))
    returning 1
  )
  select count(*) from deleted;
$$;
comment on function app_private.delete_unneeded_tombstones() is
  'Deletes the tombstones every feed''s last written run has seen; answers how many.';
