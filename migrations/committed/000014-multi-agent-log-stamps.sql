--! Previous: sha1:6664c2eecb9ef63a69725a993168fe7d0d415e9e
--! Hash: sha1:c1e2e3cc542dada301ed699edef9cea7fee20568
--! Message: multi agent log stamps

-- multi_agent_log's feed runs find the prompts whose row changed by the
-- transaction that last wrote the row (written_in, as the tables of migration
-- 000012 have it), instead of gathering the changed versions, scores, best
-- heads and their tombstones and looking each up again (half a second for 10k
-- changed scores among 1M prompts, most of it reading those four tables). The
-- rows written before this migration are stamped with the newest stamp of what
-- they are computed from, so the first run after the upgrade carries every row
-- that a run before it would have carried.
alter table app_hidden.multi_agent_log_rows add column if not exists written_in bigint;
do $$
begin
  if exists (select from app_hidden.multi_agent_log_rows r where r.written_in is null) then
    update app_hidden.multi_agent_log_rows r set written_in = coalesce(stamps.written_in, 0)
      from app_hidden.multi_agent_log_rows unstamped
      left join (
        select w.prompt_id, max(w.written_in) as written_in
          from (select v.prompt_id, v.written_in from app_public.prompt_versions v
                union all
                select v.prompt_id, s.written_in from app_public.judge_scores s join app_public.prompt_versions v on v.id = s.prompt_version_id
                union all
                select h.prompt_id, h.written_in from app_public.best_heads h
                union all
                select t.prompt_id, t.written_in from app_hidden.tombstones t where t.kind <> 'prompts' and t.prompt_id is not null) w
         group by w.prompt_id
      ) stamps on stamps.prompt_id = unstamped.prompt_id
     where r.prompt_id = unstamped.prompt_id and r.written_in is null;
  end if;
end
$$;
alter table app_hidden.multi_agent_log_rows
  alter column written_in set default pg_current_xact_id()::text::bigint,
  alter column written_in set not null;
create index if not exists multi_agent_log_rows_written_in_idx on app_hidden.multi_agent_log_rows (written_in);
