-- "all" is a zip file, whose entries are compressed already; gzip on top would
-- only make it harder to open. Runs after tg_exports__prepare has normalised
-- the options.
create or replace function app_private.tg_exports__check_format() returns trigger
language plpgsql
set search_path = pg_catalog
as $$
begin
  if new.kind = 'all' and (new.options ->> 'gzip')::boolean then
    raise exception 'The "all" export is a zip file, which is compressed already: leave out the gzip option.'
      using errcode = 'PROPT';
  end if;
  return new;
end;
$$;
