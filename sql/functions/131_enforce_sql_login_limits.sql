-- What a SQL login sets for itself (ALTER ROLE ... SET statement_timeout = 0,
-- SET idle_in_transaction_session_timeout = 0) does not lift the limits it was
-- given (app_private.sql_logins): run periodically by the worker as the owner,
-- this cancels a statement running past the login's statement timeout and ends
-- a session idle in a transaction past its idle limit, and ends a session whose
-- transaction is older than its transaction limit, whatever it runs (a loop of
-- short statements with short pauses trips neither of the others). With
-- `advisory_lock_holders`, it also ends every session of a SQL login that holds
-- an advisory lock (a login has no use for one; migrations need graphile-
-- migrate's). The owner may signal only backends of roles it is a member of
-- (add_sql_login makes it one); any other is reported, not signalled.
-- On a read replica (the worker runs it there too) the same limits hold: logins,
-- their limits and memberships replicate with the database.
create or replace function app_private.enforce_sql_login_limits(advisory_lock_holders boolean default false)
returns table (pid int, login name, reason text, action text, running_for interval, done boolean)
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
begin
  -- One run at a time across workers, so each session is reported once. A
  -- standby takes no row locks: there each worker watching it checks, and a
  -- session one of them ended is gone for the others.
  if not pg_is_in_recovery() then
    perform from app_private.process_locks where name = 'sql_login_limits' for update skip locked;
    if not found then
      return;
    end if;
  end if;
  return query
  with over_limit as (
    select a.pid, m.login,
           case
             when advisory_lock_holders and exists (select from pg_locks l where l.pid = a.pid and l.locktype = 'advisory')
               then 'advisory_lock'
             when a.xact_start < clock_timestamp() - m.transaction_timeout
               then 'transaction_timeout'
             when a.state = 'active' and a.query_start < clock_timestamp() - m.statement_timeout
               then 'statement_timeout'
             when a.state like 'idle in transaction%' and a.state_change < clock_timestamp() - m.idle_in_transaction_timeout
               then 'idle_in_transaction_timeout'
           end as reason,
           clock_timestamp() - case
             when a.xact_start < clock_timestamp() - m.transaction_timeout then a.xact_start
             when a.state = 'active' then a.query_start
             else coalesce(a.state_change, a.backend_start) end as running_for,
           pg_has_role(m.login, 'usage') as may_signal
      from pg_stat_activity a
      join app_private.sql_logins m on m.login = a.usename
     where a.datname = current_database() and a.pid <> pg_backend_pid()
  )
  select o.pid, o.login, o.reason,
         case when o.reason = 'statement_timeout' then 'cancel' else 'terminate' end,
         o.running_for,
         case
           when not o.may_signal then false
           when o.reason = 'statement_timeout' then pg_cancel_backend(o.pid)
           -- Waits for the session to end, so its locks are gone when this returns.
           else pg_terminate_backend(o.pid, 5000)
         end
    from over_limit o
   where o.reason is not null
   order by o.pid;
end
$$;
comment on function app_private.enforce_sql_login_limits(boolean) is
  'Cancels statements and ends sessions of SQL logins past their configured limits, whatever they set for themselves.';
