-- The database logins of this database (`prompter sql-user list`): every mapped
-- login, and any reader login granted CONNECT here whose mapping went with its
-- deleted user (it sees nothing, but should still be removed); no other role. The limits are
-- the configured ones (app_private.sql_logins), which the worker enforces;
-- `settings_changed` flags a login whose role settings are no longer the ones
-- add_sql_login gave it (it ran ALTER ROLE itself, in any database).
drop function if exists app_private.list_sql_logins();
create function app_private.list_sql_logins()
returns table (
  login name,
  username text,
  is_admin boolean,
  connection_limit int,
  statement_timeout text,
  idle_in_transaction_timeout text,
  transaction_timeout text,
  settings_changed boolean,
  open_sessions bigint,
  created_at timestamptz
)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select coalesce(m.login, r.rolname),
         u.username,
         coalesce(m.is_admin, pg_has_role(r.oid, 'app_auditor', 'usage')),
         r.rolconnlimit,
         (extract(epoch from m.statement_timeout) * 1000)::bigint || 'ms',
         (extract(epoch from m.idle_in_transaction_timeout) * 1000)::bigint || 'ms',
         (extract(epoch from m.transaction_timeout) * 1000)::bigint || 'ms',
         m.login is not null and exists (
           select from pg_db_role_setting s, unnest(s.setconfig) setting,
                  lateral (select split_part(setting, '=', 1) as name, substr(setting, strpos(setting, '=') + 1) as value) kv
            where s.setrole = r.oid
              and (s.setdatabase <> 0
                   or kv.name not in ('statement_timeout', 'idle_in_transaction_session_timeout', 'transaction_timeout')
                   or (case when kv.value ~ '^\d+$' then kv.value || 'ms' else kv.value end)::interval
                      is distinct from case kv.name when 'statement_timeout' then m.statement_timeout
                                                    when 'transaction_timeout' then m.transaction_timeout
                                                    else m.idle_in_transaction_timeout end)),
         (select count(*) from pg_stat_activity a where a.usename = coalesce(m.login, r.rolname)),
         m.created_at
    from app_private.sql_logins m
    full join pg_roles r on r.rolname = m.login
    left join app_public.users u on u.id = m.user_id
   where m.login is not null
      -- Directly in app_reader or app_auditor, as add_sql_login makes them: the
      -- owner is in them too, but only through the logins it is a member of.
      or (r.rolcanlogin and not r.rolsuper and r.rolname <> current_user
          and exists (select from pg_auth_members am
                       where am.member = r.oid and am.roleid in ('app_reader'::regrole, 'app_auditor'::regrole))
          and exists (select from pg_database d, aclexplode(d.datacl) acl
                       where d.datname = current_database() and acl.grantee = r.oid and acl.privilege_type = 'CONNECT'))
   order by 1;
$$;
comment on function app_private.list_sql_logins() is
  'The read-only database logins of this database, with their user (null when deleted), configured limits, and whether they changed their own settings.';
