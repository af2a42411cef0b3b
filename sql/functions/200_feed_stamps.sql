-- Feeds read what changed between two snapshots by the transaction that last
-- wrote each row (written_in, see migration 000009). Inserts are stamped by the
-- column's default; an update, whichever column it touches and however it
-- came (a cascade too), is stamped here, so the row is in the next run.
create or replace function app_private.tg__stamp_written_in() returns trigger
language plpgsql
set search_path = pg_catalog
as $$
begin
  new.written_in := pg_current_xact_id()::text::bigint;
  return new;
end;
$$;

-- A deleted row leaves a tombstone, which the next run of a feed carries as a
-- deletion. One statement per deleting statement (transition tables), so a
-- deleted user's thousands of rows cost one insert per table. A judge score
-- names its prompt through its version; when the version goes in the same
-- statement (a cascade), the version's own tombstone names the prompt.
create or replace function app_private.tg__leave_tombstones() returns trigger
language plpgsql security definer
set search_path = pg_catalog
as $$
begin
  -- Each branch names only columns its table has: PL/pgSQL parses a statement
  -- when it first runs it, for the table whose trigger runs it.
  case tg_table_name
    when 'prompts' then
      insert into app_hidden.tombstones (kind, row_id, user_id, prompt_id)
      select 'prompts', o.id, o.user_id, o.id from old_rows o;
    when 'prompt_versions' then
      insert into app_hidden.tombstones (kind, row_id, user_id, prompt_id)
      select 'prompt_versions', o.id, o.user_id, o.prompt_id from old_rows o;
    when 'judge_scores' then
      insert into app_hidden.tombstones (kind, row_id, user_id, prompt_id)
      select 'judge_scores', o.id, o.user_id, v.prompt_id
        from old_rows o left join app_public.prompt_versions v on v.id = o.prompt_version_id;
    else
      insert into app_hidden.tombstones (kind, row_id, user_id, prompt_id)
      select 'best_heads', o.prompt_id, o.user_id, o.prompt_id from old_rows o;
  end case;
  return null;
end;
$$;
