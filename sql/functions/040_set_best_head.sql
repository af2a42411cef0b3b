create or replace function app_public.set_best_head(prompt_version_id bigint) returns app_public.best_heads
language plpgsql volatile
set search_path = pg_catalog
as $$
declare
  head app_public.best_heads;
begin
  insert into app_public.best_heads (prompt_id, prompt_version_id)
  select v.prompt_id, v.id from app_public.prompt_versions v where v.id = set_best_head.prompt_version_id
  on conflict (prompt_id) do update set prompt_version_id = excluded.prompt_version_id
  returning * into head;
  if not found then
    raise exception 'There is no prompt version % of yours.', set_best_head.prompt_version_id
      using errcode = 'PRNFD';
  end if;
  return head;
end;
$$;
comment on function app_public.set_best_head(bigint) is
  'Makes this version the winning version (best head) of its prompt.';
