-- The database logins of this database (`prompter sql-user list`): every mapped
-- login, and any reader login granted CONNECT here whose mapping went with its
-- deleted user (it sees nothing, but should still be removed).
create or replace function app_private.list_sql_logins()
returns table (
  login name,
  username text,
  is_admin boolean,
  connection_limit int,
  statement_timeout text,
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
         (select substr(setting, length('statement_timeout=') + 1)
            from unnest(r.rolconfig) setting where setting like 'statement_timeout=%'),
         (select count(*) from pg_stat_activity a where a.usename = coalesce(m.login, r.rolname)),
         m.created_at
    from app_private.sql_logins m
    full join pg_roles r on r.rolname = m.login
    left join app_public.users u on u.id = m.user_id
   where m.login is not null
      or (r.rolcanlogin and not r.rolsuper and pg_has_role(r.oid, 'app_reader', 'usage')
          and exists (select from pg_database d, aclexplode(d.datacl) acl
                       where d.datname = current_database() and acl.grantee = r.oid and acl.privilege_type = 'CONNECT'))
   order by 1;
$$;
comment on function app_private.list_sql_logins() is
  'The read-only database logins of this database, with their user (null when deleted) and limits.';
