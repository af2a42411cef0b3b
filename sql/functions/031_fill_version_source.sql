-- judge_scores and best_heads copy their version's agent (source) so the
-- statistics can follow them; the composite foreign key keeps the copy exact.
-- Only the writer's own version (and prompt) counts, looked up under RLS, and
-- anything else is refused before any constraint runs: another user's version
-- or prompt must fail exactly like one that does not exist, or the unique and
-- foreign keys would tell a caller which ids other users have scored or crowned.
-- A version a concurrent transaction has just deleted is reported the same way.
create or replace function app_private.tg__fill_version_source() returns trigger
language plpgsql security invoker
set search_path = pg_catalog
as $$
declare
  version_prompt_id bigint;
begin
  select v.source, v.prompt_id into new.source, version_prompt_id
    from app_public.prompt_versions v
   where v.id = new.prompt_version_id and v.user_id = new.user_id;
  if not found then
    raise exception 'There is no prompt version % of yours.', new.prompt_version_id using errcode = 'PRNFD';
  end if;
  -- A best head's prompt: the writer's own when it is the version's (whose
  -- foreign key says so); any other is looked up, so that another user's
  -- prompt fails like a missing one, before the foreign key could tell them apart.
  -- Nested: judge_scores rows have no prompt_id to mention.
  if tg_table_name = 'best_heads' then
    if new.prompt_id is distinct from version_prompt_id
       and not exists (select from app_public.prompts p where p.id = new.prompt_id and p.user_id = new.user_id) then
      raise exception 'There is no prompt % of yours.', new.prompt_id using errcode = 'PRNFD';
    end if;
  end if;
  return new;
end;
$$;
