-- Runs as the requester (not security definer): it records the role the request
-- was made as, which is the role the worker exports as, so RLS decides what the
-- export contains whichever way it was requested (GraphQL, REST, SQL).
create or replace function app_private.tg_exports__prepare() returns trigger
language plpgsql
set search_path = pg_catalog
as $$
declare
  max_per_minute constant int := 10;
  window_length constant interval := interval '1 minute';
  recent int;
  wait_seconds int;
begin
  if new.user_id is null then
    raise exception 'Sign in to request an export.' using errcode = 'PRLGN';
  end if;
  if not exists (select from app_public.export_kinds where name = new.kind) then
    raise exception 'Unknown export kind "%"; choose one of: %.', new.kind,
      (select string_agg(name, ', ' order by name) from app_public.export_kinds)
      using errcode = 'PRKND';
  end if;
  new.options := app_hidden.checked_format_options('export', new.format, new.options);
  perform app_hidden.check_feed_filters(new.kind, new.filters);

  -- Serialise this user's requests so concurrent ones cannot all slip under the limit.
  perform app_hidden.lock_export_rate(new.user_id);
  select count(*) into recent from app_public.exports
   where user_id = new.user_id and requested_at > clock_timestamp() - window_length;
  if recent >= max_per_minute then
    -- A slot frees when enough of the recent requests have left the window: the
    -- (recent - max + 1)-th oldest of them is the last one that has to go.
    select ceil(extract(epoch from requested_at + window_length - clock_timestamp()))::int into wait_seconds
      from app_public.exports
     where user_id = new.user_id and requested_at > clock_timestamp() - window_length
     order by requested_at
     offset recent - max_per_minute limit 1;
    wait_seconds := greatest(coalesce(wait_seconds, 1), 1);
    raise exception 'Too many exports: at most % per minute. Try again in % seconds.', max_per_minute, wait_seconds
      using errcode = 'PRRTL', detail = json_build_object('retryAfterSeconds', wait_seconds)::text;
  end if;

  new.status := 'queued';
  new.requested_role := current_user;
  new.is_global := app_public.current_user_is_admin();
  new.requested_at := clock_timestamp();
  return new;
end;
$$;
