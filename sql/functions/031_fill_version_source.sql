-- judge_scores and best_heads copy their version's agent (source) so the
-- statistics can follow them; the composite foreign key keeps the copy exact.
-- A version that does not exist (or that a concurrent transaction has just
-- deleted) is reported as such, not as a missing source.
create or replace function app_private.tg__fill_version_source() returns trigger
language plpgsql security definer
set search_path = pg_catalog
as $$
begin
  select source into new.source from app_public.prompt_versions where id = new.prompt_version_id;
  if not found then
    raise exception 'There is no prompt version % of yours.', new.prompt_version_id using errcode = 'PRNFD';
  end if;
  return new;
end;
$$;
