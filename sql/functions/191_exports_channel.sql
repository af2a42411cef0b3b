-- The channel the worker notifies export status changes on (export_started,
-- export_progress, export_succeeded, export_failed, release_dead_workers),
-- with the export's id. Anyone who may connect may LISTEN on any channel, so
-- the channel's name is a secret made by the migrations
-- (app_private.notification_channels): a SQL login cannot learn other users'
-- export ids by listening. The gateway reads it with
-- app_hidden.gateway_exports_channel (granted to its login by
-- app_private.ensure_authenticator); the owner's CLI reads it too.
create or replace function app_private.exports_channel() returns text
language sql stable
set search_path = pg_catalog
as $$
  select c.channel from app_private.notification_channels c where c.purpose = 'exports';
$$;

create or replace function app_hidden.gateway_exports_channel() returns text
language sql stable security definer
set search_path = pg_catalog
as $$
  select app_private.exports_channel();
$$;
revoke execute on function app_private.exports_channel(), app_hidden.gateway_exports_channel() from public;
